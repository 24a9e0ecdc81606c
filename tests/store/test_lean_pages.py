"""store.db.lean_pages: a pass that reads a table once (the county file's vet, the staged parts) keeps a
small SQLite page cache and no mapped file, and gives the connection its settings back after."""
from __future__ import annotations

from sqlalchemy import text

from store.db import LEAN_CACHE_KIB, SQLITE_CACHE_KIB, SQLITE_MMAP_BYTES, lean_pages


def _pragmas(session) -> tuple[int, int] | None:
    if session.bind.dialect.name != "sqlite":
        return None
    return (session.scalar(text("PRAGMA cache_size")), session.scalar(text("PRAGMA mmap_size")))


def test_lean_pages_inside_and_restored(session):
    before = _pragmas(session)
    with lean_pages(session):
        inside = _pragmas(session)
        assert session.scalar(text("SELECT 1")) == 1
    after = _pragmas(session)
    if before is None:  # PostgreSQL: nothing set, nothing to restore
        assert inside is None and after is None
        return
    assert before == (-SQLITE_CACHE_KIB, SQLITE_MMAP_BYTES)
    assert inside == (-LEAN_CACHE_KIB, 0)
    assert after == before


def test_lean_pages_restored_on_error(session):
    before = _pragmas(session)
    try:
        with lean_pages(session):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert _pragmas(session) == before
