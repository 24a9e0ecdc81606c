"""The calendar does not fall off a cliff on 1 January.

The shipped term runs to 2027-01-22 and nobody has supplied the 2027 holidays: `init`, the sweep and the
operator's page say so weeks ahead (an operator duty too); a sweep that meets the unknown year for some
schools moves the others' cases and names the schools it left out; a 2027 list supplied later (in a temp
calendar folder here: never a made-up official list in deploy/calendars) makes it all run again.
"""
from __future__ import annotations

import shutil
from datetime import date, datetime, time
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from machines.calendar import SchoolCalendar, holiday_list_problems, missing_holiday_years
from store.calendars import SHIPPED_CALENDARS, HolidayFileError, holiday_table, materialise, read_holiday_file
from store.db import transaction

TODAY = datetime(2026, 12, 2, 9, 0)  # the day this was written: the term reaches into 2027 in 30 days
LIST_2027 = """year = 2027
holidays = [2027-01-01, 2027-02-15, 2027-02-16, 2027-02-17, 2027-02-18, 2027-02-19]
workdays = [2027-02-20]
"""


def calendar_folder(tmp_path: Path, with_2027: bool) -> Path:
    """The shipped calendars copied, with (or without) a 2027 holiday list beside them."""
    folder = tmp_path / ("calendars-2027" if with_2027 else "calendars")
    folder.mkdir(exist_ok=True)
    for path in SHIPPED_CALENDARS.glob("*.toml"):
        shutil.copy(path, folder / path.name)
    if with_2027:
        (folder / "holidays-2027.toml").write_text(LIST_2027, encoding="utf-8")
    return folder


@pytest.fixture
def calendar_dir(monkeypatch):
    """Point the store (``BAOXUE_CALENDAR_DIR``) at a folder for the rest of the test."""
    from store.db import settings

    def use(folder: Path) -> None:
        monkeypatch.setenv("BAOXUE_CALENDAR_DIR", str(folder))
        settings.cache_clear()

    yield use
    monkeypatch.delenv("BAOXUE_CALENDAR_DIR", raising=False)
    settings.cache_clear()


def default_calendar(folder: Path | None = None) -> SchoolCalendar:
    from store.calendars import load_calendars

    return load_calendars(folder or SHIPPED_CALENDARS)["default"]


# -- the check (pure) ----------------------------------------------------------------------------------
def test_a_term_reaching_into_a_year_without_holidays_within_60_days_is_found():
    cal = default_calendar()
    assert [(m.calendar, m.year, m.first_day) for m in missing_holiday_years(cal, TODAY.date())] == [
        ("default", 2027, date(2027, 1, 1))]
    assert missing_holiday_years(cal, date(2026, 10, 1)) == []  # 92 days ahead: not yet
    assert [m.first_day for m in missing_holiday_years(cal, date(2027, 1, 10))] == [date(2027, 1, 10)]  # already in it
    assert missing_holiday_years(cal, date(2027, 1, 23)) == []  # the term is over: nothing to count


def test_a_supplied_list_silences_the_check(tmp_path):
    assert missing_holiday_years(default_calendar(calendar_folder(tmp_path, True)), TODAY.date()) == []


def test_a_holiday_list_with_a_day_both_holiday_and_workday_or_another_year_is_refused(tmp_path):
    assert holiday_list_problems(2027, frozenset({date(2027, 1, 1)}), frozenset({date(2027, 1, 1)}))
    path = tmp_path / "holidays-2027.toml"
    path.write_text("year = 2027\nholidays = [2027-01-01]\nworkdays = [2027-01-01]\n", encoding="utf-8")
    with pytest.raises(HolidayFileError, match="both holiday and workday"):
        read_holiday_file(path)
    path.write_text("year = 2027\nholidays = [2026-12-31]\n", encoding="utf-8")
    with pytest.raises(HolidayFileError, match="outside 2027"):
        read_holiday_file(path)
    path.write_text("year = 2028\nholidays = []\n", encoding="utf-8")
    with pytest.raises(HolidayFileError, match="file name"):
        read_holiday_file(path)
    path.write_text("year = 2027\nholidays = ['2027-01-01']\n", encoding="utf-8")
    with pytest.raises(HolidayFileError, match="list of dates"):
        read_holiday_file(path)


# -- init, the operator's duty, policy check ------------------------------------------------------------
runner = CliRunner()


def baoxue(db: str, *args: str, code: int = 0):
    from cli.main import app

    result = runner.invoke(app, ["--db", db, *args])
    assert result.exit_code == code, result.output
    return result


