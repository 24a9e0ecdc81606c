"""The sweep's part of leave and transfers (store.cases.leave): count what is not approved in time.

Both advance paths (the set-based :func:`store.cases.advance.advance` and the per-case reference
:func:`store.cases.per_case.advance_per_case`) call :func:`count_unapproved` first, before the late
marks, so they agree by construction. Apart from :mod:`store.cases.leave` because it opens cases
through the intake, which itself asks :mod:`store.cases.leave` what a mark counts as.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session

from machines.states import CaseState

from store.cases.context import CaseContext
from store.cases.effects import SYSTEM
from store.cases.intake import PupilRef, open_cases_bulk
from store.cases.leave import LEAVE_KINDS, OPEN
from store.models import AttendanceMark, Case, LateMark, School
from store.models.leave import LeaveRequest


def count_unapproved(session: Session, ctx: CaseContext, as_of: datetime) -> dict[str, int]:
    """Count every request whose hold is over and that is not approved, once (see the module doc);
    mark the approval duties past due overdue. Runs first in both advance paths."""
    overdue = session.execute(update(LeaveRequest).where(LeaveRequest.status == "open", LeaveRequest.due_at <= as_of)
                              .values(status="overdue").execution_options(synchronize_session=False)).rowcount or 0
    due = session.scalars(select(LeaveRequest).where(
        LeaveRequest.counted_at.is_(None), LeaveRequest.decision != "approved", LeaveRequest.first_day <= as_of.date(),
        or_(LeaveRequest.decision == "refused", LeaveRequest.kind == "exemption", LeaveRequest.due_at <= as_of))
        .order_by(LeaveRequest.id)).all()
    counts = {"overdue": overdue, "leave_days": 0, "transfer_cases": 0}
    if not due:
        return counts
    late = []
    for r in due:
        claimed = session.execute(update(LeaveRequest).where(LeaveRequest.id == r.id, LeaveRequest.counted_at.is_(None))
                                  .values(counted_at=as_of).execution_options(synchronize_session=False)).rowcount
        if claimed != 1:  # another sweep counted it meanwhile
            continue
        session.refresh(r)
        if r.kind == "transfer":
            counts["transfer_cases"] += _open_for_transfer(session, ctx, r, as_of)
            continue
        marked = session.execute(select(AttendanceMark.day, AttendanceMark.submission_id).where(
            AttendanceMark.pupil_id == r.pupil_id, AttendanceMark.day >= r.first_day,
            AttendanceMark.day <= min(r.last_day, as_of.date()),
            AttendanceMark.status.in_(sorted(LEAVE_KINDS) if r.kind in LEAVE_KINDS else [r.kind]))).all()
        late += [{"school_id": r.school_id, "pupil_id": r.pupil_id, "day": d, "status": "unexcused", "submission_id": sub,
                  "recorded_at": as_of, "applied_at": None, "case_id": None,
                  "note": f"请假未获批准，按无故缺勤计 (request {r.id})"[:255]} for d, sub in marked]
    if late:
        session.execute(insert(LateMark.__table__), late)
        counts["leave_days"] = len(late)
    session.flush()
    return counts


def _open_for_transfer(session: Session, ctx: CaseContext, r: LeaveRequest, as_of: datetime) -> int:
    """An unconfirmed 转出: a case from the day the pupil left (unless one is open or handed over)."""
    live = session.scalar(select(Case.id).where(Case.pupil_id == r.pupil_id, or_(
        Case.state.in_(OPEN), and_(Case.state == CaseState.escalated.value, Case.closed_on.is_(None)))))
    if live is not None:
        r.case_id = r.case_id or live
        return 0
    school = session.get(School, r.school_id)
    day = r.first_day
    cal = ctx.calendar(school.calendar_key)
    try:
        day = cal.add_school_days(day, 0)  # the day itself, or the next school day
    except LookupError:  # a year the calendar does not know yet: the sweep goes on, the request stays listed
        return 0
    if day > as_of.date():
        return 0
    [case_id] = open_cases_bulk(session, ctx, school, day, [(PupilRef(r.pupil_id, r.class_id), "unknown")],
                                actor=SYSTEM, now=as_of)
    r.case_id = case_id
    return 1
