"""Leave the process at once when a command that ran a Prefect flow has finished well.

A command that imports Prefect (some 1,600 modules with its dependencies) pays for it a second time when
the interpreter finalizes them at exit: 0.4–1.5 s measured after ``import prefect`` alone, 1.1–1.7 s after
a county file's run (docs/performance.md ``## entry``), for nothing the user needs. A command whose work is
committed and printed calls :func:`after_success`; when the process is the ``baoxue`` command itself
(:class:`BaoxueTyper`'s ``__call__``, never typer's test runner) and the command exits with 0, the last
exit handler (registered when ``cli.main`` is imported, before Prefect is, so it runs after every exit
handler Prefect registers and after Prefect's log and event services were drained at thread shutdown)
flushes stdout and stderr and ends the process with ``os._exit(0)``. Any other exit code, or an exception,
takes the ordinary way out.
"""
from __future__ import annotations

import atexit
import os
import sys

import typer

_state = {"armed": False, "code": None}


def after_success() -> None:
    """The running command's work is done and shown: skip the interpreter's finalization if it exits with 0."""
    _state["armed"] = True


class BaoxueTyper(typer.Typer):
    """The ``baoxue`` app: notes the process's exit code for :func:`_leave` (only a real invocation
    calls the app; typer's test runner invokes its command)."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as exc:
            _state["code"] = exc.code
            raise


def _leave() -> None:
    if _state["armed"] and _state["code"] == 0:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(0)


atexit.register(_leave)
