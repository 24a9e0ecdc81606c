"""A duty is done by what was already done: a case duty whose action is already on the case's history
is done, pointing at that event (``duties.done_seq``), whenever the duty is raised or falls due.

The sweep raises a step's duties at the step's entry (the day's morning check), but staff may have
recorded the action first — a teacher logs the call at 13:45, the sweep at 13:48 (as of 13:44) raises
电话联系家长 due 17:00. Both paths (``store.cases.actions`` per case, ``store.cases.advance`` set-based) and
both overdue markings call :func:`credit_done_duties` right after they raise or before they mark, so a
duty with its act recorded is created done (on time if the act was by the deadline) and never overdue.
A policy names each action once on its ladder, so the earliest event of the duty's action is the act.
"""
from __future__ import annotations

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.orm import Session

from store.models import CaseEvent, Duty

UNDONE = ("open", "overdue")


def credit_done_duties(session: Session, *where: ColumnElement[bool]) -> int:
    """Mark done the open or overdue case duties matching ``where`` (on ``duties``) whose action is recorded
    on their case: ``done_at`` the act's time, ``done_seq`` its event, ``done_late`` if after the deadline.
    One UPDATE with correlated subqueries (SQLite and PostgreSQL alike); returns how many."""
    d, e, f = Duty.__table__, CaseEvent.__table__, CaseEvent.__table__.alias("first_act")
    act = (e.c.case_id == d.c.case_id) & (e.c.event == d.c.action)
    first = select(func.min(f.c.seq)).where(f.c.case_id == d.c.case_id, f.c.event == d.c.action).correlate(d).scalar_subquery()
    act_at = select(e.c.at).where(e.c.case_id == d.c.case_id, e.c.seq == first).correlate(d).scalar_subquery()
    result = session.execute(
        update(d).where(*where, d.c.status.in_(UNDONE), exists(select(e.c.id).where(act).correlate(d)))
        .values(status="done", done_seq=first, done_at=act_at, done_late=or_(d.c.status == "overdue", act_at > d.c.due_at))
        .execution_options(synchronize_session=False))
    return result.rowcount or 0
