"""Leave, 免学/缓学 and transfers as data (seed 002 《学生辍学报告制度》 5、3、2; issue 17 items 5, 6, 8).

- 请假: "请假一天以上向教导处报告，三天以上教导处向校长室报告" — a leave of ``office_over_days`` days or
  more is approved by the academic office (教导处/教务处), of ``principal_over_days`` or more by the
  principal; a shorter one (a policy with office_over_days > 1) by the head teacher. While a leave
  waits for its approver it *holds* the absence for ``approval_school_days`` school days (due at
  ``approval_time``); unapproved after that, or refused, its days count as unexcused absence.
- 免学/缓学: "经县级以上教育主管部门或者乡级人民政府批准" — an application to the county bureau, decided
  within ``exemption_decision_school_days``; until approved it does not excuse (no hold).
- 转学: "严格办理转进转出手续" — a 转出 waits ``confirm_school_days`` for the receiving school's 转入
  confirmation (or the receipt of a school outside the county); unconfirmed, it opens a case.
- 放学未回家 (seed 000 §二.4): a parent's report gives the school a same-day duty, due after
  ``after_school_due_hours`` hours.
"""
from __future__ import annotations

from datetime import time

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeaveRules(_Strict):
    office_over_days: int = Field(1, ge=1)      # 请假一天以上报教导处
    principal_over_days: int = Field(3, ge=1)   # 三天以上报校长
    approval_school_days: int = Field(1, ge=0, description="school days a pending leave holds the absence")
    approval_time: time = time(17, 0)
    exemption_decision_school_days: int = Field(10, ge=0, description="the county bureau's time to decide 免学/缓学")

    def approver(self, days: int, roles: dict[str, str] | None = None) -> str:
        """The role that approves a leave of ``days`` school days (seed 002 5); a policy without an
        academic office (or head teacher) routes to the next role up that it declares."""
        if days >= self.principal_over_days:
            wanted = ["principal"]
        elif days >= self.office_over_days:
            wanted = ["academic_office", "principal"]
        else:
            wanted = ["head_teacher", "academic_office", "principal"]
        return next((r for r in wanted if roles is None or r in roles), "principal")


class TransferRules(_Strict):
    confirm_school_days: int = Field(10, ge=0, description="school days the receiving school has to confirm 转入")
    confirm_time: time = time(17, 0)
    after_school_due_hours: int = Field(2, ge=1, le=24, description="放学未回家: the school's search is due within")
