"""A report duty is done by what was already done (issue 18 item 2, the reports' share).

A head teacher may submit the week's 周查表 in the morning before the day's duties are opened
(``people.open_weekly``); the submission completes a duty that exists, but the duty opened afterwards stayed
待办 and fell overdue (an accountability entry for work already done). A weekly-count duty opened for a count
already submitted is created done at the first submission's time, by its submitter, pointing at it
(``report_duties.done_ref_id``: the ``weekly_counts`` row), late only if that submission was after the due time.

A report (月报, 学期报告) cannot precede its duty: its draft is made by opening the level's duties
(``people._draft`` → ``open_level``), so a submission always finds its duty. A 季查 reconciliation duty is
opened with the spot-check result that asks for it: nothing can answer it before.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models.report_work import ReportDuty, WeeklyCount


class Act(NamedTuple):
    id: int
    at: datetime
    by: str


def weekly_acts(session: Session, day_iso: str) -> dict[int, Act]:
    """class id → the first count submitted for the week's day ``day_iso``."""
    out: dict[int, Act] = {}
    for cid, rid, at, by in session.execute(select(WeeklyCount.class_id, WeeklyCount.id, WeeklyCount.submitted_at,
                                                   WeeklyCount.submitted_by)
                                            .where(WeeklyCount.day == datetime.fromisoformat(day_iso).date())
                                            .order_by(WeeklyCount.class_id, WeeklyCount.version)):
        out.setdefault(cid, Act(rid, at, by))
    return out


def credit(duty: ReportDuty, act: Act | None) -> dict[str, Any]:
    """The duty's done fields when its act is on record (nothing when not)."""
    if act is None:
        return {}
    duty.status, duty.done_at, duty.done_by, duty.done_ref_id = "done", act.at, act.by, act.id
    duty.done_late = act.at > duty.due_at
    return {"late": duty.done_late}
