"""Concurrent sweeps share the work and never double a transition (PostgreSQL: FOR UPDATE SKIP LOCKED;
SQLite: one writer at a time), including cases that catch up several steps in one sweep."""
from __future__ import annotations

import random
import threading
from datetime import datetime

from sqlalchemy import func, select

from store.cases.advance import advance
from store.cases.replay import replay
from store.db import transaction
from store.models import Case, CaseEvent, DocumentRequest, Duty
from tests.engine_helpers import setup_store
from tests.store.test_bulk_equivalence import populate


def test_four_concurrent_sweeps_apply_each_transition_once(fresh_db):
    with transaction(fresh_db) as s:
        setup_store(s, pupils_per_class=25, grades=(1, 2, 3, 4, 5, 6))
        populate(s, random.Random(17), 150)
    as_of = datetime(2026, 11, 27, 18, 30)  # weeks after the first openings: many cases catch up several steps
    reports, errors = [], []
    barrier = threading.Barrier(4)

    def run():
        try:
            barrier.wait()
            reports.append(advance(fresh_db, as_of, batch_size=9))
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors
    with fresh_db() as s:
        events = s.execute(select(CaseEvent.case_id, CaseEvent.from_state, CaseEvent.seq)
                           .where(CaseEvent.event == "escalate").order_by(CaseEvent.case_id, CaseEvent.seq)).all()
        moves = [(c, f) for c, f, _ in events]
        docs = s.execute(select(DocumentRequest.case_id, DocumentRequest.kind, DocumentRequest.event_seq)).all()
        duty_keys = s.execute(select(Duty.case_id, Duty.step, Duty.action)).all()
        overdue = s.scalar(select(func.count()).select_from(Duty).where(Duty.status == "overdue"))
        cases = s.execute(select(Case.id, Case.state, Case.version)).all()
        ladder = {c: st for c, st, _ in cases}
        assert all(replay(s, cid).value == state for cid, state in ladder.items())
    caught_up = {c for c, _ in moves if sum(1 for x, _ in moves if x == c) >= 2}
    assert len(caught_up) >= 5, "the population has cases moving several steps in one sweep"
    assert sum(r.total_transitions for r in reports) == len(events) > 0
    assert len(set(moves)) == len(moves), "no case left the same state twice"
    assert len(set(docs)) == len(docs) and len(set(duty_keys)) == len(duty_keys)
    assert sum(r.overdue for r in reports) == overdue > 0
    assert sum(1 for r in reports if r.total_transitions) >= 1
    second = advance(fresh_db, as_of)
    assert second.total_transitions == 0 and second.overdue == 0
