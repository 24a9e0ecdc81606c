"""The pure build time of a list export (issue 18: ``/stuck.xlsx?kind=case`` holds up to 5 000 rows):
``documents.xlsx.list_sheet`` over ``--rows`` rows shaped like the overdue list's (9 columns: labels,
a case reference, a masked name, a school, dates, hours), no database, no web request.

    .venv/bin/python -m bench.xlsx_build --rows 5000 --repeat 5

Prints one JSON line: the median build time in ms, the worst, and the file's size.

With ``--db URL`` (a ``bench.generate`` population, read only) it times the 月报表 of the first county
instead: the report's data (``documents.reports.monthly_report``: the figures, the chart's days and the
levels below — a county's schools and classes, counted in the report's own ``ledger_figures_many`` call;
``plan_ms``: listing those units) and the XLSX's build
from that data, with the number of rows of each sheet.
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
    ap.add_argument("--db", default="")
    ap.add_argument("--period", default="2026-11")
    a = ap.parse_args()
    if a.db:
        return monthly(a)
    from documents.xlsx import list_sheet
    from store.reporting.work_queues import STUCK_HEADERS

    data = rows(a.rows)
    times, cpu, size = [], [], 0
    for _ in range(a.repeat):
        t, c = time.perf_counter(), time.process_time()
        size = len(list_sheet("逾期督办（案件）", "某县", STUCK_HEADERS, data, as_of=datetime(2026, 12, 2, 9), note="共 5000 行。"))
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    # cpu_ms: this process's CPU time — on a shared machine the wall time also holds the wait for a core
    emit(f"xlsx list_sheet build ({a.rows} rows)", round(statistics.median(times), 1), "ms", worst_ms=round(max(times), 1),
         cpu_ms=round(statistics.median(cpu), 1),
         bytes=size, rows=a.rows, at=datetime.now().isoformat(timespec="seconds"))


def monthly(a) -> None:
    import io

    from openpyxl import load_workbook
    from sqlalchemy import select

    from documents import reports as dr
    from documents.context import report_context
    from documents.render import render
    from store.db import make_engine, session_factory
    from store.models import Jurisdiction
    from store.reporting import reports as rp

    from .generate import AS_OF

    factory = session_factory(make_engine(a.db))
    with factory() as s:
        code = s.scalar(select(Jurisdiction.code).where(Jurisdiction.level == "county").order_by(Jurisdiction.id).limit(1))
        sc = dr.ScopeArg("county", code)
        t = time.perf_counter()
        report = dr.monthly_report(s, sc, a.period, now=AS_OF)
        data_ms = (time.perf_counter() - t) * 1000
        name, schools = dr._unit(s, sc)
        scope = rp.ReportScope("county", code, name, tuple(x.id for x in schools))
        t = time.perf_counter()
        dr._LevelPlan(s, scope, schools)
        plan_ms = (time.perf_counter() - t) * 1000
    ctx = report_context("monthly_report", report, issued_on=AS_OF.date().isoformat(), actor="bench")
    ctx["doc"].setdefault("trace", "bench")
    times, size = [], 0
    for _ in range(a.repeat):
        t = time.perf_counter()
        body = render(ctx, "xlsx").content
        times.append((time.perf_counter() - t) * 1000)
        size = len(body)
    sheets = {ws.title: ws.max_row for ws in load_workbook(io.BytesIO(body), read_only=True).worksheets}
    emit("月报表 XLSX build (county, all levels)", round(statistics.median(times), 1), "ms", worst_ms=round(max(times), 1),
         bytes=size, sheets=sheets, data_ms=round(data_ms), plan_ms=round(plan_ms), db=a.db.split(":")[0],
         at=datetime.now().isoformat(timespec="seconds"))


if __name__ == "__main__":
    main()
