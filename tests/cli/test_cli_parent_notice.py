"""The 辍学书面通报 (seed 002) through the command line: filled in from the class record, the parent's
refusal and the bureau's copy each with a 送达回证; and a notice dated the day of its act."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import baoxue, county, pupil_numbers  # noqa: F401 - the county fixture


@pytest.fixture(autouse=True)
def archive_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    return tmp_path / "archive"


def test_the_parent_notice_through_the_cli(county, tmp_path):  # noqa: F811
    pupil = pupil_numbers(county)[0]
    for day in ("2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"):
        baoxue(county, "absent", pupil, "--date", day, "--at", f"{day}T08:10")
        baoxue(county, "advance", "--as-of", f"{day}T09:30")
    case = json.loads(baoxue(county, "case", "1", "--json"))
    assert case["state"] == "judicial_notice"
    assert {d["action"] for d in case["duties"]} >= {"record_class_record", "serve_parent_notice", "report_parent_notice"}

    # the parent cannot sign a notice the school has not filled in
    out = baoxue(county, "parent-notice", "signed", "1", "--refused", code=1)
    assert "先填写辍学书面通报" in out
    out = baoxue(county, "parent-notice", "fill", "1", "--conduct", "", "--study", "数学跟不上", code=1)
    assert "在校表现" in out  # both fields are required, named in Chinese
    filled = json.loads(baoxue(county, "parent-notice", "fill", "1", "--conduct", "上课常走神，与同学相处融洽",
                               "--study", "数学跟不上", "--at", "2026-11-20T15:00", "--key", "fill-1", "--json"))
    again = json.loads(baoxue(county, "parent-notice", "fill", "1", "--conduct", "上课常走神，与同学相处融洽",
                              "--study", "数学跟不上", "--at", "2026-11-20T15:00", "--key", "fill-1", "--json"))
    assert again["duplicate"] and again["seq"] == filled["seq"]
    baoxue(county, "parent-notice", "signed", "1", "--refused", "--witness", "村干部王某", "--opinion", "不同意返校",
           "--served-at", "2026-11-23 16:00", "--at", "2026-11-23T16:30")
    baoxue(county, "parent-notice", "reported", "1", "--received-by", "基教股李某", "--at", "2026-11-24T10:00")
    case = json.loads(baoxue(county, "case", "1", "--json"))
    kept = {e["event"]: e for e in case["events"]}
    assert {"record_class_record", "serve_parent_notice", "report_parent_notice"} <= set(kept)
    done = {d["action"]: d["status"] for d in case["duties"]}
    assert done["record_class_record"] == done["serve_parent_notice"] == done["report_parent_notice"] == "done"

    # the documents: rendered days later, each dated the day of its act
    notice = json.loads(baoxue(county, "doc", "render", "1", "parent_notice", "--fmt", "html", "--json"))
    html = Path(notice["path"]).read_text(encoding="utf-8")
    assert "上课常走神，与同学相处融洽" in html and "数学跟不上" in html and "2026年11月20日" in html
    receipts = []
    for seq in (filled["seq"] + 1, filled["seq"] + 2):
        r = json.loads(baoxue(county, "doc", "render", "1", "proof_of_service", "--event", str(seq), "--fmt", "html", "--json"))
        receipts.append(Path(r["path"]).read_text(encoding="utf-8"))
    assert "家长拒绝签字确认" in receipts[0] and "不同意返校" in receipts[0] and "2026年11月23日" in receipts[0]
    assert "学生辍学书面通报" in receipts[0] and "城关镇人民政府" not in receipts[0].split("送达机关")[1][:40]
    assert "宁安县教育局基础教育股" in receipts[1] and "基教股李某" in receipts[1] and "2026年11月24日" in receipts[1]
    legal = json.loads(baoxue(county, "doc", "render", "1", "legal_notice", "--fmt", "html", "--json"))
    text = Path(legal["path"]).read_text(encoding="utf-8")
    assert "2026年11月20日" in text and "城关镇人民政府" in text  # the day the step was reached
    bureau = Path(json.loads(baoxue(county, "doc", "render", "1", "report_to_bureau", "--fmt", "html", "--json"))["path"])
    assert "教育局基础教育股：" in bureau.read_text(encoding="utf-8")  # seed 002 (二).4: 报教育局基教股
