"""The naive orchestration peer: one Prefect task run per case transition (issue 6; issue 20: measured
at ≥ 1,000 transitions, never extrapolated linearly).

``naive_sweep`` maps ``escalate_case`` over the due cases; each task loads its case, counts its
streak and fires ``escalate`` through the machine (``store.cases.actions.apply_event``), one
transaction each — what a developer who models "a case moves" as "a Prefect task" writes (with
a bounded thread pool, ``WORKERS``). Used by
``bench.figures naive_prefect`` (a ``prefect_test_harness`` server) and ``bench.prefect_sweep``
(beside the ``advance_cases`` flow, on its local server).
"""
from __future__ import annotations

from datetime import datetime

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

# Prefect's default runner starts every mapped task at once: a thousand threads queue for the
# database's connections (15) and, on SQLite, its one write lock, and time out on a loaded
# machine. Four workers keep Prefect's API calls overlapping without that pile-up.
WORKERS = 4


def due_ids(factory, as_of: datetime, n: int) -> list[int]:
    """The first ``n`` due cases (by id), selected as the advance selects them."""
    from store.cases.advance import due_cases_query, plan
    from store.cases.context import CaseContext
    from store.db import transaction

    with transaction(factory) as s:
        ids = []
        for step in plan(s, CaseContext(s), as_of):
            ids += [r.id for r in s.execute(due_cases_query(step, n, postgres=False))]
    return sorted(ids)[:n]


@task(cache_policy=NO_CACHE)
def escalate_case(case_id: int, as_of: datetime) -> int:
    from machines.states import CaseState
    from store.cases.actions import apply_event, load_for_update, step_waited
    from store.cases.context import CaseContext, effective_day, escalation_at
    from store.cases.effects import SYSTEM
    from store.db import transaction
    from tasks.runtime import store

    with transaction(store()) as s:
        case = load_for_update(s, case_id)
        c = CaseContext(s)
        policy, cal = c.policy(case.policy_name, case.policy_version), c.calendar(case.calendar_key)
        streak = cal.school_days_between(case.opened_on, effective_day(policy, as_of))
        nxt = policy.next_step(CaseState(case.state))
        waited, held = step_waited(s, c, case, nxt.state, streak) if nxt is not None else (None, None)
        step = policy.escalation_due(CaseState(case.state), streak, waited=waited)  # the legal notice's wait
        entry = cal.add_school_days(case.opened_on, step.day - 1)
        apply_event(s, c, case, "escalate", actor=SYSTEM,
                    at=escalation_at(policy, entry, max(case.created_at, held) if held else case.created_at),
                    now=as_of, streak=streak, **({"waited": waited} if waited is not None else {}))
    return case_id


@flow(name="naive_sweep", task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def naive_sweep(ids: list[int], as_of: datetime) -> int:
    return len([f.result() for f in escalate_case.map(ids, as_of=as_of)])
