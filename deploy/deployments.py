"""Every Baoxue deployment, its schedules (Asia/Shanghai), parameters and concurrency limit.

One list, :data:`DEPLOYMENTS`, used three ways:

- ``baoxue serve`` and production (``deploy/production/register.sh`` = ``python -m
  deploy.deployments register``): :func:`register` creates the process work pool
  ``baoxue-process`` and registers every deployment in it, its code at this checkout (:data:`ROOT`,
  whatever the current directory), with the site's schedules (``deploy.schedules``); workers
  (``prefect worker start --pool baoxue-process``) run each flow run as a subprocess;
- ``deploy/prefect.yaml`` declares the same deployments for ``prefect deploy --all``
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
from pathlib import Path
from typing import Any, Iterator

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
    Spec("census-import", "flows.census:census_import", concurrency_limit=2,
         description="排查: one run per imported village register (opens 失学 cases, issues 入学通知书); triggered."),
)


def spec(name: str) -> Spec:
    return next(s for s in DEPLOYMENTS if s.name == name)


def load_flow(s: Spec):
    import importlib

    module, func = s.flow.split(":")
    return getattr(importlib.import_module(module), func)


def runner_deployments(names: list[str] | None = None, overrides: dict | None = None) -> list:
    """The deployments (or those named) as Prefect RunnerDeployments of the imported flows, with no
    work pool (the demo runs them in its own process)."""
    from deploy.schedules import schedules_for

    return [load_flow(s).to_deployment(
        name=s.name, schedules=schedules_for(s, overrides or {}) or None, parameters=s.parameters or None,
        concurrency_limit=s.concurrency_limit, description=s.description, tags=list(s.tags))
        for s in DEPLOYMENTS if not names or s.name in names]


def pool_deployments(overrides: dict | None = None, source: Path = ROOT) -> list:
    """Every deployment for the process work pool, its code at ``source`` (the checkout this package
    is installed from): each run's pull step sets the working directory there, so neither the
    registering process's nor the worker's current directory matters."""
    from prefect import Flow

    from deploy.schedules import schedules_for

    flows: dict[str, Any] = {}  # one load per entrypoint (four deployments share monthly_report.py)
    out = []
    for s in DEPLOYMENTS:
        if s.entrypoint not in flows:
            flows[s.entrypoint] = Flow.from_source(source=str(source), entrypoint=s.entrypoint)
        out.append(flows[s.entrypoint].to_deployment(
            name=s.name, work_pool_name=WORK_POOL, schedules=schedules_for(s, overrides or {}) or None,
            parameters=s.parameters or None, concurrency_limit=s.concurrency_limit, description=s.description,
            tags=list(s.tags)))
    return out


def ensure_work_pool(concurrency_limit: int = WORK_POOL_CONCURRENCY) -> None:
    """The process work pool ``baoxue-process`` exists, with Prefect's default process job template."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(WORK_POOL)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=WORK_POOL, type=ProcessWorker.type, concurrency_limit=concurrency_limit,
                description="保学: every Baoxue deployment; each flow run is a subprocess of a worker's .venv",
                base_job_template=ProcessWorker.get_default_base_job_template()))
        else:
            client.update_work_pool(WORK_POOL, WorkPoolUpdate(concurrency_limit=concurrency_limit))


def register(overrides: dict | None = None, *, concurrency_limit: int = WORK_POOL_CONCURRENCY,
             source: Path = ROOT) -> list:
    """Create the work pool and register (create or update) every deployment in it, against the
    Prefect API of the environment. Idempotent; returns the deployment ids."""
    from prefect.deployments.runner import deploy

    ensure_work_pool(concurrency_limit)
    return deploy(*pool_deployments(overrides, source), work_pool_name=WORK_POOL, build=False, push=False,
                  print_next_steps_message=False, ignore_warnings=True)


def trigger_morning_check(submission: dict, *, wait: bool = False, timeout: float | None = None):
    """Start a ``morning-check`` run with ``submission``, signed with this host's secret_key (the
    flow refuses an unsigned one; see tasks.intake.verify_submission)."""
    from prefect.deployments import run_deployment

    from tasks.intake import MorningCheckSubmission

    signed = MorningCheckSubmission(**submission).signed().model_dump(mode="json", exclude_none=True)
    return run_deployment(spec("morning-check").full_name, parameters={"submission": signed},
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


if __name__ == "__main__":  # python -m deploy.deployments [register [POOL_CONCURRENCY]]
    if sys.argv[1:2] == ["register"]:  # deploy/production/register.sh; BAOXUE_SCHEDULES_FILE applies
        from deploy.schedules import ScheduleError, load

        try:
            overrides = load()
        except ScheduleError as exc:
            sys.exit(str(exc))
        ids = register(overrides, concurrency_limit=int(sys.argv[2]) if sys.argv[2:] else WORK_POOL_CONCURRENCY)
        print(f"work pool {WORK_POOL}: {len(ids)} deployments registered (code at {ROOT})")
    else:
        for s in DEPLOYMENTS:
            print(f"{s.full_name:55} {' | '.join(s.crons) or '(triggered)'}")
