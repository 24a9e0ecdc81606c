"""The per-case reference path of the daily advance: one case, one machine, one at a time.

The set-based advance (store.cases.advance) must equal it (tests/store/test_bulk_equivalence.py);
the benchmark compares the two (bench/figures.py). Late marks first, in their place, as the bulk
advance does."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.states import OPEN_STATES
from store.cases.actions import escalate_through
from store.cases.context import CaseContext, effective_day
from store.cases.follow_up import renew_per_case
from store.cases.credit import credit_done_duties
from store.cases.late_marks import apply_late_marks
from store.cases.leave_sweep import count_unapproved
from store.models import Case, Duty


def advance_per_case(session: Session, ctx: CaseContext, as_of: datetime) -> dict[str, int]:
    """Escalate every due case and mark overdue duties, case by case (the slow reference path)."""
    count_unapproved(session, ctx, as_of)  # unapproved leave and transfers count (store.cases.leave)
    apply_late_marks(session, ctx, as_of)  # late marks first, in their place: as the bulk advance
    moved = 0
    open_cases = session.scalars(
        select(Case).where(Case.state.in_([s.value for s in OPEN_STATES])).order_by(Case.id)
    ).all()
    for case in open_cases:
        policy = ctx.policy(case.policy_name, case.policy_version)
        streak = ctx.calendar(case.calendar_key).school_days_between(case.opened_on, effective_day(policy, as_of))
        moved += escalate_through(session, ctx, case, streak, now=as_of)
    overdue = 0
    session.flush()
    credit_done_duties(session, Duty.__table__.c.status == "open", Duty.__table__.c.due_at <= as_of)  # never overdue when done
    session.expire_all()
    for duty in session.scalars(select(Duty).where(Duty.status == "open", Duty.due_at <= as_of).order_by(Duty.id)):
        duty.status, duty.overdue_at = "overdue", as_of
        overdue += 1
    session.flush()
    renewed = renew_per_case(session, ctx, as_of)  # referred cases: the next follow-up rounds, after the overdue
    session.flush()
    return {"transitions": moved, "overdue": overdue, "follow_ups": renewed}
