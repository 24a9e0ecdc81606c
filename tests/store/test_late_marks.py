"""Time in the intake (issue 14, rows 4, 5, 10 and the racing checks of row 14), SQLite and PostgreSQL.

A check for a past day is applied in its place on each pupil's timeline (store.cases.late_marks): it never
touches a case opened after its day, a late absence followed by present days moves its case only over
the steps due before the pupil was back, corrections are applied even back to an earlier content,
and overlapping checks of one school racing each other are all recorded in some serial order. The
property: the same checks sent late in any order give the ledger of the checks sent on time.
"""
from __future__ import annotations

import random
import threading
from datetime import date, datetime, time, timedelta

from hypothesis import HealthCheck, example, given, settings, strategies as st
from sqlalchemy import select

from store.calendars import calendars
from store.cases.context import CaseContext
from store.db import transaction
from store.cases.intake import MarkIn, record_morning_check
from store.models import AttendanceMark, Case, CaseEvent, DocumentRequest, Pupil, Submission
from store.cases.replay import replay
from tests.engine_helpers import case_of, morning, setup_store, sweep

CAL = calendars()["default"]


def steps(session, case_id: int) -> list[tuple]:
    """The case's history as (event, from, to), without the late-mark bookkeeping."""
    return [(e.event, e.from_state, e.to_state) for e in session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.event != "late_mark").order_by(CaseEvent.seq))]


def documents(session, case_id: int) -> set[str]:
    return set(session.scalars(select(DocumentRequest.kind).where(DocumentRequest.case_id == case_id)))


def late_check(factory, school: str, day: date, sent: datetime, statuses: dict[str, str], *, complete: bool = True):
    with transaction(factory) as s:
        return record_morning_check(s, CaseContext(s), school_code=school, day=day, source="test", submitted_by="补报员",
                                    marks=[MarkIn(n, st) for n, st in statuses.items()], now=sent, complete=complete)


