"""The deployments as data: each one's flow, schedules (Asia/Shanghai), parameters and concurrency
limit. deploy/deployments.py registers and serves them; deploy/schedules.py checks a site's
overrides against them; the demo replays their crons."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machines.clock import TIMEZONE as CLOCK_ZONE

TIMEZONE = CLOCK_ZONE  # the schedules run on the store's wall clock (machines.clock)
WORK_POOL = "baoxue-process"
WORK_POOL_CONCURRENCY = 8
ROOT = Path(__file__).resolve().parent.parent  # the checkout holding flows/ (Baoxue is installed from it)


@dataclass(frozen=True)
class Spec:
    name: str                 # deployment name (flow name/deployment name in Prefect)
    flow: str                 # "module:function"
    crons: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    concurrency_limit: int | None = None
    description: str = ""
    tags: tuple[str, ...] = ("baoxue",)

    @property
    def entrypoint(self) -> str:
        module, func = self.flow.split(":")
        return f"{module.replace('.', '/')}.py:{func}"

    @property
    def flow_name(self) -> str:
        return self.flow.split(":")[1]

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


ZONE = "北京时间 Asia/Shanghai"  # named in each description: the UI's cards show "At 09:30 AM every day", no zone

DEPLOYMENTS: tuple[Spec, ...] = (
    Spec("morning-check", "flows.morning_check:morning_check", concurrency_limit=4,
         description="晨检: one run per submission (web, API, CLI, upload, SIS export); triggered, not scheduled."),
    Spec("advance-cases", "flows.advance_cases:advance_cases", crons=("30 9 * * *", "0 7-18 * * *"),
         concurrency_limit=1,
         description=f"升级计时: 每日 09:30 及 07:00–18:00 每小时（{ZONE}）— escalations after the morning check, "
                     "duty deadlines every hour."),
    Spec("render-documents", "flows.render_documents:render_documents", crons=("45 9,12,18 * * *",),
         concurrency_limit=2,
         description=f"制作文书: 每日 09:45、12:45、18:45（{ZONE}）— renders queued documents; also started by advance-cases."),
    Spec("duty-reminders", "flows.duty_reminders:duty_reminders", crons=("5 7-18 * * *",), concurrency_limit=1,
         description=f"催办: 07:05–18:05 每小时（{ZONE}）— reminders for duties due soon, overdue notices, accountability."),
    Spec("monthly-report-school", "flows.monthly_report:monthly_report", crons=("0 16 23 * *",),
         parameters={"level": "school"}, concurrency_limit=1,
         description=f"学校月报: 每月 23 日 16:00（{ZONE}）, due to the township by the 23rd."),
    Spec("monthly-report-township", "flows.monthly_report:monthly_report", crons=("0 16 25 * *",),
         parameters={"level": "township"}, concurrency_limit=1,
         description=f"乡镇汇总月报: 每月 25 日 16:00（{ZONE}）, due to the county by the 25th."),
    Spec("monthly-report-county", "flows.monthly_report:monthly_report", crons=("0 17 L * *",),
         parameters={"level": "county"}, concurrency_limit=1,
         description=f"县月报: 每月最后一天 17:00（{ZONE}）."),
    Spec("term-report", "flows.monthly_report:term_report", crons=("0 17 * * *",), concurrency_limit=1,
         description=f"学期初/学期末报告: 每日 17:00（{ZONE}）; files on a term's first and last day, a no-op otherwise."),
    Spec("quarterly-spot-check", "flows.quarterly_spot_check:quarterly_spot_check", crons=("0 10 15 2,5,8,11 *",),
         concurrency_limit=1,
         description=f"季查: 2、5、8、11 月 15 日 10:00（{ZONE}）— a sealed random sample of schools and classes."),
    Spec("report-duties", "flows.report_duties:report_duties", crons=("30 7 * * *",), concurrency_limit=1,
         description=f"报表报送任务: 每日 07:30（{ZONE}）— drafts the reports due within days for their owners, "
                     "the weekly class count on the policy's class_weekday, overdue report duties."),
    Spec("census-import", "flows.census:census_import", concurrency_limit=2,
         description="排查: one run per imported village register (opens 失学 cases, issues 入学通知书); triggered."),
)


def spec(name: str) -> Spec:
    return next(s for s in DEPLOYMENTS if s.name == name)
