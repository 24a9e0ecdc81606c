"""What every `baoxue` command shares: the consoles, the clock, the store, errors, output and the
school scope of ``--school``. The main app (cli/main.py) and each sub-app import it; nothing here
imports a command module, so the CLI has no import circle."""
from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Optional

from rich.console import Console

from cli.errors import fail
from store.clock import local_now

console = Console()
err = Console(stderr=True, soft_wrap=True)
now_local = local_now  # the system clock (store.clock); every command takes --at/--as-of


def factory():
    from store.db import make_engine, session_factory
    return session_factory(make_engine())


def fail_with(message: str, code: int = 1):
    """A user mistake in the command's own words: printed as one line by cli/errors.py."""
    fail(message, code)


def school_scope(session, code: Optional[str]):
    """The scope of the school with this code (everything when no code is given); an unknown code fails."""
    from sqlalchemy import select

    from store.models import School
    from store.access.scope import EVERYTHING, Scope

    if not code:
        return EVERYTHING
    school_id = session.scalar(select(School.id).where(School.code == code))
    if school_id is None:
        fail_with(f"学校代码 {code} 不存在 (unknown school)")
    return Scope(school_ids=frozenset({school_id}))


def emit(data, as_json: bool, render) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        render(data)


def warn_calendars(engine, now: datetime) -> int:
    """`init` and `serve`: one line per school calendar that reaches within 60 days into a year without a
    holiday list (the operator's duty is raised or closed to match); returns how many."""
    from rich.markup import escape

    from store.bootstrap import check_calendars
    from store.calendar_watch import one_line
    warnings = check_calendars(engine, now=now)
    for w in warnings:
        err.print(escape(one_line(w)), style="yellow")
    return len(warnings)


def print_table(title: str, columns: tuple[str, ...], rows: list[dict]) -> None:
    """``rows`` as a table with ``columns`` (None shown empty): the plain listing of a --json command."""
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[column] if row[column] is not None else "") for column in columns))
    console.print(table)
