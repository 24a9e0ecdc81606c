"""A county's morning-check export (rows name their school, 学校代码) through `baoxue attendance import`
without --school: vetted whole (bad rows refuse it, counted; closing cases needs --confirm), then one
run of the ``morning_check`` flow recording the schools in chunks (a commit each, progress logged);
the same file sent again records nothing twice. Real Prefect harness, SQLite and PostgreSQL."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cli.main import app
from machines.clock import SimulatedClock
from store.db import make_engine
from store.models import AttendanceMark, Case, CaseEvent, Pupil, School, Submission
from tasks.runtime import clock_set_to

runner = CliRunner()
DAY, AT = "2026-11-16", "2026-11-16T08:20"


@pytest.fixture(scope="module", autouse=True)
def _harness(prefect_harness):
    from deploy.deployments import no_heartbeat

    with no_heartbeat():
        yield


def baoxue(db: str, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["--db", db, *args])
    assert result.exit_code == code, result.output
    return result.output


def counts(db: str) -> dict[str, int]:
    engine = make_engine(db)
    with engine.connect() as c:
        out = {m.__tablename__: c.scalar(select(func.count()).select_from(m))
               for m in (Case, CaseEvent, AttendanceMark, Submission)}
    engine.dispose()
    return out


def progress_of(day: str) -> float:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[
            f"morning-check-progress-{day}"])))
    return max(float(a.data) for a in found)


def test_a_county_file_goes_through_the_cli_and_the_flow_once(blank_db_url, tmp_path, monkeypatch):
    import flows.morning_check as mc
    from tasks.runtime import dispose_all

    db = blank_db_url
    baoxue(db, "init", "--at", "2026-09-01T07:00")
    baoxue(db, "generate", "--seed", "3", "--townships", "1", "--schools", "3", "--pupils-per-class", "3",
           "--policy", "default")
    engine = make_engine(db)
    with engine.connect() as c:
        roster = c.execute(select(School.code, Pupil.student_no).join(Pupil, Pupil.school_id == School.id)
                           .order_by(School.code, Pupil.id)).all()
    engine.dispose()
    schools = sorted({code for code, _ in roster})
    assert len(schools) == 3 and len(roster) > 60
    absent = {no for i, (_, no) in enumerate(roster) if i % 10 == 0}
    lines = ["学校代码,学籍号,出勤状态,缺勤原因"] + [f"{code},{no},{'缺勤' if no in absent else '到校'},厌学"
                                            for code, no in roster]
    path = tmp_path / "county.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    monkeypatch.setattr(mc, "ROWS_PER_TASK", len(roster) // 3)  # a chunk per school or so: committed one by one
    args = ("attendance", "import", str(path), "--date", DAY, "--at", AT, "--json")
    try:
        with clock_set_to(SimulatedClock(datetime(2026, 11, 16, 8, 30))):
            out = json.loads(baoxue(db, *args))
            assert out["marks"] == len(roster) and out["opened"] == len(absent) and out["rejected"] == 0
            assert [r["school"] for r in out["schools"]] == schools and not any(r["duplicate"] for r in out["schools"])
            assert progress_of(DAY) == 100.0  # more than one chunk: the run's progress artifact followed them
            before = counts(db)
            assert before["cases"] == len(absent) and before["attendance_marks"] == len(roster)

            again = json.loads(baoxue(db, *args))  # the same file again: every school a duplicate, nothing doubled
            assert again["opened"] == 0 and all(r["duplicate"] for r in again["schools"])
            assert counts(db) == before

            # a bad row anywhere refuses the whole file, counted and listed; nothing is recorded
            bad = tmp_path / "bad.csv"
            bad.write_text("\n".join(lines[:5] + ["S-NONE,X1,缺勤,", f"{schools[0]},NOPE,缺勤,", f"{schools[1]},{roster[-1][1]},飞,"])
                           + "\n", encoding="utf-8")
            refused = json.loads(baoxue(db, "attendance", "import", str(bad), "--date", DAY, "--at", AT, "--json", code=2))
            assert refused["refused"] and refused["error_count"] == 3
            assert sorted(e["row"] for e in refused["row_errors"]) == [6, 7, 8]
            assert counts(db) == before

            # everyone present now: the open cases would close, which needs --confirm
            back = tmp_path / "back.csv"
            back.write_text("\n".join(line.replace("缺勤", "到校") for line in lines) + "\n", encoding="utf-8")
            args_back = ("attendance", "import", str(back), "--date", DAY, "--at", "2026-11-16T08:25", "--json")
            preview = json.loads(baoxue(db, *args_back, code=2))
            assert preview["refused"] and preview["closing"] == len(absent) and counts(db) == before
            done = json.loads(baoxue(db, *args_back, "--confirm"))
            assert done["returned"] == len(absent) and done["opened"] == 0
    finally:
        dispose_all()


def test_a_file_without_school_codes_needs_school(blank_db_url, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("学籍号,出勤状态\nG1,到校\n", encoding="utf-8")
    out = baoxue(blank_db_url, "attendance", "import", str(path), "--date", DAY, code=2)
    assert "学校代码" in out
