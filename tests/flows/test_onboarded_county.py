"""The county a bureau onboards from its files (docs/onboarding/sample) lives a school week under the
real flows: the morning checks open cases for the absent pupils, the sweeps climb the ladder to the
papers of day 5, the documents are rendered for the village the 学籍 export names, and the month's
figures count what happened (issue 19; both databases, one Prefect harness)."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from store.calendars import calendars, materialise
from store.db import transaction
from store.ingest.onboarding import onboard
from store.models import Case, Jurisdiction, Pupil, School
from store.models.documents import Document
from store.policy_files import load_policies_into
from tasks.intake import MarkRow, MorningCheckSubmission
from tasks.runtime import using

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "onboarding" / "sample"
WEEK = [date(2026, 11, 16) + timedelta(days=i) for i in range(5)]  # Monday 16 – Friday 20 November 2026
SCHOOL = "2114099101"  # 宁安县城关镇第一小学


@pytest.fixture(scope="module", autouse=True)
def _harness(prefect_harness):
    from deploy.deployments import no_heartbeat

    with no_heartbeat():
        yield


@pytest.fixture
def county(fresh_db, tmp_path, monkeypatch):
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    with transaction(fresh_db) as s:
        load_policies_into(s, now=datetime(2026, 11, 1))
        for cal in calendars().values():
            materialise(s, cal)
        files = [(p.name, p.read_bytes()) for p in sorted(SAMPLE.iterdir())]
        result = onboard(s, files, now=datetime(2026, 11, 13, 16, 0), apply=True)
        assert result.applied and result.errors == 0
    with using(fresh_db):
        yield fresh_db


def test_an_onboarded_county_lives_a_school_week_under_the_flows(county):
    from flows.advance_cases import advance_cases
    from flows.monthly_report import monthly_report
    from flows.morning_check import morning_check
    from flows.render_documents import render_documents

    with transaction(county) as s:
        pupils = s.scalars(select(Pupil.student_no).join(School).where(School.code == SCHOOL)
                           .order_by(Pupil.student_no)).all()
    dropout, back_wednesday = pupils[0], pupils[1]
    for day in WEEK:
        marks = [(dropout, "缺勤")] + ([(back_wednesday, "缺勤")] if day < WEEK[2] else [])
        out = morning_check(MorningCheckSubmission(
            day=day, school_code=SCHOOL, source="upload", submitted_by="班主任",
            submitted_at=datetime.combine(day, datetime.min.time()).replace(hour=8),
            marks=[MarkRow(student_no=n, status=st) for n, st in marks]).signed())
        assert out["opened"] == (2 if day == WEEK[0] else 0)
        advance_cases(as_of=datetime.combine(day, datetime.min.time()).replace(hour=18), render=False)
    rendered = render_documents(as_of=datetime(2026, 11, 20, 19, 0))
    assert rendered["rendered"] > 0 and rendered["failed"] == 0

    with transaction(county) as s:
        cases = {p: c for p, c in s.execute(select(Pupil.student_no, Case).join(Case, Case.pupil_id == Pupil.id))}
        assert set(cases) == {dropout, back_wednesday}
        assert cases[dropout].state == "judicial_notice"  # day 5 of the default policy
        assert cases[back_wednesday].state == "returned" and cases[back_wednesday].closed_on == WEEK[2]
        kinds = set(s.scalars(select(Document.kind).where(Document.case_id == cases[dropout].id)))
        assert {"absence_register", "report_to_township", "dropout_report_form", "return_notice", "report_to_bureau",
                "legal_notice"} <= kinds  # the 控辍方案 follows the 三帮一 helpers' assignment, nobody's here
        # the paper to the village committee names the pupil's registered village from the 学籍 export
        pupil = s.scalar(select(Pupil).where(Pupil.student_no == dropout))
        village = s.get(Jurisdiction, pupil.village_id).name
        assert village in pupil.registered_address

    filed = monthly_report(level="school", as_of=datetime(2026, 11, 23, 16, 0))
    assert filed["filed"] >= 3  # every school of the county files its month
    from store.reporting.reports import ReportScope, ledger_figures_many, month_period
    with transaction(county) as s:
        school = s.scalar(select(School).where(School.code == SCHOOL))
        figures = ledger_figures_many(s, [ReportScope("school", school.code, school.name, (school.id,))], month_period(2026, 11),
                                      datetime(2026, 11, 30, 23, 0))[0]
    assert figures["dropouts"] == 1 and figures["returned"] == 1
