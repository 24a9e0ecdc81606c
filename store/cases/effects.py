"""Rows an event writes besides the case itself: history, duties, document requests.

Both the per-case path (``store.cases.actions``) and the set-based path (``store.cases.advance``) build their
rows here, so the two can only differ in how many cases they touch at once.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from machines.policy import Policy, StepSpec
from machines.states import REASON_LABELS, CaseState
from machines.vocabulary import event_label

from store.cases.context import CaseContext

SYSTEM = "system"


def event_row(
    *, case_id: int, seq: int, event: str, from_state: str | None, to_state: str, actor: str,
    at: datetime, now: datetime, reason: str = "", payload: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    return {
        "case_id": case_id, "seq": seq, "event": event, "from_state": from_state, "to_state": to_state,
        "actor": actor, "at": at, "recorded_at": now, "reason": reason or default_reason(event, payload),
        "payload": payload or {},
        "idempotency_key": idempotency_key,
    }


def default_reason(event: str, payload: dict[str, Any] | None) -> str:
    """The why of an event recorded without a note (the audit history never has a blank reason):
    the action's own name, with the reason class of an excuse or a hand-over."""
    label = event_label(event)
    why = (payload or {}).get("reason")
    return f"{label}：{REASON_LABELS.get(why, why)}" if isinstance(why, str) and why else label


def escalation_event_row(
    *, case_id: int, seq: int, source: CaseState, step: StepSpec, policy: Policy, at: datetime, now: datetime
) -> dict[str, Any]:
    return event_row(
        case_id=case_id, seq=seq, event="escalate", from_state=source.value, to_state=step.state.value,
        actor=SYSTEM, at=at, now=now, reason=f"连续{step.day}个上学日无故缺勤：{step.label}",
        payload={"policy": policy.key, "day": step.day},
    )


def step_duty_rows(
    ctx: CaseContext, step: StepSpec, *, case_id: int, school_id: int, class_id: int, calendar_key: str,
    entry_day: date, now: datetime,
) -> list[dict[str, Any]]:
    return [
        {
            "case_id": case_id, "step": step.state.value, "action": d.action.value, "role": d.role,
            "owner_id": ctx.owners.resolve(school_id, class_id, d.role),
            "due_at": ctx.due_at(calendar_key, entry_day, d.due_school_days, d.due_time),
            "status": "open", "created_at": now, "done_at": None, "done_late": False, "overdue_at": None,
        }
        for d in step.duties
    ]


def document_rows(kinds: list[str], *, case_id: int, event_seq: int, now: datetime) -> list[dict[str, Any]]:
    return [
        {"case_id": case_id, "kind": k, "event_seq": event_seq, "status": "queued", "requested_at": now,
         "document_id": None, "error": None}
        for k in dict.fromkeys(kinds)
    ]
