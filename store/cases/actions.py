"""The per-case path: one case, one machine, one transaction.

Staff actions (phone call, visit, return…) and the reference advance go through
:func:`apply_event`, which drives :class:`machines.case_machine.CaseMachine` on the ORM row and
writes the history event, duties and document requests in the caller's transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case as sa_case, insert, select, update
from sqlalchemy.orm import Session

from machines.case_machine import ACTION_EVENTS, ForbiddenEvent, bind, unguarded_target
from machines.policy_helpers import helper_problems, resolve_role
from machines.policy_notices import wait_ends
from machines.payloads import PAYLOAD_MODELS, PayloadInvalid, parse_payload  # noqa: F401 - PayloadInvalid for callers
from machines.states import REFERRED_STATES, CaseState, ExcuseReason, OutsideReason
from machines.vocabulary import REQUEST_KIND_LABELS as LEAVE_REASON_LABELS

from store.cases.attachments import check_photos
from store.cases.context import CaseContext, escalation_at
from store.cases.parent_notice import check_order as check_parent_notice_order
from store.cases.credit import credit_done_duties
from store.cases.effects import SYSTEM, document_rows, escalation_event_row, event_row, step_duty_rows
from store.cases.follow_up import referral_duty_rows
from store.models import Case, CaseEvent, DocumentRequest, Duty, Helper
from store.models.leave import LeaveRequest

FINAL_CLOSES_LEDGER = {CaseState.returned, CaseState.excused}


class CaseNotFound(LookupError):
    def __init__(self, case_id: Any):
        super().__init__(f"case {case_id} not found (案件不存在)")


class CaseConflict(RuntimeError):
    """The case changed since the clerk read it (``expected_version`` is stale): nothing is written."""

    def __init__(self, case_id: int, expected: int, current: int):
        self.case_id, self.expected, self.current = case_id, expected, current
        super().__init__(f"案件已被他人更新，请刷新页面后再操作 (the case changed since you opened it: "
                         f"case {case_id} is at version {current}, not {expected})")


@dataclass(frozen=True)
class Applied:
    event: CaseEvent
    duplicate: bool = False


def load_for_update(session: Session, case_id: int) -> Case:
    case = session.scalar(select(Case).where(Case.id == case_id).with_for_update())
    if case is None:
        raise CaseNotFound(case_id)
    return case


def apply_event(
    session: Session, ctx: CaseContext, case: Case, event: str, *, actor: str, at: datetime, now: datetime,
    note: str = "", payload: dict[str, Any] | None = None, idempotency_key: str | None = None,
    expected_version: int | None = None, **facts: Any,
) -> Applied:
    """Fire ``event`` on ``case`` and write its history, duties and documents (no commit).

    ``facts`` are the event's arguments for the machine (``streak``, ``reason`` of an excuse or an
    outside escalation); they are kept in the event's payload so the history can be replayed.

    ``idempotency_key``: a request already recorded under this key returns its event
    (``duplicate``), whatever happened since. ``expected_version``: the version the clerk saw;
    if the case has moved on, :class:`CaseConflict` and nothing is written. The caller holds the
    row lock (:func:`load_for_update`), so of two clerks sending the same version one wins.

    A staff action's ``payload`` is checked against its model (``machines.payloads``) and its
    photos against the case's attachments before anything is written: :class:`PayloadInvalid`.
    """
    if event in PAYLOAD_MODELS:
        payload = parse_payload(event, payload)
        check_photos(session, case.id, payload)
    if event == "assign_helpers":
        payload = checked_helpers(ctx.policy(case.policy_name, case.policy_version), payload)
    if idempotency_key:
        seen = session.scalar(
            select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.idempotency_key == idempotency_key)
        )
        if seen is not None:
            return Applied(seen, duplicate=True)
    if expected_version is not None and expected_version != case.version:
        raise CaseConflict(case.id, expected_version, case.version)
    policy = ctx.policy(case.policy_name, case.policy_version)
    before = CaseState(case.state)
    _check_facts(case, event, facts)
    if event == "record_reason":  # the history keeps what the reason was before (who/when/why: the event)
        payload = {**payload, "previous": case.reason}
    check_parent_notice_order(session, case, event)
    after = bind(case).fire(event, policy=policy, **facts)
    case.state = after.value
    case.version += 1
    case.updated_at = now
    row = event_row(
        case_id=case.id, seq=case.version, event=event, from_state=before.value, to_state=after.value,
        actor=actor, at=at, now=now, reason=note, payload={**(payload or {}), **facts},
        idempotency_key=idempotency_key,
    )
    if event == "escalate":
        step = policy.step(after)
        row = escalation_event_row(case_id=case.id, seq=case.version, source=before, step=step, policy=policy, at=at, now=now)
    ev = CaseEvent(**row)
    session.add(ev)
    session.flush()
    _effects(session, ctx, case, event, before, after, at=at, now=now, facts=facts, payload=payload or {})
    return Applied(ev)


def checked_helpers(policy, payload: dict[str, Any]) -> dict[str, Any]:
    """三帮一: the helpers as the policy wants them (``machines.policy_helpers``), each role as its id;
    :class:`PayloadInvalid` (in Chinese) when fewer than ``helpers_required`` or a role is missing."""
    helpers = payload.get("helpers", [])
    problems = helper_problems(helpers, required=policy.helpers_required, must_cover=policy.three_helpers.roles,
                               roles=policy.roles)
    if problems:
        raise PayloadInvalid([{"field": "helpers", "message": p} for p in problems])
    return {**payload, "helpers": [{**h, "role": resolve_role(h.get("role") or "", policy.roles) or h.get("role", "")}
                                   for h in helpers]}


def persuasions_done(session: Session, case_id: int, requires, upto: datetime) -> tuple[int, datetime | None]:
    """How many of ``requires.actions`` the case's history records at or before ``upto``, and when the
    ``requires.count``-th was recorded (None: not yet). The same question the bulk sweep asks in SQL."""
    ats = session.scalars(select(CaseEvent.at).where(
        CaseEvent.case_id == case_id, CaseEvent.event.in_([a.value for a in requires.actions]), CaseEvent.at <= upto)
        .order_by(CaseEvent.at, CaseEvent.seq)).all()
    return len(ats), (ats[requires.count - 1] if len(ats) >= requires.count else None)


def _check_facts(case: Case, event: str, facts: dict[str, Any]) -> None:
    if event == "excuse":
        reason = facts.get("reason")
        if reason not in ExcuseReason.__members__:
            raise ForbiddenEvent(case.id, case.state, event, f"excuse needs a reason in {sorted(ExcuseReason.__members__)}")
    if event == "escalate_outside" and facts.get("reason") not in OutsideReason.__members__:
        raise ForbiddenEvent(case.id, case.state, event, f"needs a reason in {sorted(OutsideReason.__members__)}")


def _effects(session, ctx, case, event, before, after, *, at, now, facts, payload) -> None:
    policy = ctx.policy(case.policy_name, case.policy_version)
    docs: list[str] = []
    if event == "escalate":
        step = policy.step(after)
        duties = step_duty_rows(
            ctx, step, case_id=case.id, school_id=case.school_id, class_id=case.class_id,
            calendar_key=case.calendar_key, entry_day=at.date(), now=now,
        )
        if duties:
            session.execute(insert(Duty), duties)
            credit_done_duties(session, Duty.__table__.c.case_id == case.id)  # its act already recorded: done
        docs = step.documents
    elif event in ACTION_EVENTS:
        _complete_duties(session, case.id, event, at, case.version)
        docs = policy.action_documents(event)
        if event == "record_reason":
            case.reason = payload["reason"]
        if event == "assign_helpers":
            for h in payload.get("helpers", []):
                session.add(Helper(case_id=case.id, name=h["name"], role=h.get("role", ""),
                                   staff_id=h.get("staff_id"), event_seq=case.version))
    if event == "escalate_outside":  # referred: tracked until return, its duties go on (no cancelling)
        case.outcome_reason = str(facts["reason"])
        rows = referral_duty_rows(ctx, policy, case.outcome_reason, case_id=case.id, school_id=case.school_id,
                                  class_id=case.class_id, calendar_key=case.calendar_key, day=at.date(), now=now)
        if rows:
            session.execute(insert(Duty), rows)
        docs = closing_documents(policy, event, after, case.outcome_reason)
    elif after.is_final:
        # a referred case keeps its referral reason when it returns (the 台账 shows why it was referred)
        case.outcome_reason = (str(facts.get("reason")) if facts.get("reason")
                               else case.outcome_reason if before in REFERRED_STATES else None)
        if after in FINAL_CLOSES_LEDGER:
            case.closed_on = at.date()
        _cancel_open_duties(session, [case.id])
        docs = closing_documents(policy, event, after, facts.get("reason"))
    if docs:
        session.execute(insert(DocumentRequest), document_rows(docs, case_id=case.id, event_seq=case.version, now=now))


def closing_documents(policy, event: str, after: CaseState, reason: str | None) -> list[str]:
    """Documents a case's closing requires: 复学登记 on return, the outside rule's report and the referral's
    papers (policy ``[referral.<reason>]``, e.g. the 提请依法处理函 on refusal) on referral."""
    if after is CaseState.returned:
        return ["return_register"]
    if event == "escalate_outside":
        rule = next((list(r.documents) for r in policy.outside if r.reason.value == reason), [])
        return list(dict.fromkeys(rule + policy.referral_spec(reason).documents))
    return []


def _cancel_open_duties(session: Session, case_ids: list[int]) -> None:
    session.execute(update(Duty).where(Duty.case_id.in_(case_ids), Duty.status == "open").values(status="cancelled"))


def close_cases(
    session: Session, ctx: CaseContext, cases: list[Case], event: str, *, actor: str, at: datetime, now: datetime,
    note: str = "", reason: str | None = None, idempotency_key: str | dict[int, str] | None = None,
) -> list[int]:
    """``mark_returned`` or ``excuse`` for many cases at once (the morning check's returns).

    ``idempotency_key``: one key for every case, or a key per case id (a county file closes the
    cases of many schools' submissions in one statement, each under its own submission's key).

    The same rows as :func:`apply_event` would write, set-based: each case's target state is read
    off the machine's unguarded transitions, one UPDATE moves them all, history, cancelled duties
    and documents follow in the same transaction. The caller holds the rows (locked on PostgreSQL).
    """
    if not cases:
        return []
    if event not in ("mark_returned", "excuse"):
        raise ValueError(f"close_cases handles mark_returned and excuse, not {event}")
    moves = [(c, CaseState(c.state), unguarded_target(event, c.state, c.id)) for c in cases]
    ids = [c.id for c in cases]
    after = moves[0][2]
    values = {"state": after.value, "version": Case.version + 1, "updated_at": now, "outcome_reason": reason if reason
              else sa_case((Case.state.in_([s.value for s in REFERRED_STATES]), Case.outcome_reason), else_=None)}
    if after in FINAL_CLOSES_LEDGER:
        values["closed_on"] = at.date()
    done = session.execute(
        update(Case).where(Case.id.in_(ids), Case.state.in_({m[1].value for m in moves}))
        .values(**values).execution_options(synchronize_session=False)
    ).rowcount
    if done != len(ids):
        raise RuntimeError(f"{len(ids) - done} case(s) changed while closing them; nothing written")
    facts = {"reason": reason} if reason else {}
    key_of = idempotency_key.get if isinstance(idempotency_key, dict) else (lambda _id: idempotency_key)
    session.execute(insert(CaseEvent.__table__), [event_row(
        case_id=c.id, seq=c.version + 1, event=event, from_state=before.value, to_state=target.value, actor=actor,
        at=at, now=now, reason=note, payload=dict(facts), idempotency_key=key_of(c.id),
    ) for c, before, target in moves])
    _cancel_open_duties(session, ids)
    docs = []
    for c, _, target in moves:
        kinds = closing_documents(ctx.policy(c.policy_name, c.policy_version), event, target, reason)
        docs += document_rows(kinds, case_id=c.id, event_seq=c.version + 1, now=now)
    if docs:
        session.execute(insert(DocumentRequest.__table__), docs)
    for c in cases:
        session.expire(c)
    return ids


def _complete_duties(session: Session, case_id: int, action: str, at: datetime, seq: int) -> None:
    for duty in session.scalars(
        select(Duty).where(Duty.case_id == case_id, Duty.action == action, Duty.status.in_(("open", "overdue")))
    ):
        duty.done_late = duty.status == "overdue" or at > duty.due_at
        duty.status, duty.done_at, duty.done_seq = "done", at, seq


def act(
    session: Session, ctx: CaseContext, case_id: int, event: str, *, actor: str, at: datetime, now: datetime,
    note: str = "", payload: dict[str, Any] | None = None, idempotency_key: str | None = None,
    expected_version: int | None = None, **facts: Any,
) -> Applied:
    """A staff action on a case, with the row locked for the transaction (see :func:`apply_event`).

    Staff cannot excuse a case as leave, exemption or transfer by saying so: only an approved request
    excuses (:mod:`store.cases.leave`), and its approval closes the case itself. A staff ``excuse`` with
    such a reason is accepted only when an approved request of that kind covers the case's first day
    (e.g. the approval was recorded before the case opened its paperwork); ``opened_in_error`` stays
    the clerk's own correction."""
    case = load_for_update(session, case_id)
    refuse_unapproved_leave(session, case, event, facts.get("reason"))
    return apply_event(session, ctx, case, event, actor=actor, at=at, now=now, note=note, payload=payload,
                       idempotency_key=idempotency_key, expected_version=expected_version, **facts)


LEAVE_REASONS = ("sick_leave", "personal_leave", "exemption", "transfer")


def refuse_unapproved_leave(session: Session, case: Case, event: str, reason: str | None) -> None:
    """:class:`ForbiddenEvent` for a staff ``excuse`` as leave/exemption/transfer no approved request covers."""
    if event == "excuse" and reason in LEAVE_REASONS and not _approved_request(session, case, reason):
        raise ForbiddenEvent(case.id, case.state, event,
                             f"{LEAVE_REASON_LABELS[reason]}须先申请并经审批人批准，批准后自动排除 — "
                             f"a {reason} excuse needs an approved request (请假/免学/转学申请)")


def _approved_request(session: Session, case: Case, kind: str) -> bool:
    return session.scalar(select(LeaveRequest.id).where(
        LeaveRequest.pupil_id == case.pupil_id, LeaveRequest.kind == kind, LeaveRequest.decision == "approved",
        (LeaveRequest.case_id == case.id)
        | ((LeaveRequest.first_day <= case.opened_on) & (LeaveRequest.last_day >= case.opened_on))).limit(1)) is not None


# -- the reference advance: every case through the machine, one by one ---------------------------
def escalate_through(session: Session, ctx: CaseContext, case: Case, streak: int, *, now: datetime) -> int:
    """Every escalation due to ``case`` once its absence streak is ``streak`` school days, in ladder
    order, each at the morning the streak reached its step (never before the case existed)."""
    policy = ctx.policy(case.policy_name, case.policy_version)
    calendar = ctx.calendar(case.calendar_key)
    moved = 0
    while True:
        nxt = policy.next_step(CaseState(case.state))
        done, met_at = {}, None
        if nxt is not None and nxt.requires is not None:  # e.g. 经学校2次劝返 (seed 000 §二.5)
            n, met_at = persuasions_done(session, case.id, nxt.requires, now)
            done = {nxt.requires.actions[0].value: n}
        waited, held_until = (step_waited(session, ctx, case, nxt.state, streak) if nxt is not None
                              else (None, None))
        step = policy.escalation_due(CaseState(case.state), streak, done, waited)
        if step is None:
            return moved
        entry = calendar.add_school_days(case.opened_on, step.day - 1)
        not_before = max(case.created_at, met_at) if met_at else case.created_at  # never before the condition held
        if held_until is not None:  # nor before the earlier notice's period has run (the legal notice)
            not_before = max(not_before, held_until)
        apply_event(session, ctx, case, "escalate", actor=SYSTEM,
                    at=escalation_at(policy, entry, not_before), now=now, streak=streak, done=done,
                    **({"waited": waited} if waited is not None else {}))
        moved += 1


def step_entered_at(session: Session, case_id: int, state: CaseState | str) -> datetime | None:
    """When the case actually entered the ladder step ``state`` (its escalation event), or None."""
    return session.scalar(select(CaseEvent.at).where(
        CaseEvent.case_id == case_id, CaseEvent.event == "escalate", CaseEvent.to_state == CaseState(state).value)
        .order_by(CaseEvent.seq.desc()).limit(1))


def step_waited(session: Session, ctx: CaseContext, case: Case, target: CaseState,
                streak: int) -> tuple[dict[str, int] | None, datetime | None]:
    """For a step that waits after the case's actual entry into an earlier one (``Policy.waits_for``: the legal
    notice after the return notice's period): the school days passed since that entry, as the machine's guard
    reads them (``waited``), and the morning check of the period's last day, before which the step is not
    reached. (None, None) when the step does not wait; a case without an entry record is not held (as the
    set-based sweep: ``store.cases.advance``)."""
    policy = ctx.policy(case.policy_name, case.policy_version)
    wait = policy.waits_for(target)
    if wait is None:
        return None, None
    state, days = wait
    entered = step_entered_at(session, case.id, state)
    if entered is None:
        return {state.value: days}, None
    calendar = ctx.calendar(case.calendar_key)
    first = calendar.add_school_days(entered.date(), 0)  # the entry day, or the school day after it
    passed = streak - calendar.school_days_between(case.opened_on, first)
    return {state.value: passed}, wait_ends(policy, calendar.add_school_days, entered.date(), days)
