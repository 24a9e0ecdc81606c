"""旷课分级处理 (seed 001, 第六条) and 住校生出入校门登记 (seed 000, §二.3) as policy data.

Seed 001 第六条: 1. 第一次旷课，由班主任进行口头警告，并通知家长；2. 第二次旷课，由班主任书面警告，
并进行个别谈话；3. 第三次旷课，由年级组长进行严肃批评，并进行班级集体谈话；4. 第四次旷课起，由学校
领导进行纪律处分，并进行一对一的谈话及家访。

What counts as one truancy (一次旷课): by default one *episode* — a run of consecutive school days
with an unexcused mark (无故缺勤) counts once, whatever its length. The escalation ladder already
handles a long absence day by day; counting each day again would send a pupil absent for four days
straight to the school leadership before the head teacher has phoned home. A policy may count every
unexcused day instead (``count = "day"``). Counts restart each school year.

"第四次旷课起" (from the fourth on): with ``repeat_last_tier`` (default) every further truancy
(5th, 6th …) gives the last tier's action again. Pure: no clock, no I/O.
"""
from __future__ import annotations

from datetime import date, time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TruancyTier(_Strict):
    """One tier: reached by the ``min_count``-th truancy of the school year."""

    tier: int = Field(ge=1)
    min_count: int = Field(ge=1, description="the n-th truancy of the school year that reaches this tier")
    action: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="duty action id")
    label: str
    role: str = Field(description="policy role who owes the action (班主任, 年级主任, 校长 …)")
    due_school_days: int = Field(1, ge=0, description="0 = the school day the tier is reached")
    due_time: time = time(17, 0)
    documents: list[str] = Field([], description="documents the tier calls for (e.g. the written warning)")


DEFAULT_TIERS = [
    TruancyTier(tier=1, min_count=1, action="oral_warning", role="head_teacher", due_school_days=0,
                label="第一次旷课：班主任口头警告，并通知家长"),
    TruancyTier(tier=2, min_count=2, action="written_warning", role="head_teacher", due_school_days=1,
                label="第二次旷课：班主任书面警告，并进行个别谈话", documents=["truancy_written_warning"]),
    TruancyTier(tier=3, min_count=3, action="grade_director_talk", role="grade_director", due_school_days=1,
                label="第三次旷课：年级组长严肃批评，并进行班级集体谈话"),
    TruancyTier(tier=4, min_count=4, action="leadership_home_visit", role="principal", due_school_days=2,
                label="第四次旷课起：学校领导纪律处分，一对一谈话及家访"),
]


class TruancyRules(_Strict):
    enabled: bool = True
    count: Literal["episode", "day"] = Field("episode", description="episode = consecutive unexcused days count once")
    year_start_month: int = Field(9, ge=1, le=12, description="the school year (学年) starts on day 1 of this month")
    repeat_last_tier: bool = Field(True, description="第四次旷课起: every further truancy repeats the last tier")
    tiers: list[TruancyTier] = DEFAULT_TIERS

    @model_validator(mode="after")
    def _ordered(self) -> "TruancyRules":
        if not self.tiers:
            raise ValueError("at least one truancy tier")
        numbers = [t.tier for t in self.tiers]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"tiers must be numbered 1, 2, 3 … in order, got {numbers}")
        counts = [t.min_count for t in self.tiers]
        if counts != sorted(set(counts)):
            raise ValueError(f"tier min_count must strictly increase, got {counts}")
        return self

    def school_year(self, day: date) -> int:
        """The 学年 a day belongs to, by its first calendar year (2026 = 2026—2027学年)."""
        return day.year if day.month >= self.year_start_month else day.year - 1

    def year_start(self, school_year: int) -> date:
        return date(school_year, self.year_start_month, 1)

    def tier_for(self, count: int) -> TruancyTier | None:
        """The tier a pupil is in after ``count`` truancies (None before the first)."""
        return next((t for t in reversed(self.tiers) if count >= t.min_count), None)

    def action_at(self, occurrence: int) -> TruancyTier | None:
        """The tier whose action the ``occurrence``-th truancy calls for, or None (no new action)."""
        for t in self.tiers:
            if t.min_count == occurrence:
                return t
        last = self.tiers[-1]
        return last if self.repeat_last_tier and occurrence > last.min_count else None

    def actions_due(self, count: int) -> list[tuple[int, TruancyTier]]:
        """(occurrence, tier) for every truancy 1..``count`` that calls for an action."""
        return [(k, t) for k in range(1, count + 1) if (t := self.action_at(k)) is not None]


def count_truancies(days: list[int], *, mode: str = "episode") -> list[int]:
    """The school-day ordinals that start a truancy: every day (``day``) or each run's first day."""
    days = sorted(set(days))
    if mode == "day":
        return days
    return [d for i, d in enumerate(days) if i == 0 or days[i - 1] != d - 1]


class GateRules(_Strict):
    """住校生出入校门: no exit without the head teacher's approval; back by the agreed time."""

    enabled: bool = True
    grace_minutes: int = Field(30, ge=0, description="minutes after the due-back time before a late return is an alert")
    alert_role: str = "head_teacher"
    alert_due_minutes: int = Field(60, ge=0, description="minutes the owner has to act on an alert")
    require_fetcher: bool = Field(True, description="seed 000: 无家长接送的，不得离校")
