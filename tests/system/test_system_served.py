"""The served product fires its timers by itself (issue 13): ``baoxue serve`` started as a user
starts it, from a directory that is not the checkout, on a small county whose cases are due at the
real current time. Nothing is triggered by hand: Prefect's scheduler creates the runs, the worker
on the work pool runs them, and the effect is in Baoxue's database and archive.

Only the schedules file (a product feature: ``--schedules``) and Prefect's own loop settings are
changed, so that the sweep falls due within a minute instead of at the next hour.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from deploy.deployments import WORK_POOL
from deploy.local import base_env, free_port, port_free, start, wait_healthy
from tests.system_support import (
    ROOT, SCHEDULES, Api, Children, archived_document_ids, build_due_county, check_the_schedules_fire, clean_env,
    online_workers, wait_for, web_get,
)

BIN = Path(sys.executable).parent
# ~3 minutes on the 2-core machine (most of it waiting for the minute's tick and the two runs'
# subprocesses): slow, and so also part of `make test`.
pytestmark = pytest.mark.slow


def test_served_product_schedules_every_deployment_and_its_worker_fires_a_due_sweep_by_itself(tmp_path):
    county = build_due_county(f"sqlite:///{tmp_path / 'baoxue.db'}")
    assert county.case_ids, "the county has due cases"
    (tmp_path / "schedules.toml").write_text(SCHEDULES, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"  # the user's current directory: not the checkout, not the database's
    elsewhere.mkdir()
    prefect_port, web_port = free_port(), free_port()
    since = datetime.now(timezone.utc)
    proc = subprocess.Popen(
        [str(BIN / "baoxue"), "serve", "--db", "../baoxue.db", "--schedules", "../schedules.toml",
         "--prefect-port", str(prefect_port), "--web-port", str(web_port)],
        cwd=elsewhere, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    api = Api(f"http://127.0.0.1:{prefect_port}/api")
    children = Children()
    children.procs.append(proc)
    try:
        wait_healthy(api.url + "/health", proc, timeout=300)
        check_the_schedules_fire(api, county, since, workers=1, server_log=tmp_path / "prefect/logs/prefect-server.log")
        assert online_workers(api)[0]["name"].startswith("baoxue-local")  # the one serve started
        children.look()

        # The sweep's documents are rendered by the worker beside the database and open in the web app.
        doc_ids = wait_for("the sweep's documents rendered", lambda: archived_document_ids(county.db_url, county.case_ids),
                           timeout=240, every=2)
        status, body = web_get(f"http://127.0.0.1:{web_port}", f"/api/documents/{doc_ids[0]}?fmt=pdf", county.login)
        assert status == 200 and body.startswith(b"%PDF"), (status, body[:200])
        assert any((tmp_path / "archive").rglob("*.pdf"))
        assert not (elsewhere / "out").exists()
        children.look()
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert "all stopped" in out
    assert not children.leaked()
    assert port_free(prefect_port) and port_free(web_port)


def test_production_layout_two_workers_fire_the_scheduled_sweeps_and_each_move_happens_once(tmp_path):
    """PostgreSQL for both databases, one ``prefect server``, the pool and deployments registered by
    deploy/production/register.sh, TWO workers from worker.sh; sweeps every minute by the site's
    schedules file: two scheduled sweeps complete and each case moved once."""
    from tests.conftest import _PgDatabases, _pg_server_url

    pg = _PgDatabases(_pg_server_url())
    suffix = os.environ.get("PYTEST_XDIST_WORKER", "main")
    baoxue_url, prefect_url = pg.create(f"baoxue_sys_{suffix}"), pg.create(f"prefect_sys_{suffix}")
    children = Children()
    try:
        county = build_due_county(baoxue_url)
        (tmp_path / "schedules.toml").write_text(SCHEDULES, encoding="utf-8")
        port = free_port()
        auth = f"baoxue:{secrets.token_hex(16)}"  # the production posture: Prefect's API behind its auth string
        api = Api(f"http://127.0.0.1:{port}/api", auth=auth)
        env = base_env(tmp_path / "prefect", api.url, **{
            **clean_env(), "BAOXUE_DATABASE_URL": baoxue_url, "BAOXUE_ARCHIVE_DIR": str(tmp_path / "archive"),
            "BAOXUE_SCHEDULES_FILE": str(tmp_path / "schedules.toml"),
            "BAOXUE_PRODUCTION": "1", "BAOXUE_SECRET_KEY": secrets.token_hex(32),
            "PREFECT_SERVER_API_AUTH_STRING": auth, "PREFECT_API_AUTH_STRING": auth,
            "PREFECT_API_DATABASE_CONNECTION_URL": prefect_url.replace("+psycopg", "+asyncpg")})
        (tmp_path / "prefect").mkdir()
        since = datetime.now(timezone.utc)
        server = children.add(start([str(ROOT / "deploy/production/prefect-server.sh"), str(port)], env,
                                    tmp_path / "server.log"))
        wait_healthy(api.url + "/health", server, timeout=300, log=tmp_path / "server.log")
        register = subprocess.run([str(ROOT / "deploy/production/register.sh"), "4"], env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=300)
        assert register.returncode == 0, register.stdout + register.stderr
        for n in (1, 2):
            children.add(start([str(ROOT / "deploy/production/worker.sh"), f"worker-{n}"], env, tmp_path / f"worker-{n}.log"))
        assert api(f"/work_pools/{WORK_POOL}")["concurrency_limit"] == 4

        check_the_schedules_fire(api, county, since, workers=2, sweeps=2, server_log=tmp_path / "server.log")
        assert {w["name"] for w in online_workers(api)} == {"worker-1", "worker-2"}
        children.look()
    finally:
        children.stop()
        pg.drop(f"baoxue_sys_{suffix}")
        pg.drop(f"prefect_sys_{suffix}")
        pg.close()
    assert not children.leaked()
