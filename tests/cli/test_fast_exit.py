"""cli/fast_exit.py: a `baoxue` process whose command succeeded (and said so) leaves by os._exit(0) after
every other exit handler ran and its output was flushed; a failed command keeps its exit code and the
ordinary exit; typer's test runner never arms it."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from typer.testing import CliRunner

PROGRAM = textwrap.dedent("""
    import atexit, sys, typer
    from cli.fast_exit import BaoxueTyper, after_success

    app = BaoxueTyper()

    @app.command()
    def run(code: int = 0):
        atexit.register(lambda: print("later handler ran", flush=True))  # like Prefect's, registered after
        print("result", end="")  # buffered: must be flushed by the fast exit
        after_success()
        if code:
            raise typer.Exit(code)

    class Finalized:  # the interpreter's teardown: skipped by the fast exit
        def __del__(self):
            sys.stderr.write("finalized\\n")

    keep = Finalized()
    app()
""")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROGRAM, *args], capture_output=True, text=True, timeout=60)


def test_success_leaves_at_once_after_the_other_handlers_and_flushed():
    done = _run("--code", "0")
    assert done.returncode == 0
    assert done.stdout.startswith("result") and "later handler ran" in done.stdout
    assert "finalized" not in done.stderr  # no interpreter finalization


def test_a_failed_command_keeps_its_code_and_the_ordinary_exit():
    done = _run("--code", "2")
    assert done.returncode == 2
    assert "later handler ran" in done.stdout
    assert "finalized" in done.stderr


def test_the_test_runner_never_arms_it():
    import cli.fast_exit as fast_exit
    from cli.main import app

    before = dict(fast_exit._state)
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert fast_exit._state["code"] == before["code"]  # __call__ not used: os._exit can never end pytest
