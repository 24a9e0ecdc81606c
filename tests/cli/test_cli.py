"""The seed scenarios through the `baoxue` command line, on a real database of each kind."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def baoxue(db: str, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["--db", db, *args])
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def county(blank_db_url):
    baoxue(blank_db_url, "init", "--at", "2026-09-01T07:00")
    baoxue(blank_db_url, "generate", "--seed", "3", "--townships", "1", "--schools", "1", "--pupils-per-class", "3",
           "--policy", "default")
    cases = json.loads(baoxue(blank_db_url, "cases", "--json"))
    assert cases == []
    return blank_db_url


def pupil_numbers(db: str) -> list[str]:
    from sqlalchemy import select
    from store.db import make_engine
    from store.models import Pupil
    engine = make_engine(db)
    with engine.connect() as c:
        numbers = c.scalars(select(Pupil.student_no).order_by(Pupil.id)).all()
    engine.dispose()
    return numbers


def test_monday_to_friday_through_the_cli(county):
    pupil = pupil_numbers(county)[0]
    seen = []
    for day in ("2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"):
        out = json.loads(baoxue(county, "absent", pupil, "--date", day, "--at", f"{day}T08:10", "--json"))
        seen.append(out["opened"])
        baoxue(county, "advance", "--as-of", f"{day}T09:30")
    case = json.loads(baoxue(county, "case", "1", "--json"))
    assert seen == [1, 0, 0, 0, 0]
    assert [e["to"] for e in case["events"]] == ["absent", "family_contacted", "visited", "collective_visit",
                                                 "township_notice", "judicial_notice"]
    assert {(d["action"], d["role"]) for d in case["duties"]} >= {("record_phone_call", "head_teacher"),
                                                                  ("serve_legal_notice", "judicial_office")}
    assert all(d["owner"] for d in case["duties"])
    stuck = json.loads(baoxue(county, "cases", "--stuck", "--at", "2026-11-20T10:00", "--json"))
    assert [c["id"] for c in stuck] == [1]


def test_actions_through_the_cli_and_a_refused_one(county):
    pupil = pupil_numbers(county)[1]
    baoxue(county, "absent", pupil, "--date", "2026-11-16", "--at", "2026-11-16T08:10")
    baoxue(county, "advance", "--as-of", "2026-11-16T09:30")
    out = baoxue(county, "act", "1", "record_phone_call", "--note", "家长电话未接通", "--by", "王老师",
                 "--at", "2026-11-16T10:00")
    assert "电话联系家长，电话联系 → 电话联系" in out and "record_phone_call" not in out
    refused = baoxue(county, "act", "1", "serve_legal_notice", "--at", "2026-11-16T10:05", code=1)
    assert "not allowed in state 'family_contacted'" in refused
    refused = baoxue(county, "act", "1", "assign_helpers", "--at", "2026-11-16T10:06", code=2)  # no --helper
    assert "帮扶责任人" in refused and "invalid action details" in refused
    baoxue(county, "act", "1", "mark_returned", "--at", "2026-11-17T08:00")
    case = json.loads(baoxue(county, "case", "1", "--json"))
    assert case["state"] == "returned" and case["duties"][0]["status"] == "done"


def test_attendance_and_roster_files_with_bad_rows(county, tmp_path):
    from sqlalchemy import select
    from store.db import make_engine
    from store.models import School
    engine = make_engine(county)
    with engine.connect() as c:
        school = c.scalar(select(School.code))
    engine.dispose()
    roster = tmp_path / "roster.csv"
    roster.write_bytes((
        "学校代码,学籍号,姓名,身份证号,性别,年级,班级,监护人,关系,联系电话,特殊群体\n"
        f"{school},G0001,李小花,110105201603070029,女,3,三年级(1)班,李大山,父亲,13800000000,留守儿童\n"
        f"{school},G0002,赵强,110105201603070021,男,3,三年级(1)班,赵刚,父亲,13800000001,\n"
        f"NOPE,G0003,钱多,,男,3,三年级(1)班,,,,\n"
    ).encode("gbk"))
    out = json.loads(baoxue(county, "roster", "import", str(roster), "--json", code=2))
    assert out["added"] == 1 and [e["row"] for e in out["errors"]] == [3, 4]
    assert "校验位" in out["errors"][0]["reason"] and "不存在" in out["errors"][1]["reason"]
    check = tmp_path / "check.csv"
    check.write_text("学籍号,出勤状态\nG0001,缺勤\nG9999,缺勤\n", encoding="utf-8-sig")
    out = json.loads(baoxue(county, "attendance", "import", str(check), "--school", school, "--date", "2026-11-16",
                            "--at", "2026-11-16T08:20", "--json", code=2))
    # one rule on every entry (store.ingest.attendance_files.vet_check): a bad row refuses the whole file
    assert out["refused"] and [(e["row"], e["student_no"]) for e in out["row_errors"]] == [(3, "G9999")]
    assert json.loads(baoxue(county, "cases", "--json")) == []


def test_user_add_creates_an_account_that_can_log_in(county):
    from sqlalchemy import select
    from store.access.accounts import authenticate
    from store.db import make_engine, session_factory
    from store.models import School
    engine = make_engine(county)
    with session_factory(engine)() as s:
        school = s.scalar(select(School.code))
    result = runner.invoke(app, ["--db", county, "user", "add", "li", "--role", "school_staff", "--school", school,
                                 "--name", "李老师", "--password-stdin"], input="s3cret-pass\n")
    assert result.exit_code == 0 and "created" in result.output, result.output
    result = runner.invoke(app, ["--db", county, "user", "add", "x", "--role", "school_staff", "--school", "NOPE",
                                 "--password-stdin"], input="s3cret-pass\n")
    assert result.exit_code == 1, result.output
    from datetime import datetime
    with session_factory(engine)() as s:
        assert authenticate(s, username="li", password="s3cret-pass", now=datetime(2026, 11, 23, 9)) is not None
        assert authenticate(s, username="li", password="wrong", now=datetime(2026, 11, 23, 9)) is None
    engine.dispose()


def test_attendance_import_that_would_close_cases_wants_confirm(county, tmp_path):
    """Re-importing the day's file with the absentee as 到校 closes their case only with --confirm."""
    from sqlalchemy import select
    from store.db import make_engine
    from store.models import Pupil, School
    engine = make_engine(county)
    with engine.connect() as c:
        school = c.scalar(select(School.code).order_by(School.id))
        pupils = list(c.scalars(select(Pupil.student_no).join(School, School.id == Pupil.school_id)
                                .where(School.code == school).order_by(Pupil.id)))[:2]
    engine.dispose()
    args = ("--school", school, "--date", "2026-11-16", "--at", "2026-11-16T08:20", "--json")
    first, again = tmp_path / "first.csv", tmp_path / "again.csv"
    first.write_text(f"学籍号,出勤状态\n{pupils[0]},缺勤\n{pupils[1]},到校\n", encoding="utf-8-sig")
    again.write_text(f"学籍号,出勤状态\n{pupils[0]},到校\n{pupils[1]},到校\n", encoding="utf-8-sig")
    assert json.loads(baoxue(county, "attendance", "import", str(first), *args))["opened"] == 1
    out = json.loads(baoxue(county, "attendance", "import", str(again), *args, code=2))
    assert out["refused"] and out["message"].startswith("将覆盖 1 条已上报记录，1 个案件将结案")
    assert [c["state"] for c in json.loads(baoxue(county, "cases", "--json"))] == ["absent"]  # nothing applied
    out = json.loads(baoxue(county, "attendance", "import", str(again), *args, "--confirm"))
    assert out["returned"] == 1 and [c["state"] for c in json.loads(baoxue(county, "cases", "--json"))] == ["returned"]
