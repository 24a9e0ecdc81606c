"""发文字号: one gap-free counter per issuer and year.

``allocate`` locks the issuer's counter row (``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite the
transaction already holds the database's single write lock, ``BEGIN IMMEDIATE``) and bumps it in
the caller's transaction — the transaction that archives the document. If anything fails before
the commit, the bump rolls back with it: numbers never repeat and never skip.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.models.documents import DocumentCounter


def peek(session: Session, issuer: str, year: int) -> int:
    """The last number given out (0 if none), without locking: a guess for rendering ahead."""
    return session.scalar(
        select(DocumentCounter.last_number).where(DocumentCounter.issuer == issuer, DocumentCounter.year == year)
    ) or 0


def allocate(session: Session, issuer: str, year: int, *, now: datetime) -> int:
    """The next number of ``issuer`` in ``year``; the counter row stays locked until the transaction ends."""
    _ensure_row(session, issuer, year, now)
    last = session.scalar(
        select(DocumentCounter.last_number)
        .where(DocumentCounter.issuer == issuer, DocumentCounter.year == year)
        .with_for_update()
    )
    number = int(last) + 1
    session.execute(
        update(DocumentCounter)
        .where(DocumentCounter.issuer == issuer, DocumentCounter.year == year)
        .values(last_number=number, updated_at=now)
    )
    return number


def _ensure_row(session: Session, issuer: str, year: int, now: datetime) -> None:
    """Create the counter row if missing; a concurrent creator wins quietly (ON CONFLICT DO NOTHING)."""
    dialect = session.get_bind().dialect.name
    values = {"issuer": issuer, "year": year, "last_number": 0, "updated_at": now}
    if dialect == "postgresql":
        stmt = postgresql.insert(DocumentCounter).values(**values).on_conflict_do_nothing(index_elements=["issuer", "year"])
    elif dialect == "sqlite":
        stmt = sqlite.insert(DocumentCounter).values(**values).on_conflict_do_nothing(index_elements=["issuer", "year"])
    else:  # pragma: no cover - other databases: plain check-then-insert under the caller's isolation
        if peek(session, issuer, year) or session.get(DocumentCounter, (issuer, year)) is not None:
            return
        session.add(DocumentCounter(**values))
        session.flush()
        return
    session.execute(stmt)
