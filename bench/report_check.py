"""Dump the monthly report's figures of every scope, to compare two versions of the read model
byte for byte: ``python -m bench.report_check URL OUT.json [--levels county,township,school]``.

Several (period, as of) pairs: the bench's month at its moment, the same month read mid-month (the
cases changed since are read from their history) and the month before."""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from datetime import datetime

from store.db import make_engine, session_factory, transaction
from store.reporting.reports import month_period, report_figures_many, scopes

from .generate import AS_OF

MOMENTS = [(month_period(2026, 11), AS_OF), (month_period(2026, 11), datetime(2026, 11, 10, 12, 0)),
           (month_period(2026, 10), AS_OF)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("out")
    ap.add_argument("--levels", default="county,township,school")
    ap.add_argument("--moments", default="0,1,2", help="which of MOMENTS (indexes), e.g. 0 on a big population")
    a = ap.parse_args()
    factory = session_factory(make_engine(a.url))
    dump = {}
    for period, as_of in [MOMENTS[int(i)] for i in a.moments.split(",")]:
        with transaction(factory) as s:
            every = [sc for level in a.levels.split(",") for sc in scopes(s, level)]
            t = time.perf_counter()
            figures = report_figures_many(s, every, period, as_of, 0.006)
            print(f"{period.label} as of {as_of}: {len(every)} scopes in {time.perf_counter() - t:.2f} s")
        dump[f"{period.label}@{as_of.isoformat()}"] = figures
    text = json.dumps(dump, ensure_ascii=False, sort_keys=True, default=str)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(text)
    print("sha256", hashlib.sha256(text.encode()).hexdigest())


if __name__ == "__main__":
    main()
