"""Every Baoxue deployment, its schedules (Asia/Shanghai), parameters and concurrency limit.

One list, :data:`DEPLOYMENTS`, used three ways:

- ``baoxue serve`` and production (``deploy/production/register.sh`` = ``python -m
  deploy.deployments register``): :func:`register` creates the process work pool
  ``baoxue-process`` and registers every deployment in it, its code at this checkout (:data:`ROOT`,
  whatever the current directory), with the site's schedules (``deploy.schedules``); workers
  (``prefect worker start --pool baoxue-process``) run each flow run as a subprocess;
- ``deploy/prefect.yaml`` declares the same deployments for ``prefect deploy --all``
  (tests/deploy/test_deploy.py checks that the two agree);
- the demo replays the same cron schedules with a simulated clock (:func:`ticks`).

Heartbeats: Prefect's flow heartbeat (PREFECT_FLOWS_HEARTBEAT_FREQUENCY, default 180 s) lets the
server mark a run crashed when its worker host dies; it costs ~1 s at the end of each sync run
(the heartbeat thread is joined). Served and production runs keep it — a few dozen sweeps a day
lose nothing — and the in-process demo and tests switch it off (:func:`no_heartbeat`).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Iterator

from deploy.specs import (  # noqa: F401 - the list and its names, used by callers through this module
    DEPLOYMENTS, ROOT, TIMEZONE, WORK_POOL, WORK_POOL_CONCURRENCY, ZONE, Spec, spec,
)


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