# -- row 4 -----------------------------------------------------------------------------------------------
def test_a_late_whole_check_never_closes_a_case_opened_after_its_day(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    x, y = pupils[0], pupils[1]
    morning(factory, school, date(2026, 12, 7), [x])  # Monday: x absent (Thursday 12-03 was never sent)
    sweep(factory, date(2026, 12, 7))
    result = late_check(factory, school, date(2026, 12, 3), datetime(2026, 12, 8, 7, 40), {y: "缺勤"})
    assert result.returned == [] and not result.duplicate
    sweep(factory, date(2026, 12, 8))
    with factory() as s:
        later = case_of(s, x)
        assert later.opened_on == date(2026, 12, 7) and later.closed_on is None and later.state == "visited"
        assert "return_register" not in documents(s, later.id)
        assert [e for e in steps(s, later.id) if e[0] != "escalate"] == [("open", None, "absent")]
        # y, absent on 12-03 (and 12-04, not sent) and present in Monday's whole check: the late case
        # opened on its day, moved over the steps of those two days and returned on Monday
        late = case_of(s, y)
        assert (late.opened_on, late.closed_on, late.state) == (date(2026, 12, 3), date(2026, 12, 7), "returned")
        assert steps(s, late.id) == [("open", None, "absent"), ("escalate", "absent", "family_contacted"),
                                     ("escalate", "family_contacted", "visited"),
                                     ("mark_returned", "visited", "returned")]
        assert replay(s, late.id).value == "returned"
        from store.cases.late_marks import late_marks_for_review
        assert result.late == 1  # only y concerns the sweep: x is not listed and has no case on 12-03
        review = late_marks_for_review(s)
        assert [(r["pupil_id"], r["day"], r["case_id"]) for r in review] == [(late.pupil_id, date(2026, 12, 3), late.id)]
        assert "opened_late" in review[0]["note"] and review[0]["applied_at"] == datetime(2026, 12, 8, 9, 30)


# -- row 5 -----------------------------------------------------------------------------------------------
def test_a_late_absence_followed_by_present_days_moves_only_the_steps_due_before_the_return(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    x = pupils[0]
    for day in CAL.school_days(date(2026, 11, 3), date(2026, 12, 4)):  # x in class every day but 11-02
        morning(factory, school, day, [])
        sweep(factory, day)
    late_check(factory, school, date(2026, 11, 2), datetime(2026, 12, 7, 8, 0), {x: "缺勤"}, complete=False)
    report = sweep(factory, date(2026, 12, 7))
    with factory() as s:
        case = case_of(s, x)
        assert (case.opened_on, case.closed_on, case.state) == (date(2026, 11, 2), date(2026, 11, 3), "returned")
        assert steps(s, case.id) == [("open", None, "absent"), ("escalate", "absent", "family_contacted"),
                                     ("mark_returned", "family_contacted", "returned")]
        assert not documents(s, case.id) & {"legal_notice", "parent_notice", "report_to_bureau", "return_notice"}
        flags = s.scalars(select(CaseEvent.payload).where(CaseEvent.case_id == case.id,
                                                          CaseEvent.event == "late_mark")).all()
        assert [f["change"] for f in flags] == ["opened_late", "closed_late"]
        assert replay(s, case.id).value == "returned"
    assert report.late_marks == 1


def test_a_late_absence_right_before_an_open_case_dates_it_back_and_the_sweep_moves_it_the_due_steps(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    x = pupils[0]
    tue, wed = date(2026, 11, 17), date(2026, 11, 18)
    morning(factory, school, wed, [x])  # Tuesday's check was not sent
    sweep(factory, wed)
    late_check(factory, school, tue, datetime(2026, 11, 19, 7, 50), {x: "缺勤"})
    morning(factory, school, date(2026, 11, 19), [x])
    sweep(factory, date(2026, 11, 19))
    with factory() as s:
        case = case_of(s, x)
        assert case.opened_on == tue and case.state == "collective_visit"  # Tue, Wed, Thu: day 3
        from store.models import LateMark
        assert s.scalar(select(LateMark.note)).startswith("backdated")


# -- row 10 ----------------------------------------------------------------------------------------------
def test_a_correction_back_to_an_earlier_content_is_applied_again(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    x, mon = pupils[0], date(2026, 11, 16)
    first = morning(factory, school, mon, [x], at=time(8, 0))
    back = morning(factory, school, mon, [], statuses={x: "到校"}, at=time(8, 10))
    again = morning(factory, school, mon, [x], at=time(8, 20))
    retry = morning(factory, school, mon, [x], at=time(8, 21))
    assert [r.duplicate for r in (first, back, again, retry)] == [False, False, False, True]
    assert len(back.returned) == 1 and len(again.opened) == 1 and retry.opened == []
    assert retry.submission_id == again.submission_id
    with factory() as s:
        case = case_of(s, x)
        assert case.state == "absent" and case.id == again.opened[0]
        assert s.scalar(select(AttendanceMark.status).join(Pupil).where(Pupil.student_no == x)) == "unexcused"
        assert len(s.scalars(select(Submission.id)).all()) == 3


# -- row 14: overlapping checks racing -----------------------------------------------------------------------
def test_overlapping_checks_of_one_school_racing_are_all_recorded_in_a_serial_order(fresh_db):
    with transaction(fresh_db) as s:
        code, pupils = setup_store(s, pupils_per_class=4)
    mon, n = date(2026, 11, 16), 4
    pick = random.Random(3)
    checks = [{p: pick.choice(["缺勤", "到校", "病假"]) for p in pupils[:5]} for _ in range(n)]
    barrier, results, errors = threading.Barrier(n), {}, []

    def clerk(i: int) -> None:
        try:
            barrier.wait(10)
            with transaction(fresh_db) as s:
                results[i] = record_morning_check(
                    s, CaseContext(s), school_code=code, day=mon, marks=[MarkIn(p, st) for p, st in checks[i].items()],
                    source="web", submitted_by=f"clerk{i}", now=datetime(2026, 11, 16, 8, 0, i), complete=False)
        except Exception as exc:  # noqa: BLE001 - any failure of a clerk is what this test looks for
            errors.append(repr(exc))

    threads = [threading.Thread(target=clerk, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(results) == n
    # the order the checks were applied in is the order of their submissions (duplicates: no change)
    order = sorted((r.submission_id, i) for i, r in results.items() if not r.duplicate)
    expected: dict[str, str] = {}
    opened: set[str] = set()  # a case opens on 缺勤 and closes on 到校; a 病假 not yet approved leaves it as it is
    for _, i in order:
        expected.update({p: {"缺勤": "unexcused", "到校": "present", "病假": "sick_leave"}[st]
                         for p, st in checks[i].items()})
        opened |= {p for p, st in checks[i].items() if st == "缺勤"}
        opened -= {p for p, st in checks[i].items() if st == "到校"}
    with transaction(fresh_db) as s:
        marks = dict(s.execute(select(Pupil.student_no, AttendanceMark.status).join(Pupil)).all())
        open_now = set(s.scalars(select(Pupil.student_no).join(Case, Case.pupil_id == Pupil.id)
                                 .where(Case.state == "absent")))
        subs = s.scalars(select(Submission.id)).all()
    assert marks == expected
    assert open_now == opened
    assert sorted(subs) == [sid for sid, _ in order]


def test_two_sweeps_at_once_apply_each_late_mark_once(fresh_db):
    from store.cases.advance import advance

    with transaction(fresh_db) as s:
        code, pupils = setup_store(s, pupils_per_class=4)
    morning(fresh_db, code, date(2026, 11, 17), [])  # Tuesday: everyone in class
    late_check(fresh_db, code, date(2026, 11, 16), datetime(2026, 11, 18, 7, 0), {p: "缺勤" for p in pupils[:3]})
    reports, errors = [], []

    def run() -> None:
        try:
            reports.append(advance(fresh_db, datetime(2026, 11, 18, 9, 30)))
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(repr(exc))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and sorted(r.late_marks for r in reports) == [0, 3]
    with transaction(fresh_db) as s:
        cases = s.execute(select(Case.opened_on, Case.closed_on, Case.state)).all()
        flags = s.scalars(select(CaseEvent.payload).where(CaseEvent.event == "late_mark")).all()
    assert sorted(cases) == [(date(2026, 11, 16), date(2026, 11, 17), "returned")] * 3
    assert sorted(f["change"] for f in flags) == ["closed_late"] * 3 + ["opened_late"] * 3


# -- the property ------------------------------------------------------------------------------------------
WINDOW = CAL.school_days(date(2026, 11, 16), date(2026, 11, 25))  # eight school days
END = datetime(2026, 12, 4, 9, 30)
# None: not listed. A 病假 mark now opens an approval (store/cases/leave.py): whether a leave reported late and
# one reported on time are counted alike while unapproved is not yet proved here (issue 17's closing note).
STATUS = st.sampled_from(["缺勤", "缺勤", "到校", None])


def ledger(session, pupils: list[str]) -> dict:
    """Per pupil: each case's days, state, outcome and history steps (no timestamps, no late flags)."""
    out = {}
    for no in pupils:
        cases = session.scalars(select(Case).join(Pupil, Pupil.id == Case.pupil_id).where(Pupil.student_no == no)
                                .order_by(Case.opened_on, Case.id)).all()
        out[no] = [(c.opened_on, c.closed_on, c.state, c.outcome_reason, steps(session, c.id)) for c in cases]
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(  # returns, a relapse, a day never sent, partial checks, arrivals out of order
    grid=[["缺勤", "到校", "缺勤"], ["缺勤", "缺勤", None], ["到校", "缺勤", None], ["缺勤", "到校", "缺勤"],
          [None, "缺勤", "缺勤"], ["缺勤", "缺勤", "到校"], ["到校", None, "缺勤"], ["缺勤", "缺勤", "缺勤"]],
    shape=["whole", "whole", "partial", "whole", "missing", "whole", "partial", "whole"],
    delays=[8, 1, 5, 2, 7, 3, 1, 4])
@given(grid=st.lists(st.lists(STATUS, min_size=3, max_size=3), min_size=len(WINDOW), max_size=len(WINDOW)),
       shape=st.lists(st.sampled_from(["whole", "whole", "partial", "missing"]), min_size=len(WINDOW),
                      max_size=len(WINDOW)),
       delays=st.lists(st.integers(1, 8), min_size=len(WINDOW), max_size=len(WINDOW)))
def test_checks_sent_late_in_any_order_give_the_ledger_of_checks_sent_on_time(_outer_connection, factory, grid, shape,
                                                                               delays):
    if "late_county" not in _outer_connection.info:  # once per test: the examples share the county
        with factory() as s:
            _outer_connection.info["late_county"] = setup_store(s, pupils_per_class=2, grades=(3,))
            s.commit()
    school, roster = _outer_connection.info["late_county"]
    pupils = roster[:3]
    checks = [(day, {p: st for p, st in zip(pupils, row) if st is not None}, kind == "whole")
              for day, row, kind in zip(WINDOW, grid, shape) if kind != "missing"]
    results = {}
    for path in ("on_time", "late"):
        trial = _outer_connection.begin_nested()
        try:
            if path == "on_time":
                for day in WINDOW:
                    for d, statuses, whole in checks:
                        if d == day:
                            late_check(factory, school, d, datetime.combine(d, time(8, 0)), statuses, complete=whole)
                    sweep(factory, day)
            else:  # each check some days after its own, in the order they arrive, no sweep until the end
                arrivals = sorted((datetime.combine(d + timedelta(days=delay), time(8, 0)) + timedelta(minutes=i), i)
                                  for i, ((d, _, _), delay) in enumerate(zip(checks, delays)))
                for sent, i in arrivals:
                    d, statuses, whole = checks[i]
                    late_check(factory, school, d, sent, statuses, complete=whole)
            sweep(factory, END.date(), END.time())
            with factory() as s:
                results[path] = ledger(s, pupils)
        finally:
            trial.rollback()
    # One difference is the law's: a case registered late (its check arrived late, or the final sweep opened it)
    # enters the township step (返校通知书) when it is registered, and the legal notice waits for that notice's
    # period (Policy.waits_for): such a case may not have reached judicial_notice yet, or a run that ended within
    # the period never does, though the on-time path did. Everything else is the same ledger.
    folded = {p: _fold_judicial(r) for p, r in results.items()}
    assert folded["late"] == folded["on_time"]
    for no, cases in results["late"].items():
        for late_case, on_time_case in zip(cases, results["on_time"][no]):
            if any(to == "judicial_notice" for _, _, to in late_case[4]):
                assert any(to == "judicial_notice" for _, _, to in on_time_case[4]), (no, late_case)


def _fold_judicial(ledger: dict) -> dict:
    """The ledger with the judicial step folded into the township step."""
    def fold(state):
        return "township_notice" if state == "judicial_notice" else state

    return {no: [(opened, closed, fold(state), outcome,
                  [(e, fold(f), t) for e, f, t in history if not (e == "escalate" and t == "judicial_notice")])
                 for opened, closed, state, outcome, history in cases] for no, cases in ledger.items()}
