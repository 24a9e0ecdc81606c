"""Write many rows fast: COPY on PostgreSQL, the driver's executemany on SQLite.

Values pass through each column type's own bind processor, so what lands in the table is exactly
what an ORM or Core insert would have written (SQLite's datetime text format, JSON text…).
Columns every row shares can be given once (``same``): they are converted once, not per row.
"""
from __future__ import annotations

import gc
import json
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from sqlalchemy import Table
from sqlalchemy.orm import Session
from sqlalchemy.types import JSON


@contextmanager
def paused_gc() -> Iterator[None]:
    """Hold Python's cyclic garbage collector for a bulk step.

    A county file makes 10⁵ short-lived tuples; every 700 of them start a collection that walks the
    young objects, and the older generations' walks cross every ORM object in the session: a third
    of the intake's time on SQLite. The rows made here hold no reference cycles (reference counting
    frees them), so collection simply waits for the end of the step; nesting is harmless.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]] | list[tuple], same: dict[str, Any] | None = None,
                columns: list[str] | None = None) -> None:
    """Insert ``rows``: dicts, or tuples in the order of ``columns`` (no dict per row for 10⁵ rows)."""
    if not rows:
        return
    same = same or {}
    if columns is None:
        columns = list(rows[0])
        rows = [tuple([r[c] for c in columns]) for r in rows]
    conn = session.connection()
    dialect = conn.dialect
    dbapi = conn.connection.driver_connection
    if dialect.name == "postgresql":
        names = ", ".join(f'"{c}"' for c in [*columns, *same])
        json_at = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
        tail = [json.dumps(v, ensure_ascii=False) if isinstance(table.c[c].type, JSON) and v is not None else v
                for c, v in same.items()]
        with dbapi.cursor().copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            if json_at:
                for r in rows:
                    r = list(r)
                    for i in json_at:
                        if r[i] is not None:
                            r[i] = json.dumps(r[i], ensure_ascii=False)
                    copy.write_row(r + tail)
            else:
                for r in rows:
                    copy.write_row([*r, *tail])
        return
    # each column type's own processor for this dialect (a generic Date has none of its own: the
    # dialect's DATE has), so the text is exactly what the ORM writes
    procs = [_processor(table, c, dialect) for c in columns]
    tail = tuple(p(v) if (p := _processor(table, c, dialect)) is not None else v for c, v in same.items())
    names = [*columns, *same]
    sql = f'INSERT INTO "{table.name}" ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})'
    dbapi.cursor().executemany(sql, _processed(rows, procs, tail))


def driver_rows(session: Session, query) -> list[tuple]:
    """The rows of ``query`` as the driver's plain tuples, without SQLAlchemy's result rows (for reads
    of 10⁵ rows whose columns need no type conversion: integers and text)."""
    conn = session.connection()
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    if compiled.positional:
        params = [params[k] for k in compiled.positiontup]
    cur = conn.connection.driver_connection.cursor()
    cur.execute(str(compiled), params)
    return cur.fetchall()


def _processor(table: Table, column: str, dialect):
    return table.c[column].type.dialect_impl(dialect).bind_processor(dialect)


def _processed(rows: Iterable[tuple], procs: list, tail: tuple = ()) -> Iterable[tuple]:
    if not any(procs):
        for r in rows:
            yield r + tail
        return
    for r in rows:
        yield tuple([p(v) if p is not None else v for v, p in zip(r, procs)]) + tail
