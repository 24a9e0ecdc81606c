"""The per-case reference path of the daily advance: one case, one machine, one at a time.

The set-based advance (store.cases.advance) must equal it (tests/store/test_bulk_equivalence.py);
the benchmark compares the two (bench/figures.py). Late marks first, in their place, as the bulk
advance does.

``streaks="opened_seq"`` is the per-case loop as a competent developer would write it once cases
carry ``opened_seq`` (issue 20): the candidate cases are read through the index ``ix_cases_due``
(the open cases in a state whose next step the streak may have reached: the advance's own
``plan``), and a case's streak is today's school-day ordinal minus its ``opened_seq`` plus one,
not a count of the calendar's days; each case still goes through its machine, one at a time.
The default (``"calendar"``) counts every open case's school days in its calendar: the reference
the set-based advance is tested against, independent of ``opened_seq``."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from machines.states import OPEN_STATES
from store.cases.actions import escalate_through
from store.cases.context import CaseContext, effective_day
from store.cases.follow_up import renew_per_case
from store.cases.credit import credit_done_duties
from store.cases.late_marks import apply_late_marks
from store.cases.leave_sweep import count_unapproved
from store.calendars import last_seq_on_or_before
from store.models import Case, Duty


def _candidates_by_seq(session: Session, ctx: CaseContext, as_of: datetime) -> list[Case]:
    """The open cases whose next step their streak may have reached, through ``ix_cases_due``."""
    from store.cases.advance import plan

    steps = plan(session, ctx, as_of)
    if not steps:
        return []
    return list(session.scalars(select(Case).where(or_(*(and_(
        Case.policy_name == st.policy_name, Case.policy_version == st.policy_version,
        Case.calendar_key == st.calendar_key, Case.state == st.source, Case.opened_seq <= st.max_opened_seq)
        for st in steps))).order_by(Case.id)))


def advance_per_case(session: Session, ctx: CaseContext, as_of: datetime, *, streaks: str = "calendar",
                     ) -> dict[str, int]:
    """Escalate every due case and mark overdue duties, case by case (the slow reference path)."""
    count_unapproved(session, ctx, as_of)  # unapproved leave and transfers count (store.cases.leave)
    apply_late_marks(session, ctx, as_of)  # late marks first, in their place: as the bulk advance
    moved = 0
    if streaks == "opened_seq":
        passed: dict[tuple[str, object], int] = {}  # (calendar, day) → school days passed: one query each
        for case in _candidates_by_seq(session, ctx, as_of):
            today = effective_day(ctx.policy(case.policy_name, case.policy_version), as_of)
            key = (case.calendar_key, today)
            if key not in passed:
                passed[key] = last_seq_on_or_before(session, case.calendar_key, today)
            moved += escalate_through(session, ctx, case, max(0, passed[key] - case.opened_seq + 1), now=as_of)
    else:
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
