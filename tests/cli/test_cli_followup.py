"""Issue 16 through the `baoxue` command line (both databases): under wutaishan, a whereabouts-unknown and a
working-away case keep their follow-up duties, return via the morning check and are 销号 in the 台账."""
from __future__ import annotations

import json

from tests.cli.test_cli import baoxue, pupil_numbers


def test_referred_cases_are_followed_up_until_the_morning_check_finds_them(blank_db_url, tmp_path):
    db = blank_db_url
    baoxue(db, "init", "--at", "2026-09-01T07:00")
    baoxue(db, "generate", "--seed", "3", "--townships", "1", "--schools", "1", "--pupils-per-class", "3",
           "--policy", "wutaishan")
    lost, working = pupil_numbers(db)[:2]
    for day in ("2026-11-16", "2026-11-17"):
        for p in (lost, working):
            baoxue(db, "absent", p, "--date", day, "--at", f"{day}T08:10")
        baoxue(db, "advance", "--as-of", f"{day}T09:30")
    out = baoxue(db, "act", "1", "escalate_outside", "--reason", "whereabouts_unknown", "--at", "2026-11-17T15:00")
    assert "已移交跟踪" in out
    baoxue(db, "act", "2", "escalate_outside", "--reason", "working_away", "--at", "2026-11-17T15:05")
    baoxue(db, "act", "2", "record_employer_persuasion", "--note", "联系用工单位", "--at", "2026-11-18T10:00")
    for case_id, wanted in (("1", {"record_police_search", "record_follow_up"}),
                            ("2", {"record_guardian_persuasion", "record_employer_persuasion"})):
        case = json.loads(baoxue(db, "case", case_id, "--json"))
        assert case["state"] == "escalated"
        assert {d["action"] for d in case["duties"] if d["step"].startswith("escalated:")} == wanted
    baoxue(db, "advance", "--as-of", "2026-11-19T09:30")  # the employer round done: the next one is raised
    case = json.loads(baoxue(db, "case", "2", "--json"))
    assert {(d["step"], d["status"]) for d in case["duties"] if d["action"] == "record_employer_persuasion"} == {
        ("escalated:1", "done"), ("escalated:2", "open")}
    from sqlalchemy import select
    from store.db import make_engine
    from store.models import School
    engine = make_engine(db)
    with engine.connect() as c:
        school = c.scalar(select(School.code))
    engine.dispose()
    check = tmp_path / "check.csv"
    check.write_text(f"学籍号,出勤状态\n{lost},到校\n{working},到校\n", encoding="utf-8-sig")
    out = json.loads(baoxue(db, "attendance", "import", str(check), "--school", school, "--date", "2026-11-23",
                            "--at", "2026-11-23T08:20", "--json"))
    assert out["returned"] == 2
    for case_id in ("1", "2"):
        case = json.loads(baoxue(db, "case", case_id, "--json"))
        assert case["state"] == "returned" and not [d for d in case["duties"] if d["status"] == "open"]
    book = json.loads(baoxue(db, "ledger-book", f"school:{school}", "2026-11", "--fmt", "xlsx",
                             "--out", str(tmp_path / "book.xlsx"), "--json"))
    assert [(r["case_id"], r["reason"], r["status_label"], r["closed_on"]) for r in book["rows"]] == [
        (1, "whereabouts_unknown", "已复学·销号", "2026-11-23"), (2, "working_away", "已复学·销号", "2026-11-23")]
    assert (tmp_path / "book.xlsx").read_bytes()[:2] == b"PK"
