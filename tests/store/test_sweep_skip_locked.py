"""A step of the PostgreSQL sweep is not taken as read to its end while a due case of it is locked by another
worker: that worker may roll back, and the case is then moved by the next batch of the same sweep, not a
day later (issue 20, pgwrites: ``_move_steps_pg``'s ``done`` mark)."""
from __future__ import annotations

import random
from datetime import datetime

from sqlalchemy import select

from store.cases.advance import due_cases_query, escalate_many, plan
from store.cases.context import CaseContext
from store.db import is_postgres, transaction
from store.models import Case
from tests.engine_helpers import setup_store
from tests.store.test_bulk_equivalence import populate

AS_OF = datetime(2026, 11, 27, 18, 30)


def test_a_step_is_not_done_while_another_worker_holds_one_of_its_cases(fresh_db):
    with transaction(fresh_db) as s:
        setup_store(s, pupils_per_class=25, grades=(1, 2, 3, 4, 5, 6))
        populate(s, random.Random(17), 60)
    with fresh_db() as s:
        ctx = CaseContext(s)
        steps = plan(s, ctx, AS_OF)
        postgres = is_postgres(s.bind)
        k, held = next((k, i) for k, st in enumerate(steps)
                       for i in s.scalars(due_cases_query(st, 1, postgres=False)))
        held_state = s.get(Case, held).state
        s.rollback()
    other = fresh_db()  # another worker: its transaction holds the case's row lock, then rolls back
    try:
        if postgres:
            other.execute(select(Case.id).where(Case.id == held).with_for_update())
        done: set[int] = set()
        with transaction(fresh_db) as s:
            first = escalate_many(s, CaseContext(s), steps, AS_OF, 10_000, done)
        assert first, "the batch moved the other due cases"
        if postgres:
            assert held not in {i for i, _ in first}, "SKIP LOCKED: the held case was left to its worker"
            assert k not in done, "a step with a skipped case is not read to its end"
        else:  # SQLite has one writer and reads every step in one statement: nothing is skipped, nothing marked
            assert held in {i for i, _ in first} and not done
    finally:
        other.rollback()
        other.close()
    with transaction(fresh_db) as s:
        again = escalate_many(s, CaseContext(s), steps, AS_OF, 10_000, done)
    with fresh_db() as s:
        assert s.get(Case, held).state != held_state, "moved within the same sweep once the lock was gone"
    if postgres:
        assert (held, k) in again
