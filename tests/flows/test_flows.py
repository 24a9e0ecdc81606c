"""Flows under one session-wide Prefect test harness, on SQLite and PostgreSQL (fresh_db: real commits).

Each test builds a small county, then runs the real flows with ``as_of`` given (the clock is a
parameter). Flow runs cost ~0.3–2 s each here, so the tests run few of them.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import date, datetime

import pytest
from sqlalchemy import func, select

from store.db import transaction
from store.models import Case, CaseEvent, DocumentRequest, Duty, Pupil
from tasks.intake import MarkRow, MorningCheckSubmission
from tasks.runtime import using
from tests.engine_helpers import setup_store

MON, TUE = date(2026, 11, 16), date(2026, 11, 17)


@pytest.fixture(scope="module", autouse=True)
def _harness(prefect_harness):
    from deploy.deployments import no_heartbeat

    with no_heartbeat():
        yield


@pytest.fixture
def county(fresh_db):
    """(factory, school code, student numbers) of a one-school county, tasks bound to it."""
    with transaction(fresh_db) as s:
        code, pupils = setup_store(s, pupils_per_class=5, grades=(3, 7))
    with using(fresh_db):
        yield fresh_db, code, pupils


def _counts(factory) -> dict:
    with transaction(factory) as s:
        return {name: s.scalar(select(func.count()).select_from(model))
                for name, model in (("cases", Case), ("events", CaseEvent), ("duties", Duty), ("docs", DocumentRequest))}


def _check(code, day, marks, **kw) -> MorningCheckSubmission:
    return MorningCheckSubmission(day=day, school_code=code, source="api", submitted_by="班主任",
                                  submitted_at=datetime.combine(day, datetime.min.time()).replace(hour=8),
                                  marks=[MarkRow(student_no=n, status=s) for n, s in marks], **kw).signed()


def test_morning_check_opens_exactly_the_unexcused_absences_and_returns_who_is_back(county):
    from flows.morning_check import morning_check

    factory, code, pupils = county
    a, b, sick, present = pupils[:4]
    out = morning_check(_check(code, MON, [(a, "缺勤"), (b, "unexcused"), (sick, "病假"), (present, "到校")]))
    assert (out["opened"], out["excused"], out["returned"]) == (2, 0, 0)
    with transaction(factory) as s:
        opened = set(s.scalars(select(Pupil.student_no).join(Case, Case.pupil_id == Pupil.id)))
    assert opened == {a, b}

    again = morning_check(_check(code, MON, [(a, "缺勤"), (b, "unexcused"), (sick, "病假"), (present, "到校")]))
    assert again["schools"][0]["duplicate"] and again["opened"] == 0

    tue = morning_check(_check(code, TUE, [(a, "缺勤")]))  # b is back
    assert (tue["opened"], tue["continuing"], tue["returned"]) == (0, 1, 1)
    with transaction(factory) as s:
        states = dict(s.execute(select(Pupil.student_no, Case.state).join(Case, Case.pupil_id == Pupil.id)).all())
    assert states == {a: "absent", b: "returned"}


def test_a_county_sis_export_is_split_by_school_and_unknown_schools_are_refused(county):
    from flows.morning_check import morning_check
    from tasks.intake import SubmissionRejected

    factory, code, pupils = county
    sis = MorningCheckSubmission(day=MON, source="sis", schools=[code], submitted_at=datetime(2026, 11, 16, 8),
                                 marks=[MarkRow(student_no=pupils[0], status="缺勤", school_code=code)]).signed()
    assert morning_check(sis)["opened"] == 1
    bad = MorningCheckSubmission(day=MON, source="sis", marks=[MarkRow(student_no="X", status="缺勤", school_code="NOPE")])
    with pytest.raises(SubmissionRejected):
        morning_check(bad)


def _states_in_the_file_alone(factory, tmp_path) -> dict:
    """The cases' states as the SQLite database file holds them without its write-ahead log."""
    import shutil
    import sqlite3

    alone = tmp_path / "alone.sqlite"
    shutil.copyfile(factory.kw["bind"].url.database, alone)
    con = sqlite3.connect(alone)
    try:
        return dict(con.execute("SELECT state, count(*) FROM cases GROUP BY state").fetchall())
    finally:
        con.close()


