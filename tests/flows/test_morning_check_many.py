"""The ``morning_check`` flow records a multi-school file set-based (``tasks.intake.record_school_checks``
→ ``store.cases.intake.record_morning_checks``, schools in chunks, one unit of work a chunk) with the
per-school results and duplicate semantics of one school at a time: each school its own submission,
a school whose part is unchanged is a duplicate while a changed one is recorded, and a day on which
the file cannot be recorded rejects each school with its own result line and writes nothing.
SQLite and PostgreSQL, real Prefect harness."""
from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import func, select

from store.db import transaction
from store.models import Case, Pupil, School, Submission
from tasks.intake import MarkRow, MorningCheckSubmission
from tasks.runtime import using
from tests.engine_helpers import setup_store

MON, SAT = date(2026, 11, 16), date(2026, 11, 21)


@pytest.fixture(scope="module", autouse=True)
def _harness(prefect_harness):
    from deploy.deployments import no_heartbeat

    with no_heartbeat():
        yield


def _file(day, marks, schools) -> MorningCheckSubmission:
    return MorningCheckSubmission(day=day, source="sis", submitted_by="县学籍系统", schools=schools,
                                  submitted_at=datetime.combine(day, datetime.min.time()).replace(hour=8),
                                  marks=[MarkRow(student_no=n, status=s, school_code=c) for c, n, s in marks]).signed()


def _count(factory, model) -> int:
    with transaction(factory) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_county_file_is_recorded_set_based_with_per_school_results_and_duplicates(fresh_db, monkeypatch):
    import flows.morning_check as mc

    monkeypatch.setattr(mc, "SCHOOLS_PER_TASK", 2)  # three schools: two chunks, two units of work
    with transaction(fresh_db) as s:
        setup_store(s, pupils_per_class=3, grades=(3, 7), schools=3)
        codes = list(s.scalars(select(School.code).order_by(School.code)))
        roster = {c: list(s.scalars(select(Pupil.student_no).join(School, School.id == Pupil.school_id)
                                    .where(School.code == c).order_by(Pupil.id))) for c in codes}
    a, b, c = codes
    marks = [(a, roster[a][0], "缺勤"), (a, roster[a][1], "unexcused"), (a, roster[a][2], "病假"),
             (b, roster[b][0], "缺勤"), (b, "NO-SUCH-PUPIL", "缺勤")]  # c: everyone present
    with using(fresh_db):
        first = mc.morning_check(_file(MON, marks, codes))
        by_school = {r["school"]: r for r in first["schools"]}
        assert [r["school"] for r in first["schools"]] == codes
        assert [by_school[x]["opened"] for x in codes] == [2, 1, 0]
        assert by_school[b]["errors"] == 1 and by_school[b]["row_errors"][0]["student_no"] == "NO-SUCH-PUPIL"
        assert len({r["submission_id"] for r in first["schools"]}) == 3
        assert not any(r["duplicate"] for r in first["schools"]) and first["opened"] == 3
        cases = _count(fresh_db, Case)
        assert cases == 3

        again = mc.morning_check(_file(MON, marks, codes))  # the same file: every school a duplicate
        assert all(r["duplicate"] for r in again["schools"]) and again["opened"] == 0
        assert [r["submission_id"] for r in again["schools"]] == [r["submission_id"] for r in first["schools"]]
        assert _count(fresh_db, Case) == cases and _count(fresh_db, Submission) == 3

        changed = mc.morning_check(_file(MON, marks + [(c, roster[c][0], "缺勤")], codes))  # only c's part changed
        flags = {r["school"]: r["duplicate"] for r in changed["schools"]}
        assert flags == {a: True, b: True, c: False} and changed["opened"] == 1
        assert _count(fresh_db, Case) == cases + 1 and _count(fresh_db, Submission) == 4

        saturday = mc.morning_check(_file(SAT, marks, codes))  # not a school day: each school rejected alone
        assert [r["school"] for r in saturday["schools"]] == codes and saturday["rejected"] == 3
        assert all("不是上学日" in r["rejected"] for r in saturday["schools"])
        assert _count(fresh_db, Submission) == 4 and _count(fresh_db, Case) == cases + 1
