"""Scale out, measured: the daily sweep (``store.cases.advance.advance``) run by 1, 2 and 4 concurrent
worker processes on PostgreSQL, which share the due cases and duties batch by batch
(``FOR UPDATE SKIP LOCKED``). Each worker count runs on a fresh copy of the same population.

For each count it prints, as JSON lines (``bench.common.emit``): the wall time from the common start
to the last worker's end, the speed-up over one worker, and the proof that each transition happened
once — the escalation events written at the sweep's instant equal the sum of the workers' reports
and the one-worker run's count, the cases' states equal the one-worker run's, no (case, seq) event
and no (case, kind, event_seq) document request is doubled, and the duties marked overdue equal
the one-worker run's. It also reports where the time went: the CPU the workers (Python) and their
PostgreSQL backends used (``/proc/<pid>/stat``, the server runs on this machine), against the wall
time and the machine's cores.

    .venv/bin/python -m bench.scale_out URL [--workers 1 2 4] [--label "1 M open / 100 k due"]

URL names a generated population (``bench.generate``) on PostgreSQL; it is only read (copied).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path

from sqlalchemy import text

from .common import backend_of, copy_db, drop_db, emit, log
from .generate import AS_OF

CLK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (0 if it is gone or unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except (OSError, IndexError, ValueError):
        return 0.0


def _worker(url: str, ready, start, out) -> None:
    """One sweep worker: waits for the common start, runs the whole daily advance, reports."""
    from store.cases.advance import advance
    from store.db import make_engine, session_factory

    eng = make_engine(url)
    factory = session_factory(eng)
    with eng.connect() as c:  # the pool keeps this connection: the sweep's transactions run on it
        backend = c.scalar(text("SELECT pg_backend_pid()"))
    cpu0, own0 = _cpu_seconds(backend), time.process_time()
    ready.put(os.getpid())
    start.wait()
    t0 = time.perf_counter()
    rep = advance(factory, AS_OF, keep_ids=False)
    t1 = time.perf_counter()
    out.put({"pid": os.getpid(), "seconds": t1 - t0, "end": time.time(), "transitions": rep.total_transitions,
             "overdue": rep.overdue, "batches": rep.batches, "python_cpu": time.process_time() - own0,
             "backend_cpu": _cpu_seconds(backend) - cpu0})
    eng.dispose()


def ledger(url: str) -> dict:
    """What the sweep left: counts that must not depend on the number of workers."""
    from sqlalchemy import create_engine

    eng = create_engine(url)
    with eng.connect() as c:
        a = {"a": AS_OF}
        out = {
            "escalations": c.scalar(text("SELECT count(*) FROM case_events WHERE event = 'escalate' AND recorded_at = :a"), a),
            "doubled_events": c.scalar(text("SELECT count(*) FROM (SELECT case_id, seq FROM case_events "
                                            "GROUP BY case_id, seq HAVING count(*) > 1) x")),
            "doubled_documents": c.scalar(text("SELECT count(*) FROM (SELECT case_id, kind, event_seq FROM document_requests "
                                               "GROUP BY case_id, kind, event_seq HAVING count(*) > 1) x")),
            "documents_now": c.scalar(text("SELECT count(*) FROM document_requests WHERE requested_at = :a"), a),
            "duties_now": c.scalar(text("SELECT count(*) FROM duties WHERE created_at = :a"), a),
            "overdue_now": c.scalar(text("SELECT count(*) FROM duties WHERE overdue_at = :a"), a),
            "states": dict(c.execute(text("SELECT state, count(*) FROM cases GROUP BY state ORDER BY state")).all()),
            # a case moved twice by one step would have two escalations from the same state at this instant
            "same_move_twice": c.scalar(text(
                "SELECT count(*) FROM (SELECT case_id, from_state FROM case_events WHERE event = 'escalate' "
                "AND recorded_at = :a GROUP BY case_id, from_state HAVING count(*) > 1) x"), a),
        }
    eng.dispose()
    return out


def run(base: str, n: int) -> tuple[dict, list[dict], float, dict]:
    """The sweep by ``n`` workers on a fresh copy of ``base``: (ledger, worker reports, wall s, cpu)."""
    url = f"{base}_so{n}"
    copy_db(base, url)
    ctx = mp.get_context("spawn")
    ready, start, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, ready, start, out)) for _ in range(n)]
    for p in procs:
        p.start()
    for _ in procs:  # every worker imported, connected and waiting
        ready.get()
    t0 = time.time()
    start.set()
    reports = [out.get() for _ in procs]
    for p in procs:
        p.join()
    wall = max(r["end"] for r in reports) - t0
    load = os.getloadavg()[0]
    result = ledger(url)
    drop_db(url)
    return result, reports, wall, {"load_1min": load}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    if backend_of(a.url) != "postgresql":
        raise SystemExit("scale-out is measured on PostgreSQL (SQLite has one writer)")
    cores = os.cpu_count()
    first, t_one = None, None
    for n in a.workers:
        log(f"sweep with {n} worker(s) on {a.label or a.url}")
        got, reports, wall, info = run(a.url, n)
        if first is None:
            first, t_one = got, wall
        moved = sum(r["transitions"] for r in reports)
        once = (got["escalations"] == moved == first["escalations"] and got["states"] == first["states"]
                and got["doubled_events"] == 0 and got["doubled_documents"] == 0 and got["same_move_twice"] == 0
                and got["overdue_now"] == sum(r["overdue"] for r in reports) == first["overdue_now"]
                and got["documents_now"] == first["documents_now"] and got["duties_now"] == first["duties_now"])
        py_cpu = sum(r["python_cpu"] for r in reports)
        pg_cpu = sum(r["backend_cpu"] for r in reports)
        emit(f"sweep by {n} concurrent worker(s), {a.label} [postgresql]", wall, "s", t_one,
             ratio=t_one / wall, db="postgresql", figure="scale_out", workers=n, speedup=t_one / wall,
             transitions=moved, overdue=sum(r["overdue"] for r in reports), escalations_in_ledger=got["escalations"],
             each_once=once, doubled_events=got["doubled_events"], doubled_documents=got["doubled_documents"],
             worker_seconds=[round(r["seconds"], 1) for r in reports], batches=sum(r["batches"] for r in reports),
             python_cpu_s=py_cpu, backend_cpu_s=pg_cpu, cores=cores,
             busy_cores=(py_cpu + pg_cpu) / wall, load_1min=info["load_1min"],
             rate=moved / wall, note="ratio = speed-up over one worker (wall time of 1 ÷ of n); busy_cores = the "
                                     "workers' and their PostgreSQL backends' CPU seconds ÷ wall seconds")
        if not once:
            log(f"WARNING: the ledger differs with {n} workers: {got} vs {first}")


if __name__ == "__main__":
    main()
