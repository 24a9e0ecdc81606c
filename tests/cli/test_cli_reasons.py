"""Issue 16 through the command line: 查明辍学原因 (record_reason) and 三帮一 (assign_helpers with roles)."""
from __future__ import annotations

import json

from tests.cli.test_cli import baoxue, county, pupil_numbers  # noqa: F401 - the fixture

__all__ = ["county"]


def test_record_reason_and_three_helpers_through_the_cli(county):  # noqa: F811
    pupil = pupil_numbers(county)[0]
    baoxue(county, "absent", pupil, "--date", "2026-11-16", "--at", "2026-11-16T08:10")
    out = baoxue(county, "act", "1", "record_reason", "--reason", "poverty", "--note", "家访：家庭无力负担",
                 "--at", "2026-11-16T11:00", "--by", "王老师")
    assert "查明辍学原因" in out
    refused = baoxue(county, "act", "1", "record_reason", "--reason", "lazy", "--at", "2026-11-16T11:05", code=2)
    assert "原因" in refused
    one = baoxue(county, "act", "1", "assign_helpers", "--helper", "张三:班主任", "--at", "2026-11-16T11:10", code=2)
    assert "三帮一须落实3名帮扶责任人" in one and "村委会" in one
    baoxue(county, "act", "1", "assign_helpers", "--helper", "张三:班主任", "--helper", "李四:科任教师",
           "--helper", "王五：village_committee", "--at", "2026-11-16T11:15")
    case = json.loads(baoxue(county, "case", "1", "--json"))
    assert case["reason"] == "poverty"
    assert sorted((h["name"], h["role"]) for h in case["helpers"]) == [
        ("张三", "head_teacher"), ("李四", "subject_teacher"), ("王五", "village_committee")]
    changes = [e for e in case["events"] if e["event"] == "record_reason"]
    assert len(changes) == 1 and changes[0]["actor"] == "王老师" and changes[0]["payload"]["previous"] == "unknown"
