"""Reports, spot checks and notifications read off the ledger (tasks through .fn(), rolled back)."""
from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import func, select

from store.reporting import reports as rp
from store.cases.actions import act
from store.cases.context import CaseContext
from store.cases.leave import decide
from store.models.leave import LeaveRequest
from store.db import transaction
from store.models import Case, Pupil, School, SchoolClass
from store.models.notifications import AccountabilityEntry, Notification
from store.reporting.queries import counts_by_state, list_cases
from tasks.runtime import using
from tests.engine_helpers import morning, setup_store, sweep

DAYS = [date(2026, 11, d) for d in (16, 17, 18, 19, 20)]


def _ledger(factory, session):
    """Two schools, cases at several steps, one returned, one excused, one escalated."""
    code, pupils = setup_store(session, pupils_per_class=6, grades=(2, 8), schools=2)
    other = session.scalar(select(School.code).where(School.code != code).order_by(School.id))
    others = [p for p, in session.execute(select(Pupil.student_no).join(School).where(School.code == other))]
    session.commit()
    for i, day in enumerate(DAYS):  # pupil 5: sick note on day 2 (excused); pupil 4 back on day 3
        absent = pupils[:6] if i == 0 else pupils[:5] if i == 1 else pupils[:4]
        morning(factory, code, day, absent, statuses={pupils[5]: "病假"} if i == 1 else None)
        if i == 1:  # the note approved by the academic office: the sick leave excuses (store.cases.leave)
            with transaction(factory) as s:
                for r in s.scalars(select(LeaveRequest)):
                    decide(s, CaseContext(s), r.id, approve=True, actor="教务处", now=datetime.combine(day, time(10)))
        morning(factory, other, day, others[:2] if i < 3 else others[:1])
        sweep(factory, day)
    with transaction(factory) as s:
        case = s.scalar(select(Case).join(Pupil).where(Pupil.student_no == pupils[0]))
        act(s, CaseContext(s), case.id, "escalate_outside", actor="校长", at=datetime(2026, 11, 20, 15), now=datetime(2026, 11, 20, 15),
            reason="whereabouts_unknown")
    return code, other


def test_monthly_report_figures_equal_the_ledger_at_every_level(factory, session):
    from tasks.reports import file_reports

    code, other = _ledger(factory, session)
    as_of = datetime(2026, 11, 23, 16, 0)
    period = rp.month_period(2026, 11)
    with using(factory):
        schools = {f["code"]: f for f in file_reports.fn("school", period, as_of)}
        townships = file_reports.fn("township", period, as_of)
        county = file_reports.fn("county", period, datetime(2026, 11, 30, 17))
    with transaction(factory) as s:
        from store.models.reports import ReportFiling
        filings = {(f.level, f.scope_code): f.figures for f in s.scalars(select(ReportFiling))}
        for school_code in (code, other):
            fig = filings[("school", school_code)]
            rows = list_cases(s, school_code=school_code, limit=10_000)
            by_state = {}
            for r in rows:
                by_state[r["state"]] = by_state.get(r["state"], 0) + 1
            assert {k: v for k, v in fig["cases_by_state"].items() if v} == by_state
            dropouts = sum(1 for r in rows if r["state"] in rp.DROPOUT_STATES)  # day 3 and later, or escalated
            assert fig["dropouts"] == dropouts == schools[school_code]["dropouts"]
            assert fig["out_of_school"] == sum(1 for r in rows if r["state"] not in ("returned", "excused"))
            enrolled = s.scalar(select(School.enrolled).where(School.code == school_code))
            assert fig["enrolled"] == enrolled and fig["dropout_rate"] == round(dropouts / enrolled, 6)
            assert fig["opened"] == len(rows)
            assert fig["returned"] == sum(1 for r in rows if r["state"] == "returned")
        total = counts_by_state(s)
    assert len(townships) == 1 and len(county) == 1
    county_fig = next(f for (lv, _), f in filings.items() if lv == "county")
    assert {k: v for k, v in county_fig["cases_by_state"].items() if v} == total
    assert county_fig["dropouts"] == sum(f["dropouts"] for f in schools.values()) == townships[0]["dropouts"]
    assert county_fig["escalated"] == 1 and county_fig["excused"] == 1


def test_a_report_filed_after_its_due_date_is_late_and_recorded_once(factory, session):
    from tasks.reports import file_reports

    _ledger(factory, session)
    period = rp.month_period(2026, 11)
    with using(factory):
        first = file_reports.fn("school", period, datetime(2026, 11, 24, 9, 0))  # due the 23rd
        again = file_reports.fn("school", period, datetime(2026, 11, 25, 9, 0))
        township = file_reports.fn("township", period, datetime(2026, 11, 25, 16, 0))
    assert all(f["late"] and f["created"] for f in first)
    assert [f["id"] for f in again] == [f["id"] for f in first] and not any(f["created"] for f in again)
    assert not township[0]["late"]
    with transaction(factory) as s:
        assert s.scalar(select(func.count()).select_from(AccountabilityEntry).where(
            AccountabilityEntry.ground == "late_report")) == 2
        from store.models.reports import ReportFiling
        tf = s.scalar(select(ReportFiling).where(ReportFiling.level == "township"))
        assert sorted(tf.figures["lower_level"]["late"]) == sorted(f["code"] for f in first)
        assert "逾期" in rp.figures_markdown(s.scalar(select(ReportFiling).where(ReportFiling.id == first[0]["id"])))


def test_due_dates_follow_the_policy_calendar():
    from store.policy_files import parse_policy, SHIPPED_POLICIES

    policy = parse_policy((SHIPPED_POLICIES / "default.toml").read_text(encoding="utf-8"), source="default.toml")
    p = rp.month_period(2026, 2)
    assert (rp.due_on(policy, "school", p), rp.due_on(policy, "township", p), rp.due_on(policy, "county", p)) == (
        date(2026, 2, 23), date(2026, 2, 25), date(2026, 2, 28))


