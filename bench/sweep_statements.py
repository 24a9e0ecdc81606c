"""The escalation of ``store.cases.advance.advance`` statement by statement (issue 20, docs/performance.md
section sqlite): on a copy of a population, each statement's wall time (grouped by its head), and up to the
escalation phase's last commit the process's CPU and its ``rchar``/``wchar`` (pages SQLite read with
``read()``; WAL frames and statement journals written).

    python -m bench.sweep_statements sqlite:///COPY.sqlite [--ddl "DROP INDEX …; …"] [--pragma "cache_size=-524288"]

``--ddl`` changes the copy before the run (what an index costs the escalation); ``--pragma`` is set on every
connection of the run's engine. The copy is written to: never pass the shared population itself.
"""
from __future__ import annotations

import argparse
import re
import sqlite3
import time
from collections import defaultdict

from sqlalchemy import event

from store.cases.advance import advance
from store.db import make_engine, session_factory

from .figures import AS_OF


def _io() -> tuple[int, int]:
    d = dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())
    return int(d["rchar"]), int(d["wchar"])


def _head(stmt: str) -> str:
    s = " ".join(stmt.split())
    m = re.match(r"(INSERT (?:OR \w+ )?INTO \w+|UPDATE (?:OR \w+ )?\w+|DELETE FROM \w+|SELECT .{0,60}|CREATE .{0,40}|\w+)", s)
    return m.group(1) if m else s[:50]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--ddl", default="")
    ap.add_argument("--pragma", default="")
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    if a.ddl:
        con = sqlite3.connect(a.url.split("///", 1)[1])
        con.isolation_level = None
        for stmt in filter(None, (s.strip() for s in a.ddl.split(";"))):
            con.execute(stmt)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
    eng = make_engine(a.url)
    if a.pragma:
        @event.listens_for(eng, "connect")
        def _pragmas(conn, _record):
            for p in filter(None, a.pragma.split(";")):
                conn.execute("PRAGMA " + p)
    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)

    @event.listens_for(eng, "before_cursor_execute")
    def _before(conn, cur, stmt, params, ctx, many):
        conn.info["t0"] = time.perf_counter()

    @event.listens_for(eng, "after_cursor_execute")
    def _after(conn, cur, stmt, params, ctx, many):
        k = _head(stmt)
        spent[k] += time.perf_counter() - conn.info["t0"]
        calls[k] += 1

    marks: list[tuple[str, float, tuple[int, int], float]] = []
    io0, cpu0, t0 = _io(), time.process_time(), time.perf_counter()
    rep = advance(session_factory(eng), AS_OF, keep_ids=False,
                  progress=lambda w, n: marks.append((w, time.perf_counter() - t0, _io(), time.process_time())))
    total = time.perf_counter() - t0
    esc = [m for m in marks if m[0] == "escalate"]
    if esc:
        _, t_esc, (r, w), cpu = esc[-1]
        print(f"escalation: {rep.total_transitions} transitions in {t_esc:.3f} s (CPU {cpu - cpu0:.2f} s); "
              f"read {(r - io0[0]) / 2**20:.1f} MB, written {(w - io0[1]) / 2**20:.1f} MB; whole run {total:.3f} s")
    for k, v in sorted(spent.items(), key=lambda kv: -kv[1])[:a.top]:
        print(f"  {v:7.3f} s  x{calls[k]:<4d} {k}")
    eng.dispose()


if __name__ == "__main__":
    main()
