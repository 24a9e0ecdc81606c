"""The renderers draining a day's queue: the ``render_documents`` flow against a local Prefect server.

    python -m bench.render_queue URL [--docs N] [--batch 100]

On a fresh copy of the population at ``URL`` (``bench.generate``), ``store.cases.advance.advance``
runs the morning's sweep (not timed): the document requests it queues are the day's queue (the
papers of every escalation: registers, reports, notices). Then the product's own
``flows.render_documents.render_documents`` flow — ``render_batch`` tasks calling
``documents.archive.render_queued``: claim a request, build its context from the case, render
HTML and PDF (WeasyPrint), archive the file, number the document, mark the request — drains the
first ``N`` requests of that queue (the oldest first, as it always does; ``--docs 0``: all of
them) against its own local Prefect server, in this process.

Figures (JSON lines, ``bench.common.emit``): documents per second (wall and per CPU second of
this process), the flow's peak RSS, the queue's size and mix. When ``N`` is a fraction of the
queue the time for the whole queue is *extrapolated* from the measured per-document cost (the
JSON says so: ``extrapolated_hours``); a worker's cost per document does not depend on how much
of the queue is left (each request is one claim and one render).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from .common import backend_of, copy_db, db_url, drop_db, emit, log, peak_rss_mb, reset_peak_rss, sqlite_path
from .generate import AS_OF


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url", help="a population made by bench.generate (copied, never written)")
    ap.add_argument("--docs", type=int, default=500, help="how many of the queue's requests to drain (0: all)")
    ap.add_argument("--batch", type=int, default=100, help="the flow's batch_size (documents per render_batch task)")
    ap.add_argument("--label", default="", help="the population's name, for the figure's title")
    a = ap.parse_args()
    if backend_of(a.url) != "sqlite":
        raise SystemExit("render_queue: SQLite populations only (the flow's path is the same on PostgreSQL)")
    work = Path(tempfile.mkdtemp(prefix="baoxue-render-queue-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ["BAOXUE_ARCHIVE_DIR"] = str(work / "archive")
    url = db_url("sqlite", sqlite_path(a.url).stem + "_renderq")  # the copy lives in bench/_out/db, never beside the source
    try:
        copy_db(a.url, url)
        from sqlalchemy import text

        from store.cases.advance import advance
        from store.db import make_engine, session_factory

        engine = make_engine(url)
        factory = session_factory(engine)
        t = time.perf_counter()
        report = advance(factory, AS_OF, keep_ids=False)
        sweep_s = time.perf_counter() - t
        with engine.connect() as c:
            mix = dict(c.execute(text("SELECT kind, count(*) FROM document_requests WHERE status = 'queued' "
                                      "GROUP BY kind ORDER BY kind")).all())
            open_cases = c.scalar(text("SELECT count(*) FROM cases WHERE closed_on IS NULL"))
        queued = sum(mix.values())
        docs = queued if a.docs <= 0 else min(a.docs, queued)
        log(f"sweep: {report.total_transitions} transitions in {sweep_s:.1f} s queued {queued} document requests: {mix}")

        from deploy.deployments import no_heartbeat
        from deploy.local import free_port, start_prefect_server, stop, wait_healthy

        server, api = start_prefect_server(work / "prefect", free_port(), work / "prefect-server.log")
        try:
            wait_healthy(api + "/health", server, log=work / "prefect-server.log")
            from prefect.settings import PREFECT_API_URL, temporary_settings

            from documents.render import engine as pdf_engine
            from flows.render_documents import render_documents
            from tasks.runtime import using

            pdf_engine()  # fonts and stylesheet: once per worker process, before its first batch
            with temporary_settings(updates={PREFECT_API_URL: api}), no_heartbeat(), using(factory):
                reset_peak_rss()
                cpu0 = time.process_time()
                t = time.perf_counter()
                state = render_documents(as_of=AS_OF.replace(hour=10), batch_size=a.batch,
                                         max_batches=-(-docs // a.batch), return_state=True)
                wall = time.perf_counter() - t
                cpu = time.process_time() - cpu0
                rss = peak_rss_mb()
                result = state.result()
        finally:
            stop(server)
        with engine.connect() as c:
            done = dict(c.execute(text("SELECT status, count(*) FROM document_requests GROUP BY status")).all())
            files = c.scalar(text("SELECT count(*) FROM document_files"))
        engine.dispose()
        rendered = result["rendered"]
        if result["failed"] or result.get("retry"):
            log(f"WARNING: {result['failed']} failed, {result.get('retry', 0)} to retry")
        rate, cpu_rate = rendered / wall, rendered / cpu
        whole = rendered >= queued
        pop = a.label or Path(a.url).stem
        common = dict(figure="render_queue", population=pop, open_cases=open_cases,
                      transitions=report.total_transitions, queue=queued, queue_mix=mix, drained=rendered,
                      failed=result["failed"], batches=result["batches"], batch_size=a.batch, seconds=wall,
                      cpu_seconds=cpu, files_archived=files, statuses=done, rss_mb=rss)
        emit(f"render_documents flow draining the day's queue ({rendered:,} of {queued:,} requests), {pop}",
             rate, "docs/s", docs_per_cpu_s=cpu_rate,
             queue_hours_one_worker=None if whole else queued / rate / 3600,
             extrapolated=not whole,
             note=("the whole queue, measured" if whole else
                   f"measured on the first {rendered:,} requests; queue_hours_one_worker = the whole queue "
                   f"÷ the measured rate (an extrapolation from the measured per-document cost)")
             + "; PDF (HTML → WeasyPrint), archived and numbered, one Prefect task per batch; "
               "the sweep that queued them is not timed", **common)
    finally:
        drop_db(url)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
