"""The pure build time of a list export (issue 18: ``/stuck.xlsx?kind=case`` holds up to 5 000 rows):
``documents.xlsx.list_sheet`` over ``--rows`` rows shaped like the overdue list's (9 columns: labels,
a case reference, a masked name, a school, dates, hours), no database, no web request.

    .venv/bin/python -m bench.xlsx_build --rows 5000 --repeat 5

Prints one JSON line: the median build time in ms, the worst, and the file's size.
"""
from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime

from .common import emit


def rows(n: int) -> list[list]:
    return [["案件", f"案件{100000 + i}", "赵*远", f"城关镇第{i % 40 + 1}小学", "电话联系", "家访并填写家访记录",
             f"教师{i % 300}", f"2026-11-{i % 28 + 1:02d} 17:00", 24 * (i % 90) + 5] for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    from documents.xlsx import list_sheet
    from store.reporting.work_queues import STUCK_HEADERS

    data = rows(a.rows)
    times, size = [], 0
    for _ in range(a.repeat):
        t = time.perf_counter()
        size = len(list_sheet("逾期督办（案件）", "某县", STUCK_HEADERS, data, as_of=datetime(2026, 12, 2, 9), note="共 5000 行。"))
        times.append((time.perf_counter() - t) * 1000)
    emit(f"xlsx list_sheet build ({a.rows} rows)", round(statistics.median(times), 1), "ms", worst_ms=round(max(times), 1),
         bytes=size, rows=a.rows, at=datetime.now().isoformat(timespec="seconds"))


if __name__ == "__main__":
    main()
