"""No tracebacks for user mistakes: every `baoxue` command answers bad input with one bilingual line.

The commands are read off the Typer app (a new command is covered without touching this file); each is run
with a malformed value (or an option it does not have) and, where it takes required input, with
well-formed values that name nothing (an unknown id, pupil or school, a date in a year without a holiday
list, an unreadable file, an empty folder to read, an existing file where a folder is to be written).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import typing
from datetime import datetime
from enum import Enum
from pathlib import Path

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from cli.main import app
from cli.errors import BaoxueGroup

runner = CliRunner()
CJK = re.compile(r"[\u4e00-\u9fff]")
REPO = Path(__file__).resolve().parents[2]
UNKNOWN = {int: "987654", float: "987654.5", str: "NOPE", datetime: "2031-03-03", bool: None}


def commands(group=None, path=()):
    """(path, click command) of every leaf command of the `baoxue` app, sub-apps included."""
    group = group or typer.main.get_command(app)
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):
            yield from commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


COMMANDS = dict(commands())


def kind(param) -> type:
    """The Python type of a parameter (Optional[X] → X, list[X] → X)."""
    annotation = param.type_descriptor.annotation
    while typing.get_args(annotation):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def value_params(cmd):
    return [p for p in cmd.params if p.name != "help" and not getattr(p, "is_flag", False)]


def malformed(cmd) -> list[str]:
    """Arguments with a value the command's parameter types refuse (a bad number, date or choice), else an
    option the command does not have."""
    required_args = []
    for p in value_params(cmd):
        t = kind(p)
        bad = "not-a-number" if t in (int, float) else "2026-13-45" if t is datetime else (
            "no-such-choice" if isinstance(t, type) and issubclass(t, Enum) else None)
        if bad is not None:
            return [*required_args, *(p.opts[:1] if p.param_type_name == "option" else []), bad]
        if p.param_type_name == "argument" and p.required:
            required_args.append("NOPE")
    return ["--no-such-option"]


def naming_nothing(cmd, tmp: Path) -> list[str] | None:
    """Well-formed values for every required parameter that name nothing the database knows."""
    garbage = tmp / "garbage.csv"
    garbage.write_bytes(b"\xff\xfe\x00garbage\x00\x81,\x00\n")
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    args, required = [], [p for p in value_params(cmd) if p.required]
    if not required:
        return None
    for p in required:
        t = kind(p)
        if t is Path:
            info = p.type_descriptor.parameter_info
            # a folder to read names nothing when empty; a folder to write into (org templates/sample: need not
            # exist, an empty one is a fine target) names nothing when the path is an existing file
            value = str(garbage if info.file_okay is not False or not info.exists else empty)
        elif isinstance(t, type) and issubclass(t, Enum):
            value = next(iter(t)).value
        else:
            value = UNKNOWN.get(t, "NOPE")
        args += [*(p.opts[:1] if p.param_type_name == "option" else []), value]
    return args


@pytest.fixture(scope="module")
def county(tmp_path_factory) -> str:
    db = str(tmp_path_factory.mktemp("cli_errors") / "baoxue.db")
    for args in (["init", "--at", "2026-09-01T07:00"],
                 ["generate", "--seed", "3", "--townships", "1", "--schools", "1", "--pupils-per-class", "2"]):
        result = runner.invoke(app, ["--db", db, *args])
        assert result.exit_code == 0, result.output
    return db


def assert_one_line(result, *, expected_error: bool = True) -> str:
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert CJK.search(lines[0]), lines[0]
    if expected_error:
        assert "内部错误" not in lines[0], lines[0]
    return lines[0]


def test_the_walk_finds_every_command_including_the_sub_apps():
    assert {"absent", "init", "serve", "advance"} <= {p[0] for p in COMMANDS if len(p) == 1}
    assert {("doc", "render"), ("backup", "restore"), ("census", "import"), ("policy", "check"), ("user", "add"),
            ("gate", "out"), ("handoff", "ack"), ("risk", "explain")} <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_a_malformed_value_is_one_bilingual_line_without_traceback(path, county, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever a command might write lands here
    args = malformed(COMMANDS[path])
    result = runner.invoke(app, ["--db", county, *path, *args])
    line = assert_one_line(result)
    assert result.exit_code == 2 and "error:" in line


@pytest.mark.parametrize("path", sorted(p for p, c in COMMANDS.items() if any(x.required for x in value_params(c))),
                         ids=" ".join)
def test_input_that_names_nothing_is_one_bilingual_line_without_traceback(path, county, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = naming_nothing(COMMANDS[path], tmp_path)
    result = runner.invoke(app, ["--db", county, *path, *args])
    assert_one_line(result)


def pupil(db: str) -> str:
    import sqlite3

    with sqlite3.connect(db) as c:
        return c.execute("SELECT student_no FROM pupils ORDER BY id LIMIT 1").fetchone()[0]


def test_a_day_in_a_year_without_holidays_names_the_missing_file(county):
    result = runner.invoke(app, ["--db", county, "absent", pupil(county), "--date", "2027-03-01"])
    line = assert_one_line(result)
    assert result.exit_code == 2
    assert "2027 年的节假日表尚未提供" in line and "holidays-2027.toml" in line and "no holiday list for 2027" in line


def test_an_unreachable_database_is_one_line(tmp_path):
    result = runner.invoke(app, ["--db", "postgresql+psycopg://nobody@127.0.0.1:1/none", "cases"])
    assert "数据库" in assert_one_line(result) and result.exit_code == 2


def run_baoxue(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The command as a user runs it: a new process, Typer's own exception hook."""
    return subprocess.run([str(Path(sys.executable).parent / "baoxue"), *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "BAOXUE_DEBUG": "", **(env or {})}, timeout=120)


def test_debug_shows_the_traceback_and_without_it_one_line(county):
    args = ["--db", county, "absent", pupil(county), "--date", "2027-03-01"]
    plain = run_baoxue(*args)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert [line for line in plain.stderr.splitlines() if line.strip()] == [
        line for line in plain.stderr.splitlines() if "2027 年的节假日表尚未提供" in line]
    for debug in (run_baoxue("--debug", *args), run_baoxue(*args, env={"BAOXUE_DEBUG": "1"})):
        assert debug.returncode != 0
        assert "Traceback (most recent call last)" in debug.stderr and "CalendarYearUnknown" in debug.stderr


def test_an_unexpected_error_is_one_line_that_says_internal_and_how_to_see_more():
    broken = typer.Typer(cls=BaoxueGroup, pretty_exceptions_enable=False)

    @broken.callback()
    def main(debug: bool = typer.Option(False, "--debug")):
        pass

    @broken.command()
    def boom():
        raise RuntimeError("a bug")

    result = runner.invoke(broken, ["boom"])
    line = assert_one_line(result, expected_error=False)
    assert result.exit_code == 1 and "内部错误 internal error" in line and "--debug" in line and "a bug" in line
    debug = runner.invoke(broken, ["--debug", "boom"])
    assert isinstance(debug.exception, RuntimeError)  # raised on: the runner (or Python) shows its traceback


def test_json_output_is_untouched_by_the_error_path(county):
    result = runner.invoke(app, ["--db", county, "cases", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []
