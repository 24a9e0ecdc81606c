"""The 台账 of referred cases (seed 000 §三.3: 辍学学生台账报教育中心, 复学后及时销号): one row per case handed
outside the school, with its reason, its follow-up rounds and, once back, its 销号 date. Read model of
``documents/referral_ledger.py`` (PDF/XLSX) and the township/county page (web/pages_followup.py)."""
from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from machines.states import REASON_LABELS, CaseState
from machines.vocabulary import Event, event_label, state_label

from store.cases.follow_up import ROUND_PREFIX
from store.models import Case, CaseEvent, Duty, Pupil, School, SchoolClass


def referral_rows(session: Session, school_ids: list[int], start: date, end: date) -> list[dict[str, Any]]:
    """Cases of ``school_ids`` referred on or before ``end`` and not closed before ``start``, in referral order.
    A case's status is as of ``end``: referred cases closed after ``end`` still read 跟踪中 for that period."""
    upto = datetime.combine(end, time.max)
    referred = (select(CaseEvent.case_id, func.min(CaseEvent.at).label("at"))
                .where(CaseEvent.event == Event.escalate_outside.value, CaseEvent.at <= upto)
                .group_by(CaseEvent.case_id).subquery())
    q = (select(Case, referred.c.at, Pupil.name, Pupil.student_no, School.name, SchoolClass.name)
         .join(referred, referred.c.case_id == Case.id).join(Pupil, Pupil.id == Case.pupil_id)
         .join(School, School.id == Case.school_id).join(SchoolClass, SchoolClass.id == Case.class_id)
         .where(Case.school_id.in_(school_ids or [-1]))
         .where((Case.closed_on.is_(None)) | (Case.closed_on >= start))
         .order_by(referred.c.at, Case.id))
    rows = session.execute(q).all()
    ids = [r[0].id for r in rows]
    rounds: dict[int, list[Duty]] = {}
    for d in session.scalars(select(Duty).where(Duty.case_id.in_(ids or [-1]), Duty.step.like(ROUND_PREFIX + "%"),
                                                Duty.created_at <= upto).order_by(Duty.due_at, Duty.id)):
        rounds.setdefault(d.case_id, []).append(d)
    last_notes: dict[int, tuple[datetime, str, str]] = {}
    for e in session.scalars(select(CaseEvent).where(CaseEvent.case_id.in_(ids or [-1]), CaseEvent.at <= upto,
                                                     CaseEvent.from_state == CaseState.escalated.value,
                                                     CaseEvent.to_state == CaseState.escalated.value)
                             .order_by(CaseEvent.at, CaseEvent.seq)):
        last_notes[e.case_id] = (e.at, event_label(e.event), str((e.payload or {}).get("result") or (e.payload or {}).get("notes") or ""))
    out = []
    for case, at, name, no, school, klass in rows:
        mine = rounds.get(case.id, [])
        closed = case.closed_on if case.closed_on and case.closed_on <= end else None
        state = CaseState(case.state).value if closed else CaseState.escalated.value
        last = last_notes.get(case.id)
        out.append({
            "case_id": case.id, "school": school, "class_name": klass, "pupil": name, "student_no": no,
            "opened_on": case.opened_on.isoformat(), "referred_on": at.date().isoformat(), "reason": case.outcome_reason,
            "reason_label": REASON_LABELS.get(case.outcome_reason or "", case.outcome_reason or ""),
            "state": state, "status_label": ("已复学·销号" if state == CaseState.returned.value
                                             else state_label(state) if closed else "移交跟踪中"),
            "follow_ups_done": sum(1 for d in mine if d.status == "done" and d.done_at and d.done_at <= upto),
            "follow_ups_overdue": sum(1 for d in mine if d.status == "overdue" or (d.status == "open" and d.due_at <= upto)),
            "last_follow_up": f"{last[0]:%Y-%m-%d} {last[1]}{('：' + last[2]) if last[2] else ''}" if last else "",
            "closed_on": closed.isoformat() if closed else None,
        })
    return out
