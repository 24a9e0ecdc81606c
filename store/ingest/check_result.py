"""What a morning check sent to the ``morning_check`` run did, once the run has recorded it: the
page that confirmed the submission polls this (``/morning-check/status``) instead of asking the
school user to refresh or to open the operator's console.

The run records the check with its submission time (``Submission.received_at`` = the time the page
sent it), so the submitter's own submission of that time is found without the run's id; the cases it
closed carry its idempotency key (``intake:<submission id>``) and the cases it opened its time.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Case, CaseEvent, Submission


def check_result(session: Session, *, school_id: int, day: date, submitted_by: str, at: datetime) -> dict[str, Any] | None:
    """The recorded check's figures and case ids, or None while the run has not recorded it."""
    sub = session.scalar(select(Submission).where(
        Submission.school_id == school_id, Submission.day == day, Submission.submitted_by == submitted_by,
        Submission.received_at == at).order_by(Submission.id.desc()).limit(1))
    if sub is None:
        return None
    closed = session.execute(select(CaseEvent.event, CaseEvent.case_id).where(
        CaseEvent.idempotency_key == f"intake:{sub.id}").order_by(CaseEvent.case_id)).all()
    opened = list(session.scalars(select(Case.id).where(
        Case.school_id == school_id, Case.opened_on == day, Case.created_at == at).order_by(Case.id)))
    summary = dict(sub.summary or {})
    return {"done": True, "summary": summary, "marks": summary.get("marks", 0), "opened": opened,
            "returned": [cid for ev, cid in closed if ev == "mark_returned"],
            "excused": [cid for ev, cid in closed if ev == "excuse"],
            "continuing": summary.get("continuing", 0), "late": summary.get("late", 0)}
