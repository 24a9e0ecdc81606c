"""A long list read as the database sends it (the lists' exports, issue 18).

On PostgreSQL through psycopg the rows come in chunks while the server is still reading the rest
(psycopg's ``Cursor.stream`` in libpq's chunked-rows mode, libpq ≥ 17): the app labels, formats and
writes the first rows of a 5 000-row export while the server reads the pages of the next ones, so the
export costs about the longer of the two, not their sum (docs/performance.md ``## stream``). The
rows are the ones ``session.execute`` would give, in the same order: SQLAlchemy prepares the statement
and its parameters as for any execution (:func:`_capture` keeps them instead of sending them) and the
driver streams that.

Elsewhere (SQLite runs in the app's own process: nothing to overlap), or when a column's value needs
one of SQLAlchemy's type conversions on its way out, the result is read through SQLAlchemy in parts.

The stream holds the session's connection until its last row: read every row (bound the select
with ``LIMIT``) and run no other statement on the session meanwhile.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from sqlalchemy import Engine, Select, event
from sqlalchemy.orm import Session

CHUNK = 500  # rows per chunk: the first arrive after ~10 ms of a 5 000-row export's ~120 ms of server work
_CAPTURE = "baoxue_stream_capture"  # an execution option: SQLAlchemy prepares the statement, the driver is not called


@event.listens_for(Engine, "do_execute")
def _capture(cursor, statement, parameters, context):
    """An execution marked :data:`_CAPTURE`: keep the statement and parameters SQLAlchemy would send (its
    compiled cache, its type processing, its expanded ``IN`` lists) and send nothing; True: "executed"."""
    box = context.execution_options.get(_CAPTURE)
    if box is None:
        return None
    box.append((statement, parameters))
    return True


def stream_rows(session: Session, stmt: Select, *, chunk: int = CHUNK) -> tuple[list[str], Iterator[Sequence[Any]]]:
    """The column names of ``stmt`` and an iterator over its rows (tuples), read ``chunk`` rows at a time."""
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg" and not any(
            c.type.dialect_impl(dialect).result_processor(dialect, None) is not None for c in stmt.selected_columns):
        box: list[tuple[str, Any]] = []
        conn.execute(stmt, execution_options={_CAPTURE: box})
        (sql, params), = box
        return list(stmt.selected_columns.keys()), _psycopg_stream(conn.connection.driver_connection, sql, params, chunk)
    result = conn.execute(stmt)
    return list(result.keys()), (row for part in result.partitions(chunk) for row in part)


def _psycopg_stream(raw, sql: str, params: Any, chunk: int) -> Iterator[tuple]:
    with raw.cursor() as cur:
        yield from cur.stream(sql, params, size=chunk)
