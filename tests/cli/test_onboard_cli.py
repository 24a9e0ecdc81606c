"""`baoxue onboard DIR` and `baoxue org …` as a county IT person runs them (docs/onboarding.md), on
a real database of each kind: templates, the sample county previewed then applied, a re-import
without duplicates, a bad file refused whole with its rows named, accounts from the staff list."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from openpyxl import load_workbook
from typer.testing import CliRunner

from cli.main import app
from store.ingest.onboarding import TEMPLATE_HEADERS

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "onboarding" / "sample"


def baoxue(db: str, *args: str, code: int = 0, stdin: str | None = None) -> str:
    result = runner.invoke(app, ["--db", db, *args], input=stdin)
    assert result.exit_code == code, result.output
    return result.output


def test_a_county_onboards_by_following_the_guide(blank_db_url, tmp_path):
    baoxue(blank_db_url, "init", "--at", "2026-11-01T07:00")
    baoxue(blank_db_url, "org", "templates", str(tmp_path / "t"))
    for sheet, headers in TEMPLATE_HEADERS.items():
        book = next((tmp_path / "t").glob(f"*{sheet}.xlsx"))
        assert [c.value for c in load_workbook(book).worksheets[0][1]] == headers

    files = tmp_path / "county"
    shutil.copytree(SAMPLE, files)
    preview = json.loads(baoxue(blank_db_url, "onboard", str(files), "--json"))
    assert not preview["applied"] and [s["add"] for s in preview["sheets"][:4]] == [10, 3, 52, 18]
    assert "以上为预览" in baoxue(blank_db_url, "onboard", str(files))
    assert json.loads(baoxue(blank_db_url, "org", "schools", "--json"))["total"] == 0  # a preview writes nothing
    assert "已导入" in baoxue(blank_db_url, "onboard", str(files), "--apply")
    again = json.loads(baoxue(blank_db_url, "onboard", str(files), "--apply", "--json"))
    assert [(s["add"], s["change"], s["retire"]) for s in again["sheets"][:4]] == [(0, 0, 0)] * 4
    assert json.loads(baoxue(blank_db_url, "org", "pupils", "--school", "2114099103", "--json"))["total"] == 9 * 12

    staff = (files / "3-教职工.csv").read_text(encoding="utf-8-sig").splitlines()
    (files / "3-教职工.csv").write_text("\n".join(staff + ["王五,123,校长,2114099101,", "赵六,13900000009,厨师,2114099101,"]),
                                       encoding="utf-8")
    bad = json.loads(baoxue(blank_db_url, "onboard", str(files), "--apply", "--json", code=2))
    errors = {e["row"]: e["reason"] for s in bad["sheets"] for e in s["errors"]}
    assert not bad["applied"] and sorted(errors) == [len(staff) + 1, len(staff) + 2]
    assert "手机号" in errors[len(staff) + 1] and "角色 厨师 不认识" in errors[len(staff) + 2]

    teacher = (files / "4-班级.csv").read_text(encoding="utf-8-sig").splitlines()[1].split(",")
    out = baoxue(blank_db_url, "user", "add-staff", "wanxi", "--staff", teacher[4], "--password-stdin",
                 stdin="a-long-passphrase-1\n")
    assert "head_teacher" in out
    baoxue(blank_db_url, "user", "add-staff", "wanxi2", "--staff", teacher[4], "--password-stdin",
           stdin="a-long-passphrase-1\n", code=1)
