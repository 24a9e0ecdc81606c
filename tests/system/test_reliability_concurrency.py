"""Concurrency (issue 7.2): several sweeps at once, two clerks on one case at once, several
document workers at once. Exactly-once effects; the loser of a race gets a clear 409.

Runs on PostgreSQL (row locks, ``FOR UPDATE SKIP LOCKED``) and on SQLite (one writer at a time).
Gap-free numbering under concurrent issuance in one process is proven in
tests/documents/test_documents_archive.py (``test_numbers_never_repeat_or_skip_under_concurrent_issuance_and_retries``,
``test_parallel_queue_workers_split_the_queue``); here two worker *processes* render one queue.
"""
from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from store.cases.advance import advance
from store.db import make_engine, session_factory, transaction
from store.models import Case, CaseEvent, Duty
from tests.reliability_support import (
    AS_OF, FINISHED, RENDER_NOW, Databases, count, differences, exactly_once_problems, forkserver, new_marks, open_cases, render_worker,
    snapshot,
)
from tests.web_support import MONDAY, Clock, build_county, pupils_of_class, in_process_app


@pytest.fixture
def databases(db_url: str, tmp_path: Path):
    dbs = Databases(db_url, tmp_path, "conc")
    yield dbs
    dbs.close()


def _at_once(n: int, work) -> list:
    """``work(i)`` in ``n`` threads released together; their results in order; re-raises an error."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    return results


def _duty_keys(factory, ids: list[int]) -> list[tuple]:
    """The duties behind ``ids`` by what they are, not by surrogate id: a duty the sweep itself
    opens (a case caught up several steps) gets its id in whichever order the runs commit."""
    with factory() as s:
        rows = s.execute(select(Duty.id, Duty.case_id, Duty.step, Duty.action).where(Duty.id.in_(ids))).all()
    by_id = {i: tuple(key) for i, *key in rows}
    return sorted(by_id[i] for i in ids)


# -- sweeps -----------------------------------------------------------------------------------------
def test_two_and_four_sweeps_at_once_move_every_due_case_exactly_once(databases):
    databases.build_template(lambda f: open_cases(f, pupils_per_class=9))
    ref_url = databases.copy("ref")
    ref_engine = make_engine(ref_url)
    try:
        alone = advance(session_factory(ref_engine), AS_OF, batch_size=2)
        reference = snapshot(session_factory(ref_engine))
        alone_overdue = _duty_keys(session_factory(ref_engine), alone.overdue_duty_ids)
    finally:
        ref_engine.dispose()
    assert alone.total_transitions == 12 * 5 + 6 * 3 and not exactly_once_problems(reference)

    for runs in (2, 4):
        url = databases.copy(f"x{runs}")
        engine = make_engine(url)
        try:
            factory = session_factory(engine)
            reports = _at_once(runs, lambda _: advance(factory, AS_OF, batch_size=2))
            got = snapshot(factory)
            overdue = _duty_keys(factory, [d for r in reports for d in r.overdue_duty_ids])
        finally:
            engine.dispose()
        assert exactly_once_problems(got) == []
        assert differences(got, reference) == {}, f"{runs} sweeps at once differ from one sweep"
        # every move and overdue mark reported by exactly one of the runs
        moved = [cid for r in reports for cid in r.escalated_case_ids]
        assert len(moved) == alone.total_transitions
        assert overdue == alone_overdue and len(overdue) == alone.overdue
        print(f"\n{runs} sweeps at once ({databases.url.get_backend_name()}): transitions per run "
              f"{[r.total_transitions for r in reports]}, overdue per run {[r.overdue for r in reports]}")
        databases.drop(url)


# -- two clerks on one case -----------------------------------------------------------------------------
@pytest.fixture
def web(fresh_db, tmp_path):
    with transaction(fresh_db) as s:
        county = build_county(s, sessions=False)
        pupils = [p.student_no for p in pupils_of_class(s, county.class_ids[0])]
    clock = Clock()
    app = in_process_app(fresh_db, tmp_path / "archive", clock)
    with TestClient(app) as client:
        yield {"client": client, "county": county, "clock": clock, "pupils": pupils, "factory": fresh_db}


def _act(web, username: str, case_id: int, body: dict, key: str | None = None):
    headers = {"Authorization": f"Bearer {web['county'].tokens[username]}"} | ({"Idempotency-Key": key} if key else {})
    return web["client"].post(f"/api/cases/{case_id}/actions", headers=headers, json=body)


def _cases_on_day_one(web, n: int) -> list[int]:
    client, teacher = web["client"], {"Authorization": f"Bearer {web['county'].tokens['teacher']}"}
    r = client.post("/api/morning-checks", headers=teacher,
                    json={"marks": [{"student_no": p, "status": "缺勤"} for p in web["pupils"][:n]]})
    assert r.status_code == 200, r.text
    web["clock"].at = MONDAY.replace(hour=10)
    advance(web["factory"], web["clock"]())  # absent → family_contacted: a phone call is due
    return sorted(r.json()["opened_case_ids"])


def _events(factory, case_id: int, event: str) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.case_id == case_id,
                                                                         CaseEvent.event == event))


def test_two_clerks_recording_on_the_page_they_opened_at_once_one_wins_the_other_gets_a_409(web):
    """Both saw version v and send it (the page's form does): one call is recorded, the other
    clerk is told the case changed, in Chinese and English. Each request carries its own
    Idempotency-Key (one per form), which must not switch the version check off."""
    for case_id in _cases_on_day_one(web, 4):
        with web["factory"]() as s:
            version = s.get(Case, case_id).version
        body = {"event": "record_phone_call", "expected_version": version, "payload": {"reached": True}}
        replies = _at_once(2, lambda i: _act(web, ("teacher", "school")[i], case_id, body, key=uuid.uuid4().hex))
        assert sorted(r.status_code for r in replies) == [200, 409], [r.text for r in replies]
        loser = next(r for r in replies if r.status_code == 409).json()
        assert "已被他人更新" in loser["message"] and "changed since you opened it" in loser["message"]
        assert loser["version"] == version + 1
        assert _events(web["factory"], case_id, "record_phone_call") == 1


def test_two_clerks_closing_one_case_two_ways_at_once_one_wins_the_other_gets_a_409(web):
    """No version sent (an API client): the row lock serialises them; the second finds the case closed."""
    for case_id in _cases_on_day_one(web, 3):
        bodies = [{"event": "mark_returned"}, {"event": "excuse", "reason": "opened_in_error"}]
        replies = _at_once(2, lambda i: _act(web, ("teacher", "school")[i], case_id, bodies[i]))
        assert sorted(r.status_code for r in replies) == [200, 409], [r.text for r in replies]
        winner = next(r for r in replies if r.status_code == 200).json()
        assert "当前处于" in next(r for r in replies if r.status_code == 409).json()["message"]
        with web["factory"]() as s:
            case = s.get(Case, case_id)
            finals = s.scalar(select(func.count()).select_from(CaseEvent).where(
                CaseEvent.case_id == case_id, CaseEvent.event.in_(("mark_returned", "excuse"))))
        assert (case.state, finals) == (winner["state"], 1)


def test_two_clerks_acting_through_the_store_with_one_version_one_gets_case_conflict(fresh_db):
    """The same rule below the web (store.cases.actions.act, as the CLI and services call it): the row
    lock serialises the two transactions, the second sees the new version and writes nothing."""
    from store.cases.actions import CaseConflict, act
    from store.cases.context import CaseContext
    from tests.engine_helpers import case_of, morning, setup_store, sweep

    with transaction(fresh_db) as s:
        code, pupils = setup_store(s, pupils_per_class=2, grades=(3,))
    morning(fresh_db, code, MONDAY.date(), pupils[:1])
    sweep(fresh_db, MONDAY.date())
    with fresh_db() as s:
        case = case_of(s, pupils[0])
    at = MONDAY.replace(hour=11)

    def clerk(i: int):
        try:
            with transaction(fresh_db) as s:
                return act(s, CaseContext(s), case.id, "record_phone_call", actor=f"clerk{i}", at=at, now=at,
                           expected_version=case.version, payload={"reached": True}).event.seq
        except CaseConflict as exc:
            return exc

    outcomes = _at_once(2, clerk)
    conflicts = [o for o in outcomes if isinstance(o, CaseConflict)]
    assert len(conflicts) == 1 and outcomes.count(case.version + 1) == 1, outcomes
    assert "已被他人更新" in str(conflicts[0]) and conflicts[0].current == case.version + 1
    assert _events(fresh_db, case.id, "record_phone_call") == 1


def test_a_double_click_sent_twice_at_once_is_recorded_once(web):
    """Same form, same Idempotency-Key, same version, twice at once: both answered 200, one event."""
    case_id = _cases_on_day_one(web, 1)[0]
    with web["factory"]() as s:
        version = s.get(Case, case_id).version
    body = {"event": "record_phone_call", "expected_version": version}
    replies = _at_once(2, lambda i: _act(web, "teacher", case_id, body, key="form-1"))
    assert [r.status_code for r in replies] == [200, 200], [r.text for r in replies]
    assert sorted(r.json()["duplicate"] for r in replies) == [False, True]
    assert _events(web["factory"], case_id, "record_phone_call") == 1


# -- document workers -------------------------------------------------------------------------------
def test_two_worker_processes_rendering_one_queue_issue_each_document_once(databases, tmp_path):
    def queue(factory) -> None:
        open_cases(factory, pupils_per_class=1)
        advance(factory, AS_OF)

    databases.build_template(queue)
    url, archive = databases.copy("docs"), tmp_path / "archive"
    ctx = forkserver()
    marks = [new_marks() for _ in range(2)]
    workers = [ctx.Process(target=render_worker, args=(url, str(archive), RENDER_NOW, 1000, m)) for m in marks]
    for w in workers:
        w.start()
    for w in workers:
        w.join(300)
    assert [w.exitcode for w in workers] == [0, 0] and all(m[FINISHED] for m in marks)
    engine = make_engine(url)
    try:
        got = snapshot(session_factory(engine), archive)
    finally:
        engine.dispose()
    assert exactly_once_problems(got) == []
    # two cases' ladder papers (the 控辍方案 and the 书面通报 now follow staff actions, not the sweep)
    assert len(got["documents"]) == len(got["requests"]) >= 8 and got["files_on_disk"]
    assert all(r[3] == "rendered" for r in got["requests"])
    assert count(got, "documents", lambda d: d[5] is not None) >= 2
