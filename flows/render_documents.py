"""制作文书: render the documents the ladder's steps and the staff's actions asked for.

Each document request was queued in the transaction that moved the case; this flow renders the
queue in batches. Several runs may render at once (one per worker): each batch claims its own
rows, so the work spreads over the workers and nothing is rendered twice.
"""
from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger

from tasks.census import sync_handoffs
from tasks.render import documents_available, queued_documents, render_batch
from tasks.runtime import resolve_as_of, run_name


@flow(name="render_documents", log_prints=False, flow_run_name=run_name("render"))
def render_documents(as_of: datetime | None = None, batch_size: int = 100, max_batches: int = 100) -> dict:
    logger = get_run_logger()
    as_of = resolve_as_of(as_of)
    if not documents_available():
        logger.warning("documents.render_queued is not available yet: %s request(s) stay queued", queued_documents())
        return {"rendered": 0, "failed": 0, "batches": 0, "unavailable": True}
    rendered = failed = retry = batches = 0
    for _ in range(max_batches):
        done = render_batch(limit=batch_size, now=as_of)
        batches += 1
        rendered += done["rendered"]
        failed += done["failed"]
        retry += done.get("retry", 0)
        if done["rendered"] + done["failed"] + done.get("retry", 0) < batch_size:
            break
    if retry:
        logger.warning("%s document(s) failed transiently (disk, database); a later run tries them again", retry)
    if failed:
        logger.warning("%s document(s) failed to render and were given up: `baoxue doc failed` lists them, "
                       "`baoxue doc requeue ID|--failed` puts them back", failed)
    # 送达回证: the papers just issued to outside bodies wait for their receipts from now on
    handoffs = sync_handoffs(as_of) if rendered else 0
    return {"rendered": rendered, "failed": failed, "retry": retry, "batches": batches, "handoffs": handoffs}