def test_init_warns_raises_an_operator_duty_and_a_2027_list_clears_both(blank_db_url, tmp_path, calendar_dir):
    from store.models.calendar import CalendarDuty
    from store.reporting.dashboards import stuck_cases
    from store.db import make_engine, session_factory
    from store.duties.ledger import listed
    from store.access.scope import EVERYTHING

    calendar_dir(calendar_folder(tmp_path, False))
    baoxue(blank_db_url, "init", "--at", "2026-09-01T07:00")
    baoxue(blank_db_url, "generate", "--seed", "3", "--townships", "1", "--schools", "2", "--pupils-per-class", "2")
    warned = baoxue(blank_db_url, "init", "--at", TODAY.isoformat())
    line = [w for w in warned.stderr.splitlines() if "2027" in w]
    assert len(line) == 1 and "2027 年的节假日表尚未提供" in line[0] and "2 所学校" in line[0]
    engine = make_engine(blank_db_url)
    try:
        with transaction(session_factory(engine)) as s:
            owed = listed(s, TODAY, due_by=datetime(2027, 12, 31), kinds=("calendar",))
            assert [(d["kind"], d["role"], d["status"]) for d in owed] == [("calendar", "operator", "open")]
            assert "2027" in owed[0]["action_label"] and owed[0]["due_at"] == datetime(2026, 12, 11, 17, 0)
            assert stuck_cases(s, EVERYTHING, TODAY) == []  # due in three weeks' time: not stuck yet
            stuck = stuck_cases(s, EVERYTHING, datetime(2026, 12, 12, 9, 0))
            assert [(r["kind"], r["school"]) for r in stuck] == [("calendar", "全县 county-wide")]
        baoxue(blank_db_url, "init", "--at", TODAY.isoformat())  # again: still one duty
        calendar_dir(calendar_folder(tmp_path, True))
        checked = baoxue(blank_db_url, "policy", "check")
        assert "6 holidays, 1 调休 workdays" in checked.stdout and "2027" not in checked.stderr
        quiet = baoxue(blank_db_url, "init", "--at", TODAY.isoformat())
        assert "2027" not in quiet.stderr
        with transaction(session_factory(engine)) as s:
            assert [(d.year, d.status, d.done_by) for d in s.scalars(select(CalendarDuty))] == [
                (2027, "done", "system:calendar_check")]
            assert stuck_cases(s, EVERYTHING, datetime(2026, 12, 12, 9, 0)) == []
    finally:
        engine.dispose()


def test_policy_check_refuses_a_bad_holiday_list_and_warns_about_the_missing_year(tmp_path, calendar_dir):
    folder = calendar_folder(tmp_path, False)
    calendar_dir(folder)
    from cli.main import check_calendar_files

    assert check_calendar_files(TODAY.date()) == 0
    (folder / "holidays-2027.toml").write_text("year = 2027\nholidays = [2027-01-01]\nworkdays = [2027-01-01]\n")
    assert check_calendar_files(TODAY.date()) == 1
    from cli.main import app
    result = runner.invoke(app, ["policy", "check"])
    assert result.exit_code == 2 and "both holiday and workday" in result.stderr


# -- the sweep: some schools skipped, the others moved -----------------------------------------------------
def two_calendar_county(session, with_2027_for_default: bool, tmp_path: Path) -> dict[str, SchoolCalendar]:
    """School 1 on calendar "default" (no 2027 list unless asked), school 2 on "north" (a 2027 list)."""
    known = holiday_table(calendar_folder(tmp_path, True))
    shipped = default_calendar()
    north = SchoolCalendar("north", known, shipped.terms, shipped.breaks)
    default = SchoolCalendar("default", known, shipped.terms, shipped.breaks) if with_2027_for_default else shipped
    for cal in (default, north):
        materialise(session, cal)
    return {"default": default, "north": north}


def test_a_sweep_that_meets_an_unknown_year_for_one_school_moves_the_others_and_names_it(fresh_db, tmp_path):
    from store.cases.advance import advance
    from store.cases.context import CaseContext
    from store.cases.intake import MarkIn, record_morning_check
    from store.models import Case, Pupil, School
    from tests.engine_helpers import setup_store

    with transaction(fresh_db) as s:
        setup_store(s, pupils_per_class=2, grades=(3,), schools=2)
        cals = two_calendar_county(s, False, tmp_path)
        first, second = s.scalars(select(School).order_by(School.id)).all()
        second.calendar_key = "north"
        codes = (first.code, second.code)
        absent = {code: s.scalar(select(Pupil.student_no).join(School, School.id == Pupil.school_id)
                                 .where(School.code == code).order_by(Pupil.id)) for code in codes}
    for code in codes:  # both missing since Monday 28 December; nobody swept over the new year
        with transaction(fresh_db) as s:
            record_morning_check(s, CaseContext(s, calendars=cals), school_code=code, day=date(2026, 12, 28),
                                 marks=[MarkIn(absent[code], "unexcused")], source="test", submitted_by="班主任",
                                 now=datetime(2026, 12, 28, 8), complete=False)

    def states():
        with transaction(fresh_db) as s:
            return dict(s.execute(select(School.code, Case.state).join(School, School.id == Case.school_id)).all())

    report = advance(fresh_db, datetime(2027, 1, 5, 9, 30), calendars=cals)
    assert [(k.calendar_key, k.year, k.schools) for k in report.skipped] == [("default", 2027, (codes[0],))]
    moved = states()
    assert moved[codes[0]] == "absent" and moved[codes[1]] != "absent"  # the north school's case moved on
    assert report.as_dict()["skipped"][0]["schools"] == [codes[0]]

    with transaction(fresh_db) as s:  # the 2027 list arrives for "default" too
        cals = two_calendar_county(s, True, tmp_path)
    report = advance(fresh_db, datetime(2027, 1, 5, 9, 30), calendars=cals)
    assert report.skipped == [] and states()[codes[0]] == moved[codes[1]]