def test_the_spot_check_draw_is_reproducible_from_its_seed_and_sealed(factory, session):
    from tasks.reports import draw_spot_check

    setup_store(session, pupils_per_class=2, grades=(1, 2, 3), schools=3)
    session.commit()
    with using(factory):
        first = draw_spot_check.fn("2026Q4", 1234, 0.5, datetime(2026, 11, 15, 10))
        rerun = draw_spot_check.fn("2026Q4", 999, 0.5, datetime(2026, 11, 16, 10))
    assert first["created"] and not rerun["created"] and rerun["seed"] == 1234
    with transaction(factory) as s:
        population = rp.roster(s)
    assert rp.draw_sample(population, 1234, 0.5) == first["sample"]
    assert rp.seal(first["sample"], 1234) == first["seal"]
    assert len(first["sample"]["schools"]) == 2 and all(len(c) == 2 for c in first["sample"]["classes"].values())


def test_overdue_duties_are_reminded_once_and_recorded_for_accountability(factory, session):
    from tasks.notify import deliver_notices, queue_notices

    code, pupils = setup_store(session, pupils_per_class=3, grades=(4,))
    session.commit()
    morning(factory, code, DAYS[0], pupils[:2])
    sweep(factory, DAYS[0], time(9, 30))
    with using(factory):
        soon = queue_notices.fn(datetime(2026, 11, 16, 16, 0))
        assert (soon["reminders"], soon["overdue_notices"], soon["accountability"]) == (2, 0, 0)
        sweep(factory, DAYS[0], time(18, 0))
        late = queue_notices.fn(datetime(2026, 11, 16, 18, 5))
        assert (late["reminders"], late["overdue_notices"], late["accountability"]) == (0, 2, 2)
        assert queue_notices.fn(datetime(2026, 11, 16, 18, 5))["overdue_notices"] == 0
        assert deliver_notices.fn(datetime(2026, 11, 16, 18, 6)) == {"sent": 4, "failed": 0}
    with transaction(factory) as s:
        bodies = [n.body for n in s.scalars(select(Notification))]
        names = [p.name for p in s.scalars(select(Pupil).where(Pupil.student_no.in_(pupils[:2])))]
    assert all(name not in body for body in bodies for name in names if len(name) > 1)  # masked


def test_the_clock_is_a_parameter_or_a_simulated_clock():
    from tasks.runtime import SimulatedClock, clock_set_to, resolve_as_of, to_local
    from zoneinfo import ZoneInfo

    assert resolve_as_of(datetime(2026, 11, 16, 9, 30, 5, 123)) == datetime(2026, 11, 16, 9, 30, 5)
    assert to_local(datetime(2026, 11, 16, 1, 30, tzinfo=ZoneInfo("UTC"))) == datetime(2026, 11, 16, 9, 30)
    sim = SimulatedClock(datetime(2026, 11, 16, 8))
    with clock_set_to(sim):
        assert resolve_as_of(None) == datetime(2026, 11, 16, 8)
        sim.set(datetime(2026, 11, 16, 9, 30))
        assert resolve_as_of(None) == datetime(2026, 11, 16, 9, 30)


def test_a_case_keeps_its_pupils_special_groups_and_the_roster_keeps_them_current_until_it_closes(factory, session):
    """The report counts special groups from the case (no join to the pupils): copied when the case
    opens, updated by a roster import while the case is on the ledger, frozen once it is closed."""
    from store.ingest.roster import import_roster
    from tests.engine_helpers import case_of

    code, pupils = setup_store(session, pupils_per_class=6, grades=(4,), schools=1)
    by_no = {p.student_no: p for p in session.scalars(select(Pupil).where(Pupil.student_no.in_(pupils[:4])))}
    by_no[pupils[0]].special_groups = ["left_behind"]
    by_no[pupils[1]].special_groups = []
    by_no[pupils[2]].special_groups = ["poor"]
    session.commit()
    for i, day in enumerate(DAYS):  # pupils 0 and 1 absent every day; pupil 2 back on day 2 (case closed)
        morning(factory, code, day, pupils[:3] if i == 0 else pupils[:2])
        sweep(factory, day)
    with transaction(factory) as s:
        assert [case_of(s, n).special_groups for n in pupils[:3]] == [["left_behind"], [], ["poor"]]
        assert case_of(s, pupils[2]).closed_on is not None and case_of(s, pupils[0]).state in rp.DROPOUT_STATES
        rows = "\n".join(f"{code},{n},{by_no[n].name},4,{s.get(SchoolClass, by_no[n].class_id).name},{g}" for n, g in
                         ((pupils[0], "孤儿，残疾儿童"), (pupils[1], "留守儿童"), (pupils[2], "")))
        result = import_roster(s, ("学校代码,学籍号,姓名,年级,班级,特殊群体\n" + rows + "\n").encode(), "roster.csv",
                               now=datetime.combine(DAYS[-1], datetime.min.time()))
        assert result.errors == [] and result.updated == 3
    with transaction(factory) as s:
        # open cases follow the roster; the closed one keeps what it had when it closed
        assert [case_of(s, n).special_groups for n in pupils[:3]] == [["disabled", "orphan"], ["left_behind"], ["poor"]]
        fig = rp.ledger_figures(s, rp.scopes(s, "school")[0], rp.month_period(2026, 11), datetime(2026, 11, 20, 17))
    assert fig["dropouts"] == 2
    assert {g: n for g, n in fig["special_groups"].items() if n} == {"disabled": 1, "orphan": 1, "left_behind": 1}
