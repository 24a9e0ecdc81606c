"""A class's head teacher changes (班主任变更): her open duties for the class go to the successor.

Every open or overdue ladder duty the old head teacher owns on an open case of the class is
re-assigned in one UPDATE, and each case's history records the hand-over (who to whom, when), so a
later reader sees why the owner changed; the duty's due time and status are kept as they were.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from machines.states import OPEN_STATES
from machines.vocabulary import Bookkeeping

from store.cases.effects import SYSTEM, event_row
from store.models import Case, CaseEvent, Duty, SchoolClass, Staff

HANDOVER_EVENT = Bookkeeping.duty_handover.value


def hand_over_class(session: Session, klass: SchoolClass, old_id: int, new_id: int, *, now: datetime,
                    actor: str = SYSTEM) -> int:
    """Move ``old_id``'s undone duties on the class's open cases to ``new_id``; returns how many moved."""
    names = dict(session.execute(select(Staff.id, Staff.name).where(Staff.id.in_([old_id, new_id]))).all())
    rows = session.execute(
        select(Duty.id, Duty.case_id).join(Case, Case.id == Duty.case_id)
        .where(Case.class_id == klass.id, Case.state.in_([s.value for s in OPEN_STATES]), Duty.owner_id == old_id,
               Duty.status.in_(("open", "overdue")))).all()
    if not rows:
        return 0
    session.execute(update(Duty).where(Duty.id.in_([r.id for r in rows])).values(owner_id=new_id))
    for case in session.scalars(select(Case).where(Case.id.in_({r.case_id for r in rows})).order_by(Case.id)):
        moved = [r.id for r in rows if r.case_id == case.id]
        case.version += 1
        case.updated_at = now
        session.add(CaseEvent(**event_row(
            case_id=case.id, seq=case.version, event=HANDOVER_EVENT, from_state=case.state, to_state=case.state,
            actor=actor, at=now, now=now,
            reason=f"班主任变更：{names.get(old_id, old_id)} → {names.get(new_id, new_id)}，{len(moved)} 项待办移交",
            payload={"from_staff": old_id, "to_staff": new_id, "duties": moved})))
    session.flush()
    return len(rows)
