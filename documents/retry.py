"""The render queue's retries: a request that failed transiently waits and is tried again.

A failure is *transient* when trying again later may succeed: the disk was full or not writable
(``OSError``), the database was away (SQLAlchemy's ``OperationalError``). Such a request stays
``queued`` with ``attempts`` + 1 and ``next_attempt_at`` = now + BAOXUE_RENDER_RETRY_MINUTES × 4^(attempts−1);
render runs skip it until then. After BAOXUE_RENDER_MAX_ATTEMPTS attempts, or at once for a
failure that cannot heal by waiting (a template or data error), it is ``failed`` with the reason.
``requeue`` puts failed requests (or named ones) back in the queue, due now: ``baoxue doc requeue``.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from store.db import settings
from store.models import DocumentRequest

TRANSIENT = (OSError, OperationalError, TimeoutError)


def is_transient(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:  # a RenderError wrapping an OSError is an OSError
        if isinstance(exc, TRANSIENT):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def due(now: datetime):
    """The claim's condition: queued requests whose wait (if any) is over."""
    return or_(DocumentRequest.next_attempt_at.is_(None), DocumentRequest.next_attempt_at <= now)


def record_failure(session: Session, request_id: int, exc: BaseException, error: str, *, now: datetime) -> str:
    """Count the failed attempt of a still-queued request: ``"retry"`` (waits) or ``"failed"`` (gives up)."""
    attempts = (session.scalar(select(DocumentRequest.attempts).where(DocumentRequest.id == request_id)) or 0) + 1
    s = settings()
    if is_transient(exc) and attempts < s.render_max_attempts:
        wait = timedelta(minutes=s.render_retry_minutes * 4 ** (attempts - 1))
        values: dict[str, Any] = {"attempts": attempts, "next_attempt_at": now + wait,
                                  "error": f"第 {attempts} 次失败，{(now + wait):%m-%d %H:%M} 重试 (attempt {attempts}, retry): {error}"[:2000]}
        outcome = "retry"
    else:
        gave_up = f"已尝试 {attempts} 次 (gave up after {attempts} attempts): " if is_transient(exc) else ""
        values = {"attempts": attempts, "next_attempt_at": None, "status": "failed", "error": (gave_up + error)[:2000]}
        outcome = "failed"
    session.execute(update(DocumentRequest).where(DocumentRequest.id == request_id, DocumentRequest.status == "queued")
                    .values(**values))
    return outcome


def failed_requests(session: Session, limit: int = 200) -> list[dict[str, Any]]:
    """What the operator looks at: requests that gave up, and those waiting for a retry."""
    rows = session.scalars(select(DocumentRequest).where(or_(
        DocumentRequest.status == "failed",
        (DocumentRequest.status == "queued") & DocumentRequest.next_attempt_at.is_not(None)))
        .order_by(DocumentRequest.id).limit(limit))
    return [{"id": r.id, "case_id": r.case_id, "kind": r.kind, "event_seq": r.event_seq, "status": r.status,
             "attempts": r.attempts, "next_attempt_at": r.next_attempt_at, "error": r.error} for r in rows]


def requeue(session: Session, ids: list[int] | None = None, *, failed: bool = False) -> list[int]:
    """Put ``ids`` (failed or waiting ones) or every failed request back in the queue, due now."""
    q = select(DocumentRequest.id).where(DocumentRequest.status.in_(("failed", "queued")))
    if ids is not None:
        q = q.where(DocumentRequest.id.in_(ids))
    elif failed:
        q = q.where(DocumentRequest.status == "failed")
    else:
        return []
    found = list(session.scalars(q.order_by(DocumentRequest.id)))
    if found:
        session.execute(update(DocumentRequest).where(DocumentRequest.id.in_(found))
                        .values(status="queued", attempts=0, next_attempt_at=None))
    return found
