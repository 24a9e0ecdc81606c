"""Every deployment loads with its schedule, and prefect.yaml says the same as deploy/deployments.py."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from deploy.deployments import DEPLOYMENTS, TIMEZONE, WORK_POOL, load_flow, pool_deployments, runner_deployments, spec, ticks
from deploy.schedules import ScheduleError, parse

ROOT = Path(__file__).resolve().parents[2]


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
        assert d["description"] == s.description


def test_the_sweeps_fire_after_the_morning_check_and_hourly_in_the_school_day():
    day = [(t, s.name) for t, s in ticks(datetime(2026, 11, 23), datetime(2026, 11, 24))]
    sweeps = [t.strftime("%H:%M") for t, name in day if name == "advance-cases"]
    assert "09:30" in sweeps and sweeps[0] == "07:00" and sweeps[-1] == "18:00" and len(sweeps) == 13
    assert (datetime(2026, 11, 23, 16, 0), "monthly-report-school") in day
    month_end = [t for t, s in ticks(datetime(2026, 11, 1), datetime(2026, 12, 1)) if s.name == "monthly-report-county"]
    assert month_end == [datetime(2026, 11, 30, 17, 0)]
    assert spec("morning-check").crons == ()  # triggered by submissions, never scheduled


def test_the_orchestration_cli_exposes_demo_and_serve():
    from cli.orchestration import app

    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert {"demo", "serve"} <= names


def test_every_scheduled_deployment_names_its_time_zone_in_the_description():
    for s in DEPLOYMENTS:
        assert ("Asia/Shanghai" in s.description) == bool(s.crons), s.name


def test_pool_deployments_load_their_code_from_the_checkout_whatever_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    built = {d.name: d for d in pool_deployments()}
    assert set(built) == {s.name for s in DEPLOYMENTS}
    for s in DEPLOYMENTS:
        d = built[s.name]
        assert d.work_pool_name == WORK_POOL and d.entrypoint == s.entrypoint
        assert d.storage.to_pull_step() == {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
        assert [x.schedule.cron for x in d.schedules or []] == list(s.crons)


def test_a_schedules_file_overrides_a_deployments_crons_or_sets_an_interval():
    overrides = parse('[advance-cases]\ncrons = ["* * * * *"]\n[render-documents]\ninterval_seconds = 900\n'
                      '[quarterly-spot-check]\ncrons = []\n')
    built = {d.name: d for d in pool_deployments(overrides)}
    assert [(x.schedule.cron, x.schedule.timezone) for x in built["advance-cases"].schedules] == [("* * * * *", TIMEZONE)]
    assert built["render-documents"].schedules[0].schedule.interval.total_seconds() == 900
    assert not built["quarterly-spot-check"].schedules
    assert [x.schedule.cron for x in built["duty-reminders"].schedules] == list(spec("duty-reminders").crons)


@pytest.mark.parametrize("text, says", [
    ('[advance-cases]\ncrons = ["61 * * * *"]\n', "advance-cases.crons: '61 * * * *' 不是有效的 cron 表达式"),
    ('[advance-case]\ncrons = ["0 9 * * *"]\n', "[advance-case] 不是已知的部署"),
    ('[advance-cases]\ncrons = ["0 9 * * *"]\ninterval_seconds = 60\n', "crons 或 interval_seconds 之一"),
    ('[advance-cases]\ninterval_seconds = 1\n', "advance-cases.interval_seconds"),
    ('[advance-cases]\ncron = ["0 9 * * *"]\n', "advance-cases.cron"),
    ('[advance-cases\n', "不是有效的 TOML"),
])
def test_a_bad_schedules_file_is_refused_naming_the_deployment_and_the_reason(text, says):
    with pytest.raises(ScheduleError) as err:
        parse(text, source="site.toml")
    assert str(err.value).startswith("site.toml: ") and says in str(err.value)


def test_baoxue_deployments_checks_a_schedules_file_with_one_clear_line(tmp_path):
    bad = tmp_path / "site.toml"
    bad.write_text('[advance-cases]\ncrons = ["0 25 * * *"]\n', encoding="utf-8")
    baoxue = str(Path(sys.executable).parent / "baoxue")
    out = subprocess.run([baoxue, "deployments", "--schedules", str(bad)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr
    assert "'0 25 * * *' 不是有效的 cron 表达式" in out.stdout
    good = tmp_path / "good.toml"
    good.write_text('[advance-cases]\ncrons = ["*/5 * * * *"]\n', encoding="utf-8")
    out = subprocess.run([baoxue, "deployments", "--json", "--schedules", str(good)], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    assert '"*/5 * * * *"' in out.stdout


def test_the_archive_defaults_to_the_folder_beside_a_sqlite_database_whatever_the_current_directory(tmp_path, monkeypatch):
    from store.db import Settings

    monkeypatch.delenv("BAOXUE_ARCHIVE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Settings(database_url="sqlite:////srv/baoxue/county.db").archive_dir == Path("/srv/baoxue/archive")
    assert Settings(database_url="sqlite:///out/baoxue.db").archive_dir == tmp_path / "out" / "archive"
    assert Settings(database_url="sqlite:////srv/x.db", archive_dir="docs").archive_dir == tmp_path / "docs"
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", "/data/archive")
    assert Settings(database_url="sqlite:////srv/x.db").archive_dir == Path("/data/archive")


def test_a_demo_run_carries_its_simulated_school_day_in_a_tag_the_ui_filters_on(prefect_harness, fresh_db):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    from demo.scenario import DeploymentRuns
    from deploy.deployments import no_heartbeat
    from store.db import transaction
    from tasks.runtime import SimulatedClock, using
    from tests.engine_helpers import setup_store

    with transaction(fresh_db) as s:
        setup_store(s, pupils_per_class=2, grades=(3,))
    clock = SimulatedClock(datetime(2026, 11, 17, 9, 30))
    with no_heartbeat(), using(fresh_db):
        DeploymentRuns(clock)(spec("advance-cases"), as_of=clock.now(), render=False)
    with get_client(sync_client=True) as client:
        tagged = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["sim-day:2026-11-17"])))
    assert tagged and {r.name for r in tagged} == {"sweep-2026-11-17T09:30"}
    assert all("baoxue" in r.tags for r in tagged)
