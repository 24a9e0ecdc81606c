"""The case engine's first benchmark: the daily advance at 100 k open cases.

Prints, as JSON lines, transitions/s of the set-based advance beside (a) one raw set-based
``UPDATE … RETURNING`` of the same rows and (b) the per-case path (python-statemachine bound to
each ORM row), on SQLite and — when ``BAOXUE_BENCH_PG_URL`` names a PostgreSQL server — on
PostgreSQL. The full comparison (1 M open, peers, memory) is ``make bench``.

    .venv/bin/python -m bench.advance [--open 100000] [--due 10000] [--reuse]
"""
from __future__ import annotations

import argparse

from bench.common import db_url, log, pg_server_url
from bench.figures import fig_advance, fig_per_case
from bench.generate import Population, build


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--open", type=int, default=100_000)
    ap.add_argument("--due", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--reuse", action="store_true")
    a = ap.parse_args()
    pop = Population(pupils=int(a.open * 1.1), open_cases=a.open, due=a.due, closed=a.open // 8, seed=41)
    backends = ["sqlite"] + (["postgresql"] if pg_server_url() else [])
    for backend in backends:
        url = db_url(backend, f"bench_advance_{a.open}")
        log(f"generating {pop.label()} on {backend}")
        build(url, pop, reuse=a.reuse)
        label = f"{a.open:,} open / {a.due:,} due"
        fig_advance(url, label, a.batch_size)
        fig_per_case(url, label, a.batch_size)


if __name__ == "__main__":
    main()
