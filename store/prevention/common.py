"""What the gate log and the truancy tiers share: duties without a case, their history, their lists.

A prevention duty is a named person's action with a due time (like a case duty, DOMAIN.md §3),
raised by a gate alert or a truancy tier. The daily advance marks the ones past due overdue; the
owner closes one with a note. Every change writes a ``prevention_events`` row.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.identity import mask_name
from machines.vocabulary import PREVENTION_SOURCE_LABELS

from store.models import Pupil, School, SchoolClass, Staff
from store.models.prevention import PreventionDuty, PreventionEvent
from store.access.scope import EVERYTHING, Scope

SOURCE_LABELS = PREVENTION_SOURCE_LABELS  # machines.vocabulary
STATUS_LABELS = {"open": "待办", "overdue": "已逾期", "done": "已办结"}


class PreventionError(ValueError):
    """A request staff can correct (message in Chinese with an English gloss)."""


def event_row(*, pupil_id: int, subject: str, ref_id: int | None, event: str, actor: str, at: datetime,
              now: datetime, reason: str = "", payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"pupil_id": pupil_id, "subject": subject, "ref_id": ref_id, "event": event, "actor": actor, "at": at,
            "recorded_at": now, "reason": reason, "payload": payload or {}}


def log(session: Session, **kw: Any) -> None:
    session.add(PreventionEvent(**event_row(**kw)))


def mark_overdue(session: Session, as_of: datetime) -> int:
    """Open prevention duties past their due time become overdue (set-based, idempotent)."""
    from store.duties.ledger import mark_overdue as mark

    return mark(session, as_of, kinds=("prevention",))["prevention"]


def complete_duty(session: Session, duty_id: int, *, actor: str, note: str, now: datetime,
                  scope: Scope = EVERYTHING) -> PreventionDuty:
    q = scope.apply(select(PreventionDuty).where(PreventionDuty.id == duty_id),
                    school_col=PreventionDuty.school_id, class_col=PreventionDuty.class_id)
    duty = session.scalar(q)
    if duty is None:
        raise LookupError("事项不存在，或不在您的管辖范围内 (duty not found)")
    if duty.status == "done":
        return duty
    if not note.strip():
        raise PreventionError("请填写办理情况 (a note is required)")
    duty.status, duty.done_at, duty.done_by, duty.note = "done", now, actor, note.strip()[:255]
    log(session, pupil_id=duty.pupil_id, subject="duty", ref_id=duty.id, event="complete", actor=actor, at=now, now=now,
        reason=note.strip()[:255], payload={"source": duty.source, "kind": duty.kind, "action": duty.action,
                                           "late": now > duty.due_at})
    session.flush()
    return duty


def duties(session: Session, *, scope: Scope = EVERYTHING, as_of: datetime, source: str | None = None,
           owner_id: int | None = None, open_only: bool = True, masked: bool = False, limit: int = 500) -> list[dict]:
    """Prevention duties in a scope, overdue and soonest due first."""
    q = (select(PreventionDuty, Pupil.name, Pupil.student_no, SchoolClass.name, School.name, Staff.name)
         .join(Pupil, Pupil.id == PreventionDuty.pupil_id).join(SchoolClass, SchoolClass.id == PreventionDuty.class_id)
         .join(School, School.id == PreventionDuty.school_id).outerjoin(Staff, Staff.id == PreventionDuty.owner_id))
    q = scope.apply(q, school_col=PreventionDuty.school_id, class_col=PreventionDuty.class_id)
    if source:
        q = q.where(PreventionDuty.source == source)
    if owner_id is not None:
        q = q.where(PreventionDuty.owner_id == owner_id)
    if open_only:
        q = q.where(PreventionDuty.status.in_(("open", "overdue")))
    q = q.order_by(PreventionDuty.due_at, PreventionDuty.id).limit(limit)
    return [{
        "id": d.id, "source": d.source, "source_label": SOURCE_LABELS.get(d.source, d.source), "kind": d.kind,
        "action": d.action, "label": d.label, "role": d.role, "owner": o, "due_at": d.due_at,
        "status": d.status, "status_label": STATUS_LABELS.get(d.status, d.status),
        "late": d.status == "overdue" or (d.status == "open" and d.due_at <= as_of),
        "pupil": mask_name(p) if masked else p, "student_no": no, "class": k, "school": sch,
        "done_at": d.done_at, "done_by": d.done_by, "note": d.note,
    } for d, p, no, k, sch, o in session.execute(q)]
