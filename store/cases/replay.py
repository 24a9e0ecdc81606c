"""Replay a case's history through the machine: the stored events must reproduce its state."""
from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.case_machine import EVENTS, bind
from machines.states import CaseState

from store.calendars import calendars
from store.models import Case, CaseEvent
from store.policy_files import PolicyRegistry

BOOKKEEPING = {"open", "migrate_policy", "late_mark"}  # history rows that are not machine transitions


class HistoryMismatch(AssertionError):
    pass


def replay(session: Session, case_id: int) -> CaseState:
    """Fire every recorded event on a fresh machine; raise if any step disagrees with the record."""
    case = session.get(Case, case_id)
    events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)).all()
    policies = PolicyRegistry(session)
    version = events[0].payload.get("policy", "").split("@")[-1] if events else ""
    policy = policies.get(case.policy_name, int(version) if version.isdigit() else case.policy_version)
    model = SimpleNamespace(id=case_id, state=None)
    for expected_seq, ev in enumerate(events, start=1):
        if ev.seq != expected_seq:
            raise HistoryMismatch(f"case {case_id}: event seq {ev.seq}, expected {expected_seq}")
        if ev.event == "open":
            model.state = CaseState.absent.value
        elif ev.event == "migrate_policy":
            policy = policies.get(case.policy_name, ev.payload["to_version"])
        elif ev.event == "late_mark":  # store.cases.late_marks: a late mark changed the case (no state change)
            pass
        elif ev.event in EVENTS:
            if model.state != ev.from_state:
                raise HistoryMismatch(f"case {case_id} seq {ev.seq}: from {ev.from_state}, machine at {model.state}")
            facts = _escalation_facts(case, policy, events, ev) if ev.event == "escalate" else {
                k: v for k, v in ev.payload.items() if k == "reason"}
            bind(model).fire(ev.event, policy=policy, **facts)
            model.state = CaseState(model.state).value
        else:
            raise HistoryMismatch(f"case {case_id} seq {ev.seq}: unknown event {ev.event}")
        if model.state != ev.to_state:
            raise HistoryMismatch(f"case {case_id} seq {ev.seq}: machine reached {model.state}, history says {ev.to_state}")
    if model.state != case.state or case.version != len(events):
        raise HistoryMismatch(f"case {case_id}: replay gives {model.state} v{len(events)}, stored {case.state} v{case.version}")
    return CaseState(model.state)


def _escalation_facts(case: Case, policy, events: list[CaseEvent], ev: CaseEvent) -> dict:
    """The guard's arguments of a recorded escalation, read back from the history before it: the streak it
    reached, the actions a ``requires`` counts, the school days since the awaited step was entered."""
    facts: dict = {"streak": ev.payload["day"]}
    step = policy.step(CaseState(ev.to_state))
    before = [e for e in events if e.seq < ev.seq]
    if step is not None and step.requires is not None:
        wanted = {a.value for a in step.requires.actions}
        facts["done"] = {step.requires.actions[0].value: sum(1 for e in before if e.event in wanted and e.at <= ev.at)}
    wait = policy.waits_for(step.state) if step is not None else None
    if wait is not None:
        entered = [e.at for e in before if e.event == "escalate" and e.to_state == wait[0].value]
        if entered:
            calendar = calendars()[case.calendar_key]
            first = calendar.add_school_days(entered[-1].date(), 0)
            facts["waited"] = {wait[0].value: calendar.school_days_between(first, ev.at.date()) - 1}
        else:
            facts["waited"] = {wait[0].value: wait[1]}
    return facts
