"""Every Baoxue deployment, its schedules (Asia/Shanghai), parameters and concurrency limit.

One list, :data:`DEPLOYMENTS`, used three ways:

- ``baoxue serve`` / ``python -m deploy.deployments serve``: :func:`serve` runs every deployment
  in one process (Prefect's runner: each run is a subprocess of it) against the Prefect API;
- production: ``deploy/prefect.yaml`` declares the same deployments for the process work pool
  ``baoxue-process`` (``prefect deploy --all``), picked up by N workers on other hosts
  (tests/test_deploy.py checks that the two agree);
- the demo replays the same cron schedules with a simulated clock (:func:`ticks`).

Heartbeats: Prefect's flow heartbeat (PREFECT_FLOWS_HEARTBEAT_FREQUENCY, default 180 s) lets the
server mark a run crashed when its worker host dies; it costs ~1 s at the end of each sync run
(the heartbeat thread is joined). Served and production runs keep it — a few dozen sweeps a day
lose nothing — and the in-process demo and tests switch it off (:func:`no_heartbeat`).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Iterator

from machines.clock import TIMEZONE as CLOCK_ZONE

TIMEZONE = CLOCK_ZONE  # the schedules run on the store's wall clock (machines.clock)
WORK_POOL = "baoxue-process"
WORK_POOL_CONCURRENCY = 8


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


DEPLOYMENTS: tuple[Spec, ...] = (
    Spec("morning-check", "flows.morning_check:morning_check", concurrency_limit=4,
         description="晨检: one run per submission (web, API, CLI, upload, SIS export); triggered, not scheduled."),
    Spec("advance-cases", "flows.advance_cases:advance_cases", crons=("30 9 * * *", "0 7-18 * * *"),
         concurrency_limit=1,
         description="升级计时: escalations after the morning check (09:30) and duty deadlines every hour 07:00–18:00."),
    Spec("render-documents", "flows.render_documents:render_documents", crons=("45 9,12,18 * * *",),
         concurrency_limit=2,
         description="制作文书: renders queued documents; started by advance-cases, with a catch-up schedule."),
    Spec("duty-reminders", "flows.duty_reminders:duty_reminders", crons=("5 7-18 * * *",), concurrency_limit=1,
         description="催办: reminders for duties due soon, overdue notices and accountability entries."),
    Spec("monthly-report-school", "flows.monthly_report:monthly_report", crons=("0 16 23 * *",),
         parameters={"level": "school"}, concurrency_limit=1, description="学校月报, due to the township by the 23rd."),
    Spec("monthly-report-township", "flows.monthly_report:monthly_report", crons=("0 16 25 * *",),
         parameters={"level": "township"}, concurrency_limit=1, description="乡镇汇总月报, due to the county by the 25th."),
    Spec("monthly-report-county", "flows.monthly_report:monthly_report", crons=("0 17 L * *",),
         parameters={"level": "county"}, concurrency_limit=1, description="县月报, at month end."),
    Spec("term-report", "flows.monthly_report:term_report", crons=("0 17 * * *",), concurrency_limit=1,
         description="学期初/学期末报告: files on a term's first and last day, a no-op otherwise."),
    Spec("quarterly-spot-check", "flows.quarterly_spot_check:quarterly_spot_check", crons=("0 10 15 2,5,8,11 *",),
         concurrency_limit=1, description="季查: a sealed random sample of schools and classes, mid-quarter."),
    Spec("census-import", "flows.census:census_import", concurrency_limit=2,
         description="排查: one run per imported village register (opens 失学 cases, issues 入学通知书); triggered."),
)


def spec(name: str) -> Spec:
    return next(s for s in DEPLOYMENTS if s.name == name)


def load_flow(s: Spec):
    import importlib

    module, func = s.flow.split(":")
    return getattr(importlib.import_module(module), func)


def runner_deployments(names: list[str] | None = None) -> list:
    """The deployments (or those named) as Prefect RunnerDeployments (for ``prefect.serve``)."""
    from prefect.schedules import Cron

    out = []
    for s in DEPLOYMENTS:
        if names and s.name not in names:
            continue
        out.append(load_flow(s).to_deployment(
            name=s.name, schedules=[Cron(c, timezone=TIMEZONE) for c in s.crons] or None,
            parameters=s.parameters or None, concurrency_limit=s.concurrency_limit,
            description=s.description, tags=list(s.tags)))
    return out


def serve(names: list[str] | None = None, limit: int | None = None) -> None:
    """Serve every deployment (or those named) from this process until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*runner_deployments(names), limit=limit, print_starting_message=True)


def trigger_morning_check(submission: dict, *, wait: bool = False, timeout: float | None = None):
    """Start a ``morning-check`` run with ``submission`` (for the web page, the API and the CLI)."""
    from prefect.deployments import run_deployment

    return run_deployment(spec("morning-check").full_name, parameters={"submission": submission},
                          timeout=timeout if wait else 0, as_subflow=False)


# -- the schedule as the demo replays it -----------------------------------------------------------
def ticks(start: datetime, end: datetime, names: tuple[str, ...] | None = None) -> list[tuple[datetime, Spec]]:
    """Every scheduled (instant, deployment) in [start, end), in time order, Asia/Shanghai wall time."""
    from prefect._vendor.croniter import croniter

    out = []
    for s in DEPLOYMENTS:
        if names is not None and s.name not in names:
            continue
        for cron in s.crons:
            it = croniter(cron, start - timedelta(seconds=1))
            while (t := it.get_next(datetime)) < end:
                out.append((t, s))
    return sorted(out, key=lambda p: (p[0], DEPLOYMENTS.index(p[1])))


@contextmanager
def no_heartbeat() -> Iterator[None]:
    """Flow runs of this process send no heartbeat (saves ~1 s per sync run; see module doc)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


if __name__ == "__main__":  # python -m deploy.deployments serve
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:] or None)
    else:
        for s in DEPLOYMENTS:
            print(f"{s.full_name:55} {' | '.join(s.crons) or '(triggered)'}")
