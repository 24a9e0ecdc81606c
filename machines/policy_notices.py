"""Who a case's papers go to, and the compliance periods the notices print (policy ``[notices]``).

Pure data and arithmetic; the documents layer turns role ids into the names it prints.

- ``return_notice_days``: school days the 返校通知书 gives the guardians, counted from the day it is
  issued; the pupil must be back at that school day's morning check (晨检). The 督促送子女入学通知书
  may only be issued once that has passed (:func:`check_ladder`).
- ``legal_notice_days``: the same for the 督促送子女入学通知书 (责令限期改正).
- ``bodies``: role id → the name printed for that party, a template over the case's places
  ({county} {township} {township_short} {village} {jurisdiction}).
- ``addressees`` (主送), ``cc`` (抄送) and ``copies`` (分送: the people a form or plan is handed to)
  per document kind: role ids. A paper issued when a case leaves the school's hands is addressed to
  the bodies the outside rule notifies as well (seed 000 §二.5: 去向不明 → 镇政府和公安机关).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DEFAULT_BODIES: dict[str, str] = {
    "township": "{township}人民政府",
    "township_head": "{township}人民政府主管镇长",
    "village_committee": "{village}村民委员会",
    "judicial_office": "{township_short}司法所",
    "police": "{township_short}派出所",
    "education_bureau": "{county}教育局基础教育股",   # seed 002 (二).4: 报教育局基教股
    "education_center": "{jurisdiction}教育管理中心",  # seed 000: 名单报教育中心
}


NON_ROLE_PARTIES = frozenset({"school"})


class NoticeRules(_Strict):
    return_notice_days: int = Field(1, ge=1, le=30, description="school days the 返校通知书 gives (to the morning check)")
    legal_notice_days: int = Field(3, ge=1, le=30, description="school days the 督促送子女入学通知书 gives")
    bodies: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_BODIES))
    # defaults: what a policy stored before [notices] prints (the default policy's parties)
    addressees: dict[str, list[str]] = {
        "report_to_township": ["township", "village_committee"],
        "dropout_report_form": ["township"],
        "report_to_bureau": ["education_bureau"],
    }
    cc: dict[str, list[str]] = {
        "return_notice": ["education_bureau", "school", "village_committee"],
        "legal_notice": ["education_bureau", "school"],
        "report_to_township": ["education_bureau"],
        "report_to_bureau": ["township"],
    }
    copies: dict[str, list[str]] = {}

    @field_validator("bodies")
    @classmethod
    def _over_defaults(cls, v: dict[str, str]) -> dict[str, str]:
        return {**DEFAULT_BODIES, **v}  # a policy names only the bodies it calls differently

    def roles_used(self) -> list[str]:
        """The policy roles named as parties (``school``: the case's own school, not a role)."""
        return [r for table in (self.addressees, self.cc, self.copies) for roles in table.values() for r in roles
                if r not in NON_ROLE_PARTIES]

    def parties(self, kind: str) -> set[str]:
        """Every role a ``kind`` paper reaches: addressed, copied or handed to."""
        return set(self.addressees.get(kind, [])) | set(self.cc.get(kind, [])) | set(self.copies.get(kind, []))

    def body_name(self, role: str, places: dict[str, Any], role_label: str | None = None) -> str:
        """The printed name of a party: the policy's template filled with the case's places, else the
        role's label."""
        template = self.bodies.get(role)
        if template is None:
            return role_label or role
        village = places.get("village") or ""
        if "{village}" in template and not village:
            return f"{places.get('township', '')}有关村民委员会"
        name = template.format(county=places.get("county", ""), township=places.get("township", ""),
                               township_short=places.get("township_short", ""), village=village,
                               jurisdiction=places.get("jurisdiction", ""))
        return name.replace("村村", "村")


def deadline(add_school_days: Callable[[date, int], date], issued_on: date, days: int) -> date:
    """The school day by whose morning check a notice issued on ``issued_on`` must be complied with."""
    return add_school_days(issued_on, days)


def notice_wait(policy: Any, target: Any) -> tuple[Any, int] | None:
    """(earlier step, school days) that the step ``target`` waits after the case's *actual* entry into that
    earlier step, or None: the 督促送子女入学通知书 (judicial_notice) is issued only once the 返校通知书 of the
    township step has run its ``return_notice_days`` — counted from the day the case really entered the
    township step, which a ``requires`` (seed 000: 经学校2次劝返) can put after the step's day. A case held
    there moves at the morning check (晨检) of the return notice's deadline day (:func:`deadline`).

    The one rule: the machine's guard (``Policy.escalation_due``), the per-case and set-based advances and
    the next-step dates on the pages all ask it. A policy stored before ``[notices]`` keeps its ladder."""
    from machines.states import CaseState

    if "notices" not in policy.model_fields_set or CaseState(target) is not CaseState.judicial_notice:
        return None
    township = policy.step(CaseState.township_notice)
    judicial = policy.step(CaseState.judicial_notice)
    if township is None or judicial is None or "return_notice" not in township.documents \
            or "legal_notice" not in judicial.documents:
        return None
    return CaseState.township_notice, policy.notices.return_notice_days


def wait_ends(policy: Any, add_school_days: Callable[[date, int], date], entered_on: date, days: int) -> datetime:
    """When a step waiting ``days`` after the case entered an earlier step on ``entered_on`` may be reached: the
    morning check (晨检, ``escalation_time``) of the earlier notice's deadline day (:func:`notice_wait`)."""
    return datetime.combine(deadline(add_school_days, entered_on, days), policy.escalation_time)


def check_ladder(policy: Any) -> None:
    """The legal notice is issued only after the return notice's period has passed: the ladder counts
    consecutive school days, so the judicial step's day must be at least the township step's day plus
    the period (a case that entered the township step late waits too: :func:`notice_wait`); and each
    notice's service duty falls before its own deadline."""
    from machines.states import Action, CaseState

    rules: NoticeRules = policy.notices
    township = policy.step(CaseState.township_notice)
    judicial = policy.step(CaseState.judicial_notice)
    if notice_wait(policy, CaseState.judicial_notice) is not None:
        if judicial.day < township.day + rules.return_notice_days:
            raise ValueError(
                f"judicial_notice on day {judicial.day} would come before the 返校通知书 of day {township.day} "
                f"has run its {rules.return_notice_days} school day(s): set its day to at least "
                f"{township.day + rules.return_notice_days} or shorten notices.return_notice_days")
    for step, action, days, kind in ((township, Action.serve_township_notice, rules.return_notice_days, "return_notice"),
                                     (judicial, Action.serve_legal_notice, rules.legal_notice_days, "legal_notice")):
        if step is None or kind not in step.documents:
            continue
        for duty in step.duties:
            if duty.action == action and duty.due_school_days >= days:
                raise ValueError(f"{action.value} is due {duty.due_school_days} school day(s) after the step, not before "
                                 f"the {kind} deadline ({days} school day(s)): the paper would be served too late")