def test_a_sweep_run_twice_for_the_same_instant_changes_nothing_the_second_time(county, tmp_path):
    from flows.advance_cases import advance_cases
    from flows.morning_check import morning_check

    factory, code, pupils = county
    morning_check(_check(code, MON, [(n, "缺勤") for n in pupils[:3]]))
    morning_check(_check(code, TUE, [(n, "缺勤") for n in pupils[:3]]))
    first = advance_cases(as_of=datetime(2026, 11, 17, 19, 0), render=False)
    assert first["escalated"] == 6 and first["overdue"] == 6  # absent → family_contacted → visited; calls and visits missed
    before = _counts(factory)
    if factory.kw["bind"].dialect.name == "sqlite":  # the sweep ends by writing its log back into the database file
        assert _states_in_the_file_alone(factory, tmp_path) == {"visited": 3}
    second = advance_cases(as_of=datetime(2026, 11, 17, 19, 0), render=False)
    assert (second["escalated"], second["overdue"]) == (0, 0)
    assert _counts(factory) == before
    assert second["cases_by_state"]["visited"] == 3


def test_a_batch_that_fails_after_its_commit_retries_without_doubling_events_or_documents(county, monkeypatch):
    import store.cases.advance as store_advance
    import tasks.sweep as sweep
    from flows.advance_cases import advance_cases
    from flows.morning_check import morning_check

    factory, code, pupils = county
    morning_check(_check(code, MON, [(n, "缺勤") for n in pupils[:4]]))

    real_batch, real_transaction = sweep.bulk.escalate_many, sweep.transaction
    state = {"moved": False, "failed": 0}

    class FlakyBulk:  # store.cases.advance, except that a batch remembers it moved cases
        def __getattr__(self, name):
            return getattr(store_advance, name)

        @staticmethod
        def escalate_many(*args, **kwargs):
            moved = real_batch(*args, **kwargs)
            state["moved"] = bool(moved)
            return moved

    @contextmanager
    def flaky_transaction(f):
        with real_transaction(f) as s:
            yield s
        if state["moved"] and not state["failed"]:  # committed, then the connection is lost
            state["failed"] += 1
            raise ConnectionError("connection lost after COMMIT")

    monkeypatch.setattr(sweep, "bulk", FlakyBulk())
    monkeypatch.setattr(sweep, "transaction", flaky_transaction)
    advance_cases(as_of=datetime(2026, 11, 16, 9, 30), batch_size=2, render=False)
    assert state["failed"] == 1
    with transaction(factory) as s:
        escalations = s.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.event == "escalate"))
        per_case = s.execute(select(DocumentRequest.case_id, DocumentRequest.kind, func.count())
                             .group_by(DocumentRequest.case_id, DocumentRequest.kind)).all()
        states = set(s.scalars(select(Case.state)))
    assert escalations == 4 and states == {"family_contacted"}
    assert len(per_case) == 4 and all(n == 1 for _, _, n in per_case)


def test_a_batch_that_fails_within_a_run_of_batches_ends_the_run_and_the_flow_counts_every_committed_move(county,
                                                                                                       monkeypatch):
    """A sweep task run takes batch after batch: one that fails after others committed ends the run with their
    counts, and the flow asks again, so the run's report counts every move once."""
    import store.cases.advance as store_advance
    import tasks.sweep as sweep
    from flows.advance_cases import advance_cases
    from flows.morning_check import morning_check

    factory, code, pupils = county
    morning_check(_check(code, MON, [(n, "缺勤") for n in pupils[:6]]))
    real_many, calls = sweep.bulk.escalate_many, {"n": 0}

    class FlakyBulk:  # store.cases.advance, except that the second batch fails before its commit, once
        def __getattr__(self, name):
            return getattr(store_advance, name)

        @staticmethod
        def escalate_many(*args, **kwargs):
            calls["n"] += 1
            moved = real_many(*args, **kwargs)
            if calls["n"] == 2:
                raise ConnectionError("connection lost before COMMIT")
            return moved

    monkeypatch.setattr(sweep, "bulk", FlakyBulk())
    out = advance_cases(as_of=datetime(2026, 11, 16, 9, 30), batch_size=2, render=False)
    assert out["escalated"] == 6 and out["escalated_by_step"] == {"family_contacted": 6}
    with transaction(factory) as s:
        assert s.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.event == "escalate")) == 6
        assert set(s.scalars(select(Case.state))) == {"family_contacted"}


