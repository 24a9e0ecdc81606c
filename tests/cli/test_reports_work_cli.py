"""Reports as the people's work through the `baoxue` command line, on both databases (issue 17 items 1–3):
a school's 月报 signed late and corrected, a weekly class count, a 季查 result with a discrepancy."""
from __future__ import annotations

import json

from openpyxl import load_workbook

from tests.cli.test_cli import baoxue


def test_submission_weekly_and_spot_result_through_the_cli(blank_db_url, tmp_path):
    db = blank_db_url
    baoxue(db, "init", "--at", "2026-09-01T07:00")
    baoxue(db, "generate", "--seed", "3", "--townships", "1", "--schools", "2", "--pupils-per-class", "3", "--policy", "default")
    drafted = json.loads(baoxue(db, "submission", "open", "--at", "2026-11-19T07:30", "--json"))
    assert drafted == {"school": 2}  # the township's report (25th) is not due within five days yet
    # the first school signs on time, the second a day late; a correction is a second version
    out = json.loads(baoxue(db, "submission", "submit", "school", "C3T1S1", "2026-11", "--problems", "留守儿童监护缺位",
                            "--next-steps", "每周家访", "--by", "school:1", "--at", "2026-11-23T17:00", "--json"))
    assert (out["version"], out["late"], out["prepared_by"] != "") == (1, False, True)
    baoxue(db, "submission", "submit", "school", "C3T1S2", "2026-11", "--at", "2026-11-24T09:00", code=1)  # no text: refused
    late = json.loads(baoxue(db, "submission", "submit", "school", "C3T1S2", "2026-11", "--problems", "p", "--next-steps", "n",
                             "--at", "2026-11-24T09:00", "--json"))
    fixed = json.loads(baoxue(db, "submission", "submit", "school", "C3T1S2", "2026-11", "--problems", "p2", "--next-steps", "n",
                              "--reason", "更正", "--at", "2026-11-24T10:00", "--json"))
    assert (late["late"], late["version"], fixed["version"], fixed["reason"]) == (True, 1, 2, "更正")
    rows = {r["code"]: r for r in json.loads(baoxue(db, "submission", "list", "2026-11", "--at", "2026-11-24T11:00", "--json"))}
    assert rows["C3T1S1"]["status"] == "done" and not rows["C3T1S1"]["done_late"]
    assert rows["C3T1S2"]["done_late"] and len(rows["C3T1S2"]["versions"]) == 2
    # the weekly count: Monday's duties, one class counted, the rest missing past the day
    assert json.loads(baoxue(db, "weekly", "open", "2026-11-23", "--json"))["opened"] == 18
    count = json.loads(baoxue(db, "weekly", "submit", "1", "2026-11-23", "--absent", "1", "--present", "2", "--by", "teacher:1",
                              "--at", "2026-11-23T09:00", "--json"))
    assert (count["enrolled"], count["present"], count["absent"], count["late"]) == (3, 2, 1, False)
    sheet = json.loads(baoxue(db, "weekly", "sheet", "2026-11-23", "--at", "2026-11-24T08:00", "--json",
                              "--xlsx", str(tmp_path / "w.xlsx")))
    assert [(s["submitted"], s["missing"]) for s in sheet["schools"]] == [(1, 8), (0, 9)]
    assert [c.value for c in load_workbook(tmp_path / "w.xlsx")["乡镇"][2][:4]] == ["城关镇", 18, 1, 17]
    stuck = baoxue(db, "cases", "--stuck", "--at", "2026-11-24T08:00")
    assert "提交班级周查" in stuck or "周查" in stuck
    # 季查: the sealed draw, a result with a discrepancy, its reconciliation resolved
    drawn = json.loads(baoxue(db, "spot-result", "draw", "2026Q4", "--seed", "5", "--at", "2026-11-15T10:00", "--json"))
    school, classes = next(iter(drawn["sample"]["classes"].items()))
    listed = json.loads(baoxue(db, "spot-result", "list", "2026Q4", "--json"))
    target = listed[0]["class_id"]
    res = json.loads(baoxue(db, "spot-result", "record", "2026Q4", str(target), "--enrolled", "3", "--present", "2",
                            "--absent", "1", "--discrepancies", "1", "--findings", "晨检记为到校，实际未到",
                            "--inspector", "赵督学", "--role", "township", "--at", "2026-11-16T10:00", "--json"))
    assert res["status"] == "open" and res["differences"][0]["field"] == "discrepancies"
    baoxue(db, "spot-result", "record", "2026Q4", str(target), "--enrolled", "3", "--present", "3", "--absent", "0",
           "--inspector", "赵督学", "--role", "township", code=1)  # signed: not rewritten
    baoxue(db, "spot-result", "record", "2026Q4", str(listed[1]["class_id"]), "--enrolled", "3", "--present", "3",
           "--absent", "0", "--inspector", "赵督学", "--role", "school", code=1)  # a school does not inspect itself
    baoxue(db, "spot-result", "resolve", str(res["id"]), "--explanation", "晨检漏记，已更正", "--by", "township:1")
    after = json.loads(baoxue(db, "spot-result", "list", "2026Q4", "--json"))
    assert after[0]["result"]["status"] == "resolved" and after[0]["result"]["explanation"] == "晨检漏记，已更正"
