"""A duty is done by what was already done (issue 18 item 2): a step's duty whose action is already on
the case's history is created done, pointing at that event, and is never marked overdue — on the
set-based sweep and on the per-case path alike; the timeline orders by the time of the act."""
from __future__ import annotations

from datetime import date, datetime, time

import pytest
from sqlalchemy import select

import store.cases.advance as advance_mod
from store.cases.actions import act
from store.cases.context import CaseContext
from store.cases.per_case import advance_per_case
from store.db import transaction
from store.models import CaseEvent, Duty
from store.reporting.queries import case_detail
from tests.engine_helpers import THREE_HELPERS, case_of, morning, setup_store, sweep

D1, D2, D3 = date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18)  # Mon–Wed, school days

# (the duty's action, the day its step is reached, the payload of the act) — every duty whose act the
# machine allows before its step: the later steps' acts (集体家访, 送达) are allowed only in their own step
KINDS = [("record_phone_call", D1, {}), ("record_home_visit", D2, {}),
         ("assign_helpers", D3, {"helpers": THREE_HELPERS})]


def _sweep(factory, path: str, as_of: datetime) -> None:
    if path.startswith("bulk"):
        sweep(factory, as_of.date(), as_of.time())
    else:
        with transaction(factory) as s:
            advance_per_case(s, CaseContext(s), as_of)


@pytest.mark.parametrize("path", ["bulk", "bulk_probe", "per_case"])
@pytest.mark.parametrize("action,step_day,payload", KINDS, ids=[k[0] for k in KINDS])
def test_a_duty_whose_act_is_recorded_is_created_done_and_never_overdue(factory, path, action, step_day, payload,
                                                                         monkeypatch):
    if path == "bulk_probe":  # the acts on record are "many": the per-case probe instead of the index (advance._acted)
        monkeypatch.setattr(advance_mod, "ACTS_FEW", 0)
    with transaction(factory) as s:
        code, pupils = setup_store(s)
    for day in (D1, D2, D3):
        morning(factory, code, day, [pupils[0]])
    with transaction(factory) as s:
        cid = case_of(s, pupils[0]).id
        # the act, logged at 13:45 of day 1, before any sweep has run
        act(s, CaseContext(s), cid, action, actor="班主任", at=datetime.combine(D1, time(13, 45)),
            now=datetime.combine(D1, time(13, 45)), payload=payload)
        seq = s.scalar(select(CaseEvent.seq).where(CaseEvent.case_id == cid, CaseEvent.event == action))
    # the sweep that raises the step runs after the act, as of a moment before it (13:44)
    _sweep(factory, path, datetime.combine(step_day, time(13, 44)))
    with factory() as s:  # created done by the sweep that raised it, not by a later one
        assert s.scalar(select(Duty.status).where(Duty.case_id == cid, Duty.action == action)) == "done"
    _sweep(factory, path, datetime.combine(D3, time(23, 0)))  # every deadline of the three days passed
    with factory() as s:
        duty = s.scalar(select(Duty).where(Duty.case_id == cid, Duty.action == action))
        assert (duty.status, duty.done_seq, duty.done_at, duty.overdue_at) == (
            "done", seq, datetime.combine(D1, time(13, 45)), None)
        assert duty.done_late is False
        others = s.scalars(select(Duty).where(Duty.case_id == cid, Duty.action != action)).all()
        end = datetime.combine(D3, time(23, 0))  # the rest still count: overdue when due, else open
        assert others and all(d.status == ("overdue" if d.due_at <= end else "open") and d.done_seq is None
                              for d in others)


def test_the_issues_example_and_the_timeline_by_time_of_act(factory):
    """Call logged 13:45; the sweep at 13:48 as of 13:44 raises 电话联系家长 due 17:00: created done; the
    escalation (09:00) is listed before the call on the timeline, as it happened."""
    with transaction(factory) as s:
        code, pupils = setup_store(s)
    morning(factory, code, D1, [pupils[0]])
    with transaction(factory) as s:
        cid = case_of(s, pupils[0]).id
        act(s, CaseContext(s), cid, "record_phone_call", actor="班主任", at=datetime.combine(D1, time(13, 45)),
            now=datetime.combine(D1, time(13, 45)))
    sweep(factory, D1, time(13, 44))
    sweep(factory, D1, time(17, 30))
    with factory() as s:
        duty = s.scalar(select(Duty).where(Duty.case_id == cid))
        assert (duty.action, duty.due_at, duty.status) == ("record_phone_call", datetime.combine(D1, time(17)), "done")
        events = case_detail(s, cid)["events"]
        assert [e["event"] for e in events] == ["open", "escalate", "record_phone_call"]
        assert [e["seq"] for e in events] == [1, 3, 2]  # recorded in another order than it happened
