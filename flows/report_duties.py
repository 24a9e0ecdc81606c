"""报表报送任务 (issue 17 items 1–2): every morning, the reports due within the next days are drafted
from the ledger and their owners get a duty (school 填表人/负责人 by the policy's 23rd, township by
the 25th, county at month end); on the policy's ``class_weekday`` every head teacher gets the
weekly class count (周查表, seed 003 §三.3 每周一统计); a report or count not in by its due time is
marked overdue, in the duty ledger with every other kind."""
from __future__ import annotations

from datetime import datetime

from prefect import flow

from tasks.people_reports import open_report_duties
from tasks.publish import publish_markdown
from tasks.runtime import resolve_as_of, run_name


@flow(name="report_duties", log_prints=False, flow_run_name=run_name("report-duties"))
def report_duties(as_of: datetime | None = None) -> dict:
    as_of = resolve_as_of(as_of)
    out = open_report_duties(as_of)
    if out["drafted"] or out["weekly_count_duties"] or out["overdue"]:
        drafted = "，".join(f"{k} {v}" for k, v in out["drafted"].items()) or "—"
        publish_markdown(f"report-duties-{as_of:%Y%m%d}",
                         f"# 报表报送任务 {as_of:%Y-%m-%d}\n\n- 起草月报 drafted: {drafted}\n"
                         f"- 周查任务 weekly counts: {out['weekly_count_duties']}\n- 逾期 overdue: {out['overdue']}\n",
                         description="drafts, weekly counts and overdue report duties")
    return out