def test_reports_reminders_and_the_spot_check_run_as_flows(county):
    from flows.advance_cases import advance_cases
    from flows.duty_reminders import duty_reminders
    from flows.monthly_report import monthly_report
    from flows.morning_check import morning_check
    from flows.quarterly_spot_check import quarterly_spot_check

    factory, code, pupils = county
    morning_check(_check(code, MON, [(pupils[0], "缺勤")]))
    advance_cases(as_of=datetime(2026, 11, 16, 18, 0), render=False)  # the day-1 call is due 17:00: overdue
    r = duty_reminders(as_of=datetime(2026, 11, 16, 18, 5))
    # overdue: the case's day-1 call and the same-day duty of the truancy tier (a prevention duty, store.duties.ledger)
    assert (r["overdue_notices"], r["accountability"], r["sent"]) == (2, 2, 2)
    from store.models.notifications import Notification

    with transaction(factory) as s:
        keys = s.scalars(select(Notification.key).where(Notification.kind == "duty_overdue")).all()
    assert sorted(k.split(":")[0] for k in keys) == ["duty", "prevention_duty"]
    assert duty_reminders(as_of=datetime(2026, 11, 16, 18, 5))["overdue_notices"] == 0  # keyed: once
    on_time = monthly_report(level="school", as_of=datetime(2026, 11, 23, 16, 0))
    late = monthly_report(level="township", as_of=datetime(2026, 11, 26, 9, 0))
    assert (on_time["filed"], on_time["late"]) == (1, 0) and (late["filed"], late["late"]) == (1, 1)
    check = quarterly_spot_check(as_of=datetime(2026, 11, 15, 10, 0), seed=42)
    assert check["quarter"] == "2026Q4" and check["seed"] == 42 and check["created"]
    assert quarterly_spot_check(as_of=datetime(2026, 11, 20, 10, 0), seed=7)["seed"] == 42  # sealed: no redraw
    # the people's reports (issue 17): the monthly runs above opened the school's and the township's duties (the
    # morning run would have drafted them days ahead: once); it opens Monday's weekly counts; what is missed is overdue
    from flows.report_duties import report_duties
    from store.duties.ledger import overdue

    out = report_duties(as_of=datetime(2026, 11, 23, 7, 30))
    assert out["drafted"] == {"school": 0, "township": 0} and out["weekly_count_duties"] == 2
    assert report_duties(as_of=datetime(2026, 11, 24, 7, 30))["overdue"] == 3  # the school's 月报 and both classes' counts
    with transaction(factory) as s:
        missed = overdue(s, datetime(2026, 11, 24, 7, 30), kinds=("report_due",))
    assert sorted(d["action"] for d in missed) == ["submit_report", "submit_weekly_count", "submit_weekly_count"]


def test_the_sweep_flow_applies_a_check_sent_late_in_its_place(county):
    """A check for Monday sent on Wednesday is recorded by the morning_check flow and applied by the
    advance_cases flow (the deployment the scheduler runs), not only by store.cases.advance.advance."""
    from flows.advance_cases import advance_cases
    from flows.morning_check import morning_check

    factory, code, pupils = county
    x = pupils[0]
    wed = date(2026, 11, 18)
    morning_check(_check(code, TUE, []))
    morning_check(_check(code, wed, []))
    late = _check(code, MON, [(x, "缺勤")])
    late = late.model_copy(update={"submitted_at": datetime(2026, 11, 18, 9, 0)}).signed()
    morning_check(late)
    with transaction(factory) as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 0  # recorded, not yet applied
    out = advance_cases(as_of=datetime(2026, 11, 18, 9, 30), render=False)
    assert out["late_marks"] == 1
    with transaction(factory) as s:
        case = s.scalars(select(Case)).one()
        # absent Monday, present Tuesday: returned on Tuesday after one ladder step, never further
        assert (case.opened_on, case.closed_on, case.state) == (MON, TUE, "returned")
