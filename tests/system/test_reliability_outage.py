"""Outage (issue 7.4): PostgreSQL stops in the middle of a sweep and comes back; the task retries,
the run completes, nothing is half-applied and the result equals the same flow run undisturbed.

The test runs its own throwaway PostgreSQL cluster (``reliability_support.Cluster``, made as
deploy/testdb.sh makes one) so it can stop it without touching the shared test database. The real
``advance_cases`` flow runs under the session's Prefect test harness with small batches. A second
thread waits for the first batch to commit, then locks the duties table (so the next batch is
caught half-way: cases moved and events written, its duties not yet) and stops the server with
``pg_ctl -m immediate`` (every backend killed, as in a crash); three seconds later it starts it
again (crash recovery). PostgreSQL only: SQLite has no server to lose.
"""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from store.db import make_engine, session_factory
from store.models import CaseEvent
from tasks.runtime import using
from tests.reliability_support import (
    AS_OF, Cluster, Databases, count, differences, exactly_once_problems, open_cases, snapshot,
)

pytestmark = pytest.mark.slow

DOWN_SECONDS = 3.0


@pytest.fixture(scope="module", autouse=True)
def _harness(prefect_harness):
    from deploy.deployments import no_heartbeat

    with no_heartbeat():
        yield


@pytest.fixture
def cluster():
    c = Cluster()
    c.start()
    yield c
    c.destroy()


def _pull_the_plug(cluster: Cluster, url: str, seen: dict) -> None:
    """After the first committed batch: lock duties, stop the server, wait, start it again."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        deadline = time.monotonic() + 120
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as poll:
            while not poll.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.event == "escalate")):
                if time.monotonic() > deadline:
                    raise AssertionError("the sweep committed no batch in 120 s")
                time.sleep(0.005)
        conn = engine.connect()
        conn.execute(text("LOCK TABLE duties IN ACCESS EXCLUSIVE MODE"))  # waits for the batch in flight
        seen["escalated_at_stop"] = conn.scalar(
            select(func.count()).select_from(CaseEvent).where(CaseEvent.event == "escalate"))
        time.sleep(0.3)  # let the next batch move its cases and write its events, then block on duties
        seen["blocked"] = conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"))
        cluster.stop("immediate")
        seen["stopped_at"] = time.monotonic()
        conn.invalidate()  # the server is gone: drop the connection without a ROLLBACK
        time.sleep(DOWN_SECONDS)
        cluster.start()
        seen["started_at"] = time.monotonic()
    except BaseException as exc:  # surfaced by the test
        seen["error"] = exc
        if not cluster.running:
            cluster.start()
    finally:
        engine.dispose()


def test_a_sweep_survives_postgresql_stopping_mid_run(cluster, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    from flows.advance_cases import advance_cases

    databases = Databases(cluster.url(), tmp_path, "outage")
    try:
        databases.build_template(lambda f: open_cases(f, pupils_per_class=9))
        ref_url, url = databases.copy("ref"), databases.copy("run")
        ref_engine = make_engine(ref_url)
        try:  # the reference: the same flow, undisturbed
            with using(session_factory(ref_engine)):
                undisturbed = advance_cases(as_of=AS_OF, batch_size=2, render=False)
            reference = snapshot(session_factory(ref_engine))
        finally:
            ref_engine.dispose()
        transitions = count(reference, "events", lambda e: e[2] == "escalate")
        assert undisturbed["escalated"] == transitions == 12 * 5 + 6 * 3

        seen: dict = {}
        plug = threading.Thread(target=_pull_the_plug, args=(cluster, url, seen), daemon=True)
        engine = make_engine(url)
        try:
            factory = session_factory(engine)
            plug.start()
            with using(factory):
                state = advance_cases(as_of=AS_OF, batch_size=2, render=False, return_state=True)
            plug.join(120)
            assert "error" not in seen, seen.get("error")
            assert state.is_completed(), state
            result = state.result()
            got = snapshot(factory)
        finally:
            engine.dispose()

        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(task_run_filter=TaskRunFilter(
                flow_run_id=TaskRunFilterFlowRunId(any_=[state.state_details.flow_run_id])))
        retried = {(t.name, t.run_count) for t in runs if t.run_count > 1}
        print(f"\noutage: PostgreSQL stopped after {seen['escalated_at_stop']} of {transitions} "
              f"escalations ({seen['blocked']} batch blocked half-way), down {seen['started_at'] - seen['stopped_at']:.1f} s; "
              f"{len(runs)} task runs, retried: {sorted(retried)}")
        assert 0 < seen["escalated_at_stop"] < transitions, "the server must stop in the middle of the run"
        assert retried, "a task run must have been retried"
        assert (result["escalated"], result["overdue"]) == (undisturbed["escalated"], undisturbed["overdue"])
        assert exactly_once_problems(got) == []
        assert differences(got, reference) == {}
    finally:
        databases.close()
