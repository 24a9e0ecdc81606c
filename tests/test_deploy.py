"""Every deployment loads with its schedule, and prefect.yaml says the same as deploy/deployments.py."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import yaml

from deploy.deployments import DEPLOYMENTS, TIMEZONE, WORK_POOL, load_flow, runner_deployments, spec, ticks

ROOT = Path(__file__).resolve().parent.parent


def test_every_deployment_loads_with_its_cron_schedules_in_asia_shanghai():
    built = {d.name: d for d in runner_deployments()}
    assert set(built) == {s.name for s in DEPLOYMENTS}
    for s in DEPLOYMENTS:
        d = built[s.name]
        assert d.flow_name == s.flow_name
        crons = [(sch.schedule.cron, sch.schedule.timezone) for sch in d.schedules or []]
        assert crons == [(c, TIMEZONE) for c in s.crons]
        assert (d.parameters or {}) == s.parameters
        assert d.concurrency_limit == s.concurrency_limit
        assert (ROOT / s.entrypoint.split(":")[0]).exists()
        assert callable(load_flow(s))


def test_prefect_yaml_declares_the_same_deployments_for_the_process_pool():
    doc = yaml.safe_load((ROOT / "deploy" / "prefect.yaml").read_text(encoding="utf-8"))
    declared = {d["name"]: d for d in doc["deployments"]}
    assert set(declared) == {s.name for s in DEPLOYMENTS}
    for s in DEPLOYMENTS:
        d = declared[s.name]
        assert d["entrypoint"] == s.entrypoint
        assert d["work_pool"]["name"] == WORK_POOL
        assert [(x["cron"], x["timezone"]) for x in d.get("schedules", [])] == [(c, TIMEZONE) for c in s.crons]
        assert d.get("parameters", {}) == s.parameters
        assert d.get("concurrency_limit") == s.concurrency_limit


def test_the_sweeps_fire_after_the_morning_check_and_hourly_in_the_school_day():
    day = [(t, s.name) for t, s in ticks(datetime(2026, 11, 23), datetime(2026, 11, 24))]
    sweeps = [t.strftime("%H:%M") for t, name in day if name == "advance-cases"]
    assert "09:30" in sweeps and sweeps[0] == "07:00" and sweeps[-1] == "18:00" and len(sweeps) == 13
    assert (datetime(2026, 11, 23, 16, 0), "monthly-report-school") in day
    month_end = [t for t, s in ticks(datetime(2026, 11, 1), datetime(2026, 12, 1)) if s.name == "monthly-report-county"]
    assert month_end == [datetime(2026, 11, 30, 17, 0)]
    assert spec("morning-check").crons == ()  # triggered by submissions, never scheduled


def test_the_orchestration_cli_exposes_demo_and_serve():
    from web.orchestration_cli import app

    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert {"demo", "serve"} <= names
