"""Document tasks: render the queued document requests through the documents package.

Idempotency key: the document request row (``document_requests``: case, kind, event) — a
request is rendered once, and ``documents.render_queued`` claims queued rows (SKIP LOCKED on
PostgreSQL), so two workers rendering at once split the queue instead of doubling it.
"""
from __future__ import annotations

import importlib
import inspect
from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import func, select

from store.db import transaction
from store.models import DocumentRequest

from tasks.runtime import store


class DocumentsUnavailable(RuntimeError):
    pass


def _render_queued():
    try:
        documents = importlib.import_module("documents")
        fn = getattr(documents, "render_queued", None)
        if fn is None:
            fn = getattr(importlib.import_module("documents.render"), "render_queued")
        return fn
    except (ImportError, AttributeError) as exc:
        raise DocumentsUnavailable(
            "documents.render_queued(factory, *, limit, actor) is not available yet: document requests stay queued"
        ) from exc


def documents_available() -> bool:
    try:
        _render_queued()
        return True
    except DocumentsUnavailable:
        return False


def _count(result: Any) -> dict[str, int]:
    """Whatever render_queued returns (an int, a dict, a dataclass) as {rendered, failed, retry}
    (retry: failed transiently, waiting to be tried again by a later run)."""
    if isinstance(result, int):
        return {"rendered": result, "failed": 0, "retry": 0}
    if isinstance(result, dict):
        get = result.get
    else:
        get = lambda k, d=0: getattr(result, k, d)  # noqa: E731
    n = lambda v: len(v) if isinstance(v, (list, tuple)) else int(v or 0)  # noqa: E731
    return {"rendered": n(get("rendered", 0)), "failed": n(get("failed", 0)), "retry": n(get("retry", 0))}


@task(name="queued_documents", cache_policy=NO_CACHE)
def queued_documents() -> int:
    with transaction(store()) as s:
        return s.scalar(select(func.count()).select_from(DocumentRequest).where(DocumentRequest.status == "queued")) or 0


@task(name="render_batch", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def render_batch(limit: int = 100, actor: str = "system:render_documents", now: datetime | None = None) -> dict[str, int]:
    """Render up to ``limit`` queued documents, dated ``now``; returns {rendered, failed}."""
    fn = _render_queued()
    kwargs = {"now": now} if now is not None and "now" in inspect.signature(fn).parameters else {}
    return _count(fn(store(), limit=limit, actor=actor, **kwargs))


RENDER_DEPLOYMENT = "render_documents/render-documents"


@task(name="request_rendering", cache_policy=NO_CACHE)
def request_rendering(queued: int, per_run: int = 200, max_runs: int = 4) -> dict:
    """Start render runs on the workers (one per ``per_run`` queued documents, at most ``max_runs``).

    Only from a deployed run: a run started in-process (tests, the demo's driver) renders
    through its own ``render_documents`` call instead."""
    from prefect.runtime import deployment

    if not queued or not deployment.id:
        return {"requested": 0, "queued": queued}
    from prefect.deployments import run_deployment

    runs = min(max_runs, -(-queued // per_run))
    for _ in range(runs):
        run_deployment(RENDER_DEPLOYMENT, timeout=0, as_subflow=False)
    return {"requested": runs, "queued": queued}
