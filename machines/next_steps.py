"""What comes next for an open case, in calendar dates (pure: the policy and the school calendar decide).

A step of day N is reached at the policy's ``escalation_time`` (the morning check's end) of the Nth
consecutive school day from the day the case opened — if the pupil is still absent without leave —
and each of its duties is due ``due_school_days`` school days later at ``due_time``; weekends, holidays,
breaks and 调休 working days are the calendar's (:class:`machines.calendar.SchoolCalendar`). A step
already reached keeps the time it was reached (from the history); only the steps ahead are computed, and a step
that waits after an earlier one's actual entry (``Policy.waits_for``: the legal notice after the return notice's
period) is not reached before that period ends (``machines.policy_notices.wait_ends``), as the sweep decides.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from machines.calendar import SchoolCalendar
from machines.policy import Policy
from machines.policy_notices import wait_ends
from machines.states import LADDER, CaseState

WEEKDAYS = "一二三四五六日"


def day_label(d: date, today: date | None = None) -> str:
    """``11月18日（周三）``, or ``今日``/``明日`` relative to ``today``."""
    if today is not None and d == today:
        return "今日"
    if today is not None and (d - today).days == 1:
        return "明日"
    return f"{d.month}月{d.day}日（周{WEEKDAYS[d.weekday()]}）"


def moment_label(at: datetime, today: date | None = None) -> str:
    return f"{day_label(at.date(), today)} {at.strftime('%H:%M')}"


@dataclass
class DutyDate:
    action: str
    role: str
    due_at: datetime


@dataclass
class StepDate:
    state: str
    day: int
    reached_at: datetime | None          # when the case reaches (or reached) the step; None: the calendar cannot say
    reached: bool                        # already reached
    duties: list[DutyDate] = field(default_factory=list)
    problem: str | None = None           # why no date (a year without a holiday list, no next term)


def step_dates(policy: Policy, calendar: SchoolCalendar, *, opened_on: date, created_at: datetime, state: str,
               reached: dict[str, datetime] | None = None) -> list[StepDate]:
    """Every ladder step of ``policy`` with the time the case reaches it and its duties' deadlines; steps
    ``reached`` (state → time, from the history) keep their time; an ended case has no steps ahead."""
    reached = reached or {}
    current = CaseState(state)
    at_index = LADDER.index(current) if current in LADDER else None
    out = []
    for step in policy.steps:
        done = at_index is not None and LADDER.index(step.state) <= at_index
        if at_index is None and step.state.value not in reached:
            continue  # a closed case: only the steps it went through
        item = StepDate(step.state.value, step.day, reached.get(step.state.value), done or step.state.value in reached)
        try:
            entry = calendar.add_school_days(opened_on, step.day - 1)
            if item.reached_at is None:
                item.reached_at = max(datetime.combine(entry, policy.escalation_time), created_at)
                wait = policy.waits_for(step.state)  # e.g. the legal notice: after the return notice's period
                earlier = next((s for s in out if wait is not None and s.state == wait[0].value), None)
                if earlier is not None and earlier.reached_at is not None:
                    item.reached_at = max(item.reached_at, wait_ends(policy, calendar.add_school_days,
                                                                     earlier.reached_at.date(), wait[1]))
            entry_day = item.reached_at.date()  # duties count from the day reached, as the sweep writes them
            item.duties = [DutyDate(d.action.value, d.role,
                                    datetime.combine(calendar.add_school_days(entry_day, d.due_school_days), d.due_time))
                           for d in step.duties]
        except LookupError as exc:  # CalendarYearUnknown or no next term: say so rather than guess
            item.problem = f"校历未录入或学期已结束，无法推算日期（{exc}）"
        out.append(item)
    return out


def first_duty_notice(steps: list[StepDate], now: datetime) -> str | None:
    """When the first duty of a case without duties will appear, in words: before the morning check's end,
    "今日 09:00 晨检结束后生成"; after it (the sweep has not run yet), that it comes with the next sweep."""
    first = next((s for s in steps if s.duties or s.problem), None)
    if first is None or first.problem or first.reached_at is None:
        return None
    if first.reached_at > now:
        return f"{moment_label(first.reached_at, now.date())} 晨检结束后生成（如学生仍未到校）"
    return f"晨检已于 {moment_label(first.reached_at, now.date())} 结束，将在下一次定时巡检时生成（通常几分钟内）"
