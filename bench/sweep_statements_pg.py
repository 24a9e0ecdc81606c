"""Where one escalation sweep's time goes, statement by statement (docs/performance.md, ``## pgesc``).

    PYTHONPATH=. .venv/bin/python bench/sweep_statements_pg.py <url of a COPY> [--batch-size N]
        [--escalation-only] [--explain N]

Runs ``store.cases.advance.advance`` on the copy (it writes: never on a shared population) with a
timer on every statement the driver sends, grouped by what the statement does (its verb and first
table); on PostgreSQL on this machine also the server process's CPU seconds per statement (from
``/proc``: a figure the other sessions' load changes far less than the wall time), the deltas of
``pg_stat_user_tables`` (rows inserted / updated / HOT) and the growth of every index across the
run. ``--explain N``: auto_explain's ANALYZE, BUFFERS, WAL and trigger times for the statements of
the N-th batch (its timing adds overhead to that batch). ``--escalation-only``: the overdue duties
are not marked (their phase is not part of the escalation figure). Run with another tree's code on
``PYTHONPATH`` to time that code the same way.
"""
from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict

from sqlalchemy import event, text

from store.cases import advance as adv
from store.db import make_engine, session_factory

from bench.generate import AS_OF

_TABLE = re.compile(r"\b(?:UPDATE|INSERT INTO|FROM|DELETE FROM)\s+\"?([a-z_]+)", re.I)


def kind(sql: str) -> str:
    s = " ".join(sql.split())
    head = s[:12].upper()
    if s.upper().startswith("WITH"):
        if "UPDATE cases" in s:
            return "WITH moved AS (UPDATE cases …) INSERT moved"
        verb = "WITH"
    else:
        verb = head.split(" ")[0]
    m = _TABLE.search(s)
    return f"{verb} {m.group(1) if m else '?'}"


def backend_cpu(pids) -> float:
    """CPU seconds (user + system) the server processes ``pids`` have used so far (same machine only)."""
    import os

    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def track_backends(eng) -> set[int]:
    """The server process of every connection ``eng`` opens (PostgreSQL on this machine)."""
    pids: set[int] = set()

    @event.listens_for(eng, "connect")
    def _pid(dbapi_conn, record):
        with dbapi_conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pids.add(cur.fetchone()[0])
        dbapi_conn.commit()
    return pids


def _stats(conn) -> tuple[dict, dict]:
    tables = {r[0]: r[1:] for r in conn.execute(text(
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"))}
    indexes = {r[0]: r[1] for r in conn.execute(text(
        "SELECT s.indexrelname, pg_relation_size(s.indexrelid) FROM pg_stat_user_indexes s"))}
    return tables, indexes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--explain", type=int, default=0,
                    help="PostgreSQL: print auto_explain's ANALYZE, BUFFERS, triggers for the statements of batch N")
    ap.add_argument("--escalation-only", action="store_true", help="skip the overdue duties (their phase is not timed here)")
    a = ap.parse_args()
    eng = make_engine(a.url)
    postgres = eng.dialect.name == "postgresql"
    notices: list[str] = []
    if a.explain:
        @event.listens_for(eng, "connect")
        def _connect(dbapi_conn, record):
            dbapi_conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
            with dbapi_conn.cursor() as cur:
                cur.execute("LOAD 'auto_explain'")
            dbapi_conn.commit()
    spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0.0])
    pids = track_backends(eng) if postgres else set()

    @event.listens_for(eng, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info["t0"] = time.perf_counter()
        conn.info["c0"] = backend_cpu(pids)

    @event.listens_for(eng, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        e = spent[kind(statement)]
        e[0] += time.perf_counter() - conn.info.pop("t0")
        e[1] += 1
        e[2] += backend_cpu(pids) - conn.info.pop("c0")

    if postgres:
        with eng.connect() as c:
            c.execute(text("SELECT pg_stat_clear_snapshot()"))
            before = _stats(c)
    marks = []
    phases: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        def run(*args, **kw):
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                phases[name] += time.perf_counter() - t
        return run

    if postgres:
        with eng.connect() as c:
            c.execute(text("CHECKPOINT"))
    for name in ("count_unapproved", "apply_late_marks", "plan", "escalate_many", "overdue_batch", "renew"):
        setattr(adv, name, timed(name, getattr(adv, name)))
    if a.escalation_only:
        adv.overdue_batch = lambda session, as_of, limit: []
    if a.explain:
        calls = [0]
        inner = adv.escalate_many

        def explained(session, *args, **kw):
            calls[0] += 1
            if calls[0] == a.explain:
                session.connection().exec_driver_sql(
                    "SET LOCAL client_min_messages = log; SET LOCAL auto_explain.log_level = log; "
                    "SET LOCAL auto_explain.log_min_duration = 0; SET LOCAL auto_explain.log_analyze = on; "
                    "SET LOCAL auto_explain.log_buffers = on; SET LOCAL auto_explain.log_triggers = on; "
                    "SET LOCAL auto_explain.log_wal = on")
                notices.clear()
            try:
                return inner(session, *args, **kw)
            finally:
                if calls[0] == a.explain:
                    for n in notices:
                        if "duration" in n and float(n.split("duration: ")[1].split(" ms")[0]) >= 1.0:
                            print(n)
                    notices.clear()
        adv.escalate_many = explained
    cpu0 = backend_cpu(pids), time.process_time()
    t0 = time.perf_counter()
    rep = adv.advance(session_factory(eng), AS_OF, batch_size=a.batch_size, keep_ids=False,
                      progress=lambda what, n: marks.append((what, time.perf_counter() - t0)))
    total = time.perf_counter() - t0
    cpu = backend_cpu(pids) - cpu0[0], time.process_time() - cpu0[1]
    esc = max((t for w, t in marks if w not in ("overdue", "checkpoint")), default=total)
    first = min((t for w, t in marks if w == "escalate"), default=0.0)
    n = rep.total_transitions
    print(f"transitions {n}, overdue {rep.overdue}, batches {rep.batches}; whole run {total:.2f} s, "
          f"escalation phase {esc:.2f} s (first batch committed at {first:.2f} s): {n / esc:,.0f}/s")
    print(f"  CPU: server {cpu[0]:.2f} s ({n / max(cpu[0], 1e-9):,.0f} transitions a server CPU-second), "
          f"client {cpu[1]:.2f} s; {len(pids)} server processes")
    print("  phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()))
    width = max(len(k) for k in spent)
    for k, (s, cnt, cpu_s) in sorted(spent.items(), key=lambda kv: -kv[1][0]):
        if s >= 0.005:
            print(f"  {k:<{width}}  {s:8.3f} s  server CPU {cpu_s:7.2f} s  {cnt:6d} calls")
    print(f"  {'(all statements)':<{width}}  {sum(v[0] for v in spent.values()):8.3f} s")
    if postgres:
        time.sleep(0.7)  # the statistics collector's flush
        with eng.connect() as c:
            c.execute(text("SELECT pg_stat_clear_snapshot()"))
            after = _stats(c)
        for t in sorted(after[0]):
            d = [x - y for x, y in zip(after[0][t], before[0].get(t, (0, 0, 0)))]
            if any(d):
                print(f"  {t:<20} ins {d[0]:>8,} upd {d[1]:>8,} hot {d[2]:>8,}")
        grown = {i: after[1][i] - before[1].get(i, 0) for i in after[1]}
        for i, g in sorted(grown.items(), key=lambda kv: -kv[1]):
            if g:
                print(f"  index {i:<40} +{g / 1048576:6.1f} MB")
    eng.dispose()


if __name__ == "__main__":
    main()