# -- the flow: the artifact, the skip, and a list supplied to a running worker ------------------------------
@pytest.fixture(scope="module")
def _harness(prefect_harness):
    from deploy.deployments import no_heartbeat

    with no_heartbeat():
        yield


def calendar_artifact(state) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            key=ArtifactFilterKey(any_=["calendar-check"])))
    # one artifact per sweep; under a busy SQLite harness the client may retry its POST after a 503
    # ("database is locked") the server had half-committed, so a second copy must at least say the same
    assert found and len({a.data for a in found}) == 1, [a.data for a in found]
    return found[0].data


def test_the_daily_sweep_warns_skips_and_runs_again_once_the_list_is_supplied(_harness, fresh_db, tmp_path, calendar_dir):
    from flows.advance_cases import advance_cases
    from store.models.calendar import CalendarDuty
    from store.models import Case, Duty
    from tasks.runtime import using
    from tests.engine_helpers import morning, setup_store

    calendar_dir(calendar_folder(tmp_path, False))
    with transaction(fresh_db) as s:
        code, pupils = setup_store(s, pupils_per_class=2, grades=(3,))
    morning(fresh_db, code, date(2026, 12, 28), [pupils[0]], complete=False)
    with using(fresh_db):
        state = advance_cases(as_of=TODAY.replace(day=28, hour=9, minute=30), render=False, return_state=True)
        out = state.result()
        assert [(w["year"], [x["code"] for x in w["schools"]]) for w in out["calendar_warnings"]] == [(2027, [code])]
        text = calendar_artifact(state)
        assert "2027" in text and code in text and "holidays-2027.toml" in text
        assert out["escalated"] == 1 and out["skipped"] == []  # 28 December: 2026 still answers

        # 5 January 2027: the school's calendar cannot count; the rest of the sweep still runs
        state = advance_cases(as_of=datetime(2027, 1, 5, 9, 30), render=False, return_state=True)
        out = state.result()
        assert [(k["calendar"], k["year"], k["schools"]) for k in out["skipped"]] == [("default", 2027, [code])]
        assert out["overdue"] >= 1  # the family call owed since 28 December is marked overdue all the same
        assert "本次未推进 skipped" in calendar_artifact(state)
        with transaction(fresh_db) as s:
            assert s.scalar(select(Case.state)) == "family_contacted"
            assert s.scalar(select(CalendarDuty.status)) in ("open", "overdue")

        # the 2027 list supplied to the running worker: the next sweep uses it, moves the case, clears the duty
        calendar_dir(calendar_folder(tmp_path, True))
        state = advance_cases(as_of=datetime(2027, 1, 5, 9, 45), render=False, return_state=True)
        out = state.result()
        assert out["skipped"] == [] and out["calendar_warnings"] == [] and out["escalated"] >= 1
        assert "均有节假日表" in calendar_artifact(state)
    with transaction(fresh_db) as s:
        assert s.scalar(select(Case.state)) != "family_contacted"
        assert s.scalar(select(CalendarDuty.status)) == "done"
        assert s.scalar(select(Duty.status).where(Duty.action == "record_phone_call")) == "overdue"


# -- the operator's page --------------------------------------------------------------------------------
def test_the_operators_page_carries_the_warning_until_the_list_is_supplied(factory, tmp_path, calendar_dir):
    from fastapi.testclient import TestClient

    from tests.web_support import Clock, build_county, in_process_app
    from web.deps import SESSION_COOKIE

    calendar_dir(calendar_folder(tmp_path, False))
    with factory() as s:
        county = build_county(s)
        s.commit()
    app = in_process_app(factory, tmp_path / "archive", Clock(TODAY))
    with TestClient(app) as client:
        client.cookies.set(SESSION_COOKIE, county.cookies["operator"])
        page = client.get("/runs")
        assert page.status_code == 200
        assert "2027 年节假日表尚未提供" in page.text and "4 所学校" in page.text and "holidays-2027.toml" in page.text
        calendar_dir(calendar_folder(tmp_path, True))
        assert "节假日表尚未提供" not in client.get("/runs").text
