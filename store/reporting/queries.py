"""Read-side questions asked by the CLI, the pages and the API (one place, so they agree)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from machines.identity import mask_id, mask_name
from machines.states import LIVE_STATES, CaseState, OPEN_STATES

from store.access.scope import EVERYTHING, Scope
from store.models import Case, CaseEvent, Duty, Helper, Jurisdiction, Pupil, School, SchoolClass, Staff

OPEN = [s.value for s in OPEN_STATES]
LIVE = [s.value for s in LIVE_STATES]  # the ladder and the referred cases (followed up)




def case_summary(case: Case, pupil: Pupil, school: School, klass: SchoolClass, *, masked: bool = False) -> dict[str, Any]:
    return {
        "id": case.id, "state": case.state, "state_label": CaseState(case.state).label,
        "pupil": mask_name(pupil.name) if masked else pupil.name, "student_no": pupil.student_no,
        "id_number": mask_id(pupil.id_number), "school": school.name, "school_code": school.code,
        "class": klass.name, "grade": klass.grade, "opened_on": case.opened_on.isoformat(),
        "closed_on": case.closed_on.isoformat() if case.closed_on else None,
        "policy": f"{case.policy_name}@{case.policy_version}", "reason": case.reason,
        "relapse_of": case.relapse_of, "version": case.version,
    }


def _case_rows(session: Session, q):
    q = q.join(Pupil, Pupil.id == Case.pupil_id).join(School, School.id == Case.school_id).join(
        SchoolClass, SchoolClass.id == Case.class_id)
    return session.execute(q.add_columns(Pupil, School, SchoolClass)).all()


def list_cases(
    session: Session, *, scope: Scope = EVERYTHING, school_code: str | None = None, state: str | None = None,
    stuck_at: datetime | None = None, open_only: bool = False, limit: int = 500, masked: bool = False,
) -> list[dict[str, Any]]:
    q = scope.apply(select(Case))
    if school_code:
        q = q.where(Case.school_id == select(School.id).where(School.code == school_code).scalar_subquery())
    if state:
        q = q.where(Case.state == CaseState(state).value)
    if open_only:
        q = q.where(Case.state.in_(OPEN))
    if stuck_at is not None:
        q = q.where(Case.id.in_(stuck_case_ids_query(stuck_at)))
    q = q.order_by(Case.id).limit(limit)
    return [case_summary(c, p, s, k, masked=masked) for c, p, s, k in _case_rows(session, q)]


def stuck_case_ids_query(as_of: datetime):
    """Open cases with a duty past its deadline and not done (DOMAIN.md §3: stuck)."""
    return (
        select(Duty.case_id).join(Case, Case.id == Duty.case_id)
        .where(Case.state.in_(LIVE), or_(Duty.status == "overdue", and_(Duty.status == "open", Duty.due_at <= as_of)))
        .distinct()
    ).union(_stuck_handoffs_query(as_of))


def _stuck_handoffs_query(as_of: datetime):
    """…or a paper handed to an outside body and not acknowledged in the policy's time (送达回证)."""
    from store.duties.handoffs import stuck_handoff_case_ids_query

    return stuck_handoff_case_ids_query(as_of)


def overdue_duties(session: Session, as_of: datetime, *, scope: Scope = EVERYTHING, masked: bool = False,
                   limit: int | None = None) -> list[dict]:
    """Every case duty past due and not done (the first ``limit``), longest overdue first, with its owner (the case
    rows of :func:`store.duties.ledger.overdue`, which lists the census, prevention and watch-list duties too)."""
    from store.duties.ledger import overdue

    return [{
        "duty_id": d["duty_id"], "case_id": d["ref_id"], "state": d["state"], "action": d["action"], "role": d["role"],
        "owner": d["owner"], "owner_id": d["owner_id"], "due_at": d["due_at"].isoformat(sep=" "),
        "hours_overdue": d["hours_overdue"], "pupil": d["pupil"], "school": d["school"],
    } for d in overdue(session, as_of, scope=scope, masked=masked, kinds=("case",), limit=limit)]


def case_detail(session: Session, case_id: int, *, scope: Scope = EVERYTHING, masked: bool = False) -> dict | None:
    rows = _case_rows(session, scope.apply(select(Case).where(Case.id == case_id)))
    if not rows:
        return None
    case, pupil, school, klass = rows[0]
    out = case_summary(case, pupil, school, klass, masked=masked)
    out["guardians"] = [{"name": g.name, "relation": g.relation, "phone": g.phone} for g in pupil.guardians]
    out["special_groups"] = pupil.special_groups
    out["events"] = [{
        "seq": e.seq, "event": e.event, "from": e.from_state, "to": e.to_state, "actor": e.actor,
        "at": e.at.isoformat(sep=" "), "reason": e.reason, "payload": e.payload,
    } for e in session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id)  # by the time of the act
                               .order_by(CaseEvent.at, CaseEvent.seq))]
    duties = session.execute(
        select(Duty, Staff.name).outerjoin(Staff, Staff.id == Duty.owner_id).where(Duty.case_id == case_id).order_by(Duty.id)
    ).all()
    out["duties"] = [{
        "id": d.id, "step": d.step, "action": d.action, "role": d.role, "owner": name,
        "due_at": d.due_at.isoformat(sep=" "), "status": d.status,
        "done_at": d.done_at.isoformat(sep=" ") if d.done_at else None, "done_late": d.done_late,
        "done_seq": d.done_seq,
    } for d, name in duties]
    out["helpers"] = [{"name": h.name, "role": h.role} for h in session.scalars(select(Helper).where(Helper.case_id == case_id))]
    if masked:  # the one rule: store.access.masking
        from store.access.masking import Masker, mask_case_detail

        mask_case_detail(out, Masker(names=[pupil.name, *(g.name for g in pupil.guardians)],
                                     phones=[g.phone for g in pupil.guardians], ids=[pupil.id_number]))
    return out


def counts_by_state(session: Session, *, scope: Scope = EVERYTHING) -> dict[str, int]:
    q = scope.apply(select(Case.state, func.count()).group_by(Case.state))
    return {state: n for state, n in session.execute(q)}


def township_of(session: Session, school_id: int) -> Jurisdiction | None:
    return session.scalar(select(Jurisdiction).join(School, School.township_id == Jurisdiction.id).where(School.id == school_id))
