"""Write many rows fast: COPY on PostgreSQL, the driver's executemany on SQLite.

Values pass through each column type's own bind processor, so what lands in the table is exactly
what an ORM or Core insert would have written (SQLite's datetime text format, JSON text…).
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from sqlalchemy import Table
from sqlalchemy.orm import Session
from sqlalchemy.types import JSON


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    conn = session.connection()
    dialect = conn.dialect
    dbapi = conn.connection.driver_connection
    if dialect.name == "postgresql":
        names = ", ".join(f'"{c}"' for c in columns)
        json_cols = {c for c in columns if isinstance(table.c[c].type, JSON)}
        with dbapi.cursor().copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for r in rows:
                copy.write_row([json.dumps(r[c], ensure_ascii=False) if c in json_cols and r[c] is not None else r[c]
                                for c in columns])
        return
    procs = [table.c[c].type.bind_processor(dialect) for c in columns]
    sql = f'INSERT INTO "{table.name}" ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})'
    dbapi.cursor().executemany(sql, _processed(rows, columns, procs))


def _processed(rows: Iterable[dict], columns: list[str], procs: list) -> Iterable[tuple]:
    for r in rows:
        yield tuple(p(r[c]) if p is not None else r[c] for c, p in zip(columns, procs))
