"""The sessions store.db.make_engine opens: what every connection is set to before it is used."""
from __future__ import annotations

from sqlalchemy import text


def test_every_connection_is_set_up_for_short_statements(engine):
    """PostgreSQL: no JIT (0.3–0.7 s compiling a 10 ms statement at province scale); SQLite: WAL, foreign keys."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            assert conn.scalar(text("SHOW jit")) == "off"
            conn.rollback()
            assert conn.scalar(text("SHOW jit")) == "off", "the setting outlives a rolled-back transaction"
        else:
            assert conn.scalar(text("PRAGMA journal_mode")) == "wal"
            assert conn.scalar(text("PRAGMA foreign_keys")) == 1
