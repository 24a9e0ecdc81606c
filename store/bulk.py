"""Write many rows fast: COPY on PostgreSQL, the driver's executemany on SQLite.

Values pass through each column type's own bind processor, so what lands in the table is exactly
what an ORM or Core insert would have written (SQLite's datetime text format, JSON text…).
Columns every row shares can be given once (``same``): they are converted once, not per row.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from sqlalchemy import Table
from sqlalchemy.orm import Session
from sqlalchemy.types import JSON


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]], same: dict[str, Any] | None = None) -> None:
    if not rows:
        return
    same = same or {}
    columns = list(rows[0])
    conn = session.connection()
    dialect = conn.dialect
    dbapi = conn.connection.driver_connection
    if dialect.name == "postgresql":
        names = ", ".join(f'"{c}"' for c in [*columns, *same])
        json_cols = {c for c in columns if isinstance(table.c[c].type, JSON)}
        tail = [json.dumps(v, ensure_ascii=False) if isinstance(table.c[c].type, JSON) and v is not None else v
                for c, v in same.items()]
        with dbapi.cursor().copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            if json_cols:
                for r in rows:
                    copy.write_row([json.dumps(r[c], ensure_ascii=False) if c in json_cols and r[c] is not None else r[c]
                                    for c in columns] + tail)
            else:
                for r in rows:
                    copy.write_row([r[c] for c in columns] + tail)
        return
    procs = [table.c[c].type.bind_processor(dialect) for c in columns]
    tail = tuple(p(v) if (p := table.c[c].type.bind_processor(dialect)) is not None else v for c, v in same.items())
    names = [*columns, *same]
    sql = f'INSERT INTO "{table.name}" ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})'
    dbapi.cursor().executemany(sql, _processed(rows, columns, procs, tail))


def _processed(rows: Iterable[dict], columns: list[str], procs: list, tail: tuple = ()) -> Iterable[tuple]:
    if not any(procs):
        for r in rows:
            yield tuple([r[c] for c in columns]) + tail
        return
    for r in rows:
        yield tuple(p(r[c]) if p is not None else r[c] for c, p in zip(columns, procs)) + tail
