"""Policies as data: the shipped files load, a bad file is rejected naming file, field and reason."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from machines.states import CaseState
from store.policy_files import PolicyFileError, load_policies_into, policy_files, read_policy_file

GOOD = (Path(__file__).resolve().parents[2] / "deploy" / "policies" / "default.toml").read_text(encoding="utf-8")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_policies_load_with_their_ladders():
    loaded = {p.stem: read_policy_file(p)[0] for p in policy_files()}
    assert set(loaded) == {"default", "jingbian", "wutaishan"}
    assert [(s.state, s.day) for s in loaded["default"].steps] == [
        (CaseState.family_contacted, 1), (CaseState.visited, 2), (CaseState.collective_visit, 3),
        (CaseState.township_notice, 4), (CaseState.judicial_notice, 5)]
    assert CaseState.judicial_notice not in [s.state for s in loaded["jingbian"].steps]
    assert loaded["jingbian"].step(CaseState.visited).duties[0].role == "grade_director"
    assert loaded["wutaishan"].step(CaseState.township_notice).day == 6  # 两次劝返后旷课一周以上
    assert loaded["wutaishan"].helpers_required == 3


@pytest.mark.parametrize("edit, field, reason", [
    (("day = 2\n", "day = 1\n"), "(file)", "step days must strictly increase"),
    (('role = "head_teacher", due_school_days = 0', 'role = "janitor", due_school_days = 0'), "(file)", "unknown role"),
    (('due_time = "17:00"', 'due_time = "25:00"'), "steps.0.duties.0.due_time", "time"),
    (('state = "visited"', 'state = "returned"'), "steps.1.state", "not a ladder step"),
    (("standard_dropout_rate = 0.006", "standard_dropout_rate = 3"), "standard_dropout_rate", "less than 1"),
    (("escalation_time", "escalation_tyme"), "escalation_tyme", "Extra inputs"),
])
def test_a_bad_policy_file_is_rejected_naming_file_field_and_reason(tmp_path, edit, field, reason):
    path = write(tmp_path, "default", GOOD.replace(*edit, 1))
    with pytest.raises(PolicyFileError) as info:
        read_policy_file(path)
    message = str(info.value)
    assert str(path) in message and f"field '{field}'" in message and reason in message


def test_a_policy_named_differently_from_its_file_is_rejected(tmp_path):
    with pytest.raises(PolicyFileError, match="must match the file name"):
        read_policy_file(write(tmp_path, "other", GOOD))


def test_policy_check_command_reports_the_bad_file(tmp_path):
    from cli.main import app
    bad = write(tmp_path, "default", GOOD.replace("day = 3\n", "day = -3\n", 1))
    result = CliRunner().invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 2
    assert "steps.2.day" in result.output


def test_changing_a_policy_file_requires_a_new_version(session, tmp_path, monkeypatch):
    load_policies_into(session, now=datetime(2026, 9, 1))
    folder = tmp_path / "p"
    folder.mkdir()
    write(folder, "default", GOOD.replace("helpers_required = 3", "helpers_required = 2"))
    with pytest.raises(PolicyFileError, match="raise the version"):
        load_policies_into(session, directory=folder, now=datetime(2026, 9, 2))
