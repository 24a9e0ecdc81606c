"""月报 and term reports (DOMAIN.md §4; seed 003: schools to the township by the 23rd, township
totals to the county by the 25th; seed 002: month-end report to the bureau, term-start and
term-end reports).

Each level's run files one report per school / township / the county, with figures read off
the ledger, writes the report files, and shows the figures as a Markdown artifact. A report filed
after its due date is marked late and goes into the accountability record.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from prefect import flow, get_run_logger

from machines.vocabulary import LEVEL_LABELS, REPORT_KIND_LABELS
from tasks.oversight import reconcile_submissions
from tasks.people_reports import open_level_report_duties
from tasks.publish import publish_event, publish_markdown
from tasks.reports import ReportPeriod, file_reports, month_period, render_reports, term_period, term_reports_filed
from tasks.runtime import resolve_as_of

Level = Literal["school", "township", "county"]


def report_markdown(level: str, period: ReportPeriod, filings: list[dict], texts: dict[str, str]) -> str:
    """The run's artifact: the level's filings in one table, then each filing's figures."""
    header = [f"# 控辍保学{REPORT_KIND_LABELS[period.kind]} {period.label} — {LEVEL_LABELS[level]}", "",
              "| 单位 scope | 截止 due | 状态 | 辍学 dropouts | 辍学率 rate |", "|---|---|---|---:|---:|"]
    header += [f"| {f['scope']} | {f['due_on']} | {'**逾期 late**' if f['late'] else '按时'} | {f['dropouts']} | "
               f"{f['dropout_rate'] * 100:.3f}% |" for f in filings]
    return "\n".join(header) + "\n\n" + "\n---\n".join(texts.values())


def _report(level: str, period: ReportPeriod, as_of: datetime) -> dict:
    filings = file_reports(level, period, as_of)
    open_level_report_duties(level, period, as_of)  # the people's draft and duty (issue 17 item 1), if not yet open
    texts = render_reports([f["id"] for f in filings])
    late = [f for f in filings if f["late"]]
    publish_markdown(f"{period.kind}-{level}-{period.label}", report_markdown(level, period, filings, texts),
                     description=f"{level} reports for {period.label}: {len(filings)} filed, {len(late)} late")
    for f in filings:
        if f["created"]:
            publish_event("baoxue.report.late" if f["late"] else "baoxue.report.filed", f"baoxue.{level}.{f['code']}",
                          {"period": period.label, "kind": period.kind, "due_on": f["due_on"]})
    out = {"level": level, "period": period.label, "filed": len(filings), "late": len(late),
           "new": sum(f["created"] for f in filings)}
    if period.kind == "monthly":  # seed 001 grounds 8–9: the schools' submitted figures against the ledger
        out["reconciliation"] = reconcile_submissions(period.label, as_of)
    return out


@flow(name="monthly_report", flow_run_name="monthly-report-{level}", log_prints=False)
def monthly_report(level: Level = "school", period: str | None = None, as_of: datetime | None = None) -> dict:
    """File ``level``'s monthly reports for ``period`` (YYYY-MM; default: the month of ``as_of``)."""
    as_of = resolve_as_of(as_of)
    if period:
        year, month = (int(x) for x in period.split("-"))
        p = month_period(year, month)
    else:
        p = month_period(as_of.year, as_of.month)
    if level == "county" and period is None and (as_of + timedelta(days=1)).month == as_of.month:
        get_run_logger().info("county report is due at month end; %s is not the last day", as_of.date())
        return {"level": level, "period": p.label, "filed": 0, "late": 0, "new": 0, "skipped": "not month end"}
    return _report(level, p, as_of)


@flow(name="term_report", log_prints=False)
def term_report(as_of: datetime | None = None) -> dict:
    """On a term's first and last day, every level files its term-start / term-end report."""
    as_of = resolve_as_of(as_of)
    if not term_reports_filed():
        return {"kind": None, "levels": [], "skipped": "term_reports = false"}
    for which in ("term_start", "term_end"):
        p = term_period(as_of.date(), which)
        if p is not None:
            return {"kind": which, "levels": [_report(level, p, as_of) for level in ("school", "township", "county")]}
    return {"kind": None, "levels": []}
