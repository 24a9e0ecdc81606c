"""`baoxue serve` end to end: the Prefect UI shows the deployments, their schedules (with the time
zone in the description), the runs and their artifacts, and the work pool with its ONLINE worker
(headless Chromium screenshots); Ctrl-C stops every child.

One test, ~1–2 minutes: it starts the real command (Prefect server with its UI, the web/API, the work
pool baoxue-process with a worker) from a directory that is not the checkout, runs one sweep against
it and looks at the UI pages. tests/system/test_system_served.py waits for the scheduler's own runs.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import date, datetime
from pathlib import Path

import pytest

from deploy.deployments import DEPLOYMENTS
from deploy.local import free_port, port_free, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "_artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium")]


def _post(url: str, body: dict) -> list | dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - 127.0.0.1
        return json.loads(r.read())


def _build_db(path: Path) -> None:
    from store.bootstrap import init_store
    from store.db import make_engine, session_factory, transaction
    from store.cases.intake import MarkIn, record_morning_check
    from store.cases.context import CaseContext
    from store.models import School
    from demo.synthetic import Size, generate_county, pupils_of
    from sqlalchemy import select

    engine = make_engine(f"sqlite:///{path}")
    init_store(engine, now=datetime(2026, 11, 1))
    factory = session_factory(engine)
    with transaction(factory) as s:
        generate_county(s, seed=5, size=Size(townships=1, schools_per_township=1, pupils_per_class=4))
    with transaction(factory) as s:
        code = s.scalar(select(School.code))
        marks = [MarkIn(p.student_no, "缺勤") for p in pupils_of(s, code)[:3]]
        record_morning_check(s, CaseContext(s), school_code=code, day=date(2026, 11, 16), marks=marks, source="cli",
                             submitted_by="test", now=datetime(2026, 11, 16, 8))
    engine.dispose()


def test_serve_shows_deployments_schedules_runs_and_artifacts_and_stops_cleanly(tmp_path):
    from playwright.sync_api import sync_playwright

    db = tmp_path / "baoxue.db"
    _build_db(db)
    prefect_port, web_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", BAOXUE_ARCHIVE_DIR=str(tmp_path / "archive"))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "baoxue"), "serve", "--db", str(db),
                             "--prefect-port", str(prefect_port), "--web-port", str(web_port)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    api = f"http://127.0.0.1:{prefect_port}/api"
    ui = f"http://127.0.0.1:{prefect_port}"
    try:
        wait_healthy(api + "/health", proc, timeout=300)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # the worker registers every deployment
            names = {d["name"] for d in _post(api + "/deployments/filter", {"limit": 50})}
            if names >= {s.name for s in DEPLOYMENTS}:
                break
            time.sleep(1)
        assert names >= {s.name for s in DEPLOYMENTS}

        # A sweep run with its artifacts, against the served Prefect (in-process, as_of given).
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from deploy.deployments import no_heartbeat
        from flows.advance_cases import advance_cases
        from store.db import make_engine, session_factory
        from tasks.runtime import using

        engine = make_engine(f"sqlite:///{db}")
        with temporary_settings(updates={PREFECT_API_URL: api}), no_heartbeat(), using(session_factory(engine)):
            assert advance_cases(as_of=datetime(2026, 11, 16, 9, 30), render=False)["escalated"] == 3
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker
            APILogWorker.drain_all(timeout=10)
            EventsWorker.drain_all(timeout=10)
        engine.dispose()

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        seen = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS[1:], headless=True)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            for name, path, expect in (("deployments", "/deployments", "advance-cases"),
                                       ("runs", "/runs", "sweep-2026-11-16"),
                                       ("artifacts", "/artifacts", "advance-cases"),
                                       ("work-pools", "/work-pools", "baoxue-process"),
                                       ("workers", "/work-pools/work-pool/baoxue-process?tab=Workers", "baoxue-local")):
                page.goto(ui + path, wait_until="networkidle", timeout=60_000)
                try:
                    page.wait_for_function("t => document.body.innerText.includes(t)", arg=expect, timeout=30_000)
                finally:
                    page.screenshot(path=str(ARTIFACTS / f"prefect-ui-{name}.png"), full_page=True)
                seen[name] = page.inner_text("body")
                for _ in range(5):  # a list longer than the UI's page (10 deployments): the pager's next button
                    nxt = page.locator(".p-pager__buttons button").last
                    if not nxt.count() or not nxt.is_enabled():
                        break
                    before = page.inner_text("body")
                    nxt.click()
                    page.wait_for_function("t => document.body.innerText !== t", arg=before, timeout=10_000)
                    seen[name] += "\n" + page.inner_text("body")
            dep = _post(api + "/deployments/filter", {"deployments": {"name": {"any_": ["advance-cases"]}}})[0]
            page.goto(f"{ui}/deployments/deployment/{dep['id']}", wait_until="networkidle", timeout=60_000)
            page.wait_for_function("t => document.body.innerText.includes(t)", arg="09:30", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "prefect-ui-advance-cases.png"), full_page=True)
            seen["schedule"] = page.inner_text("body")
            page.goto(f"{ui}/deployments/deployment/{dep['id']}?tab=Description", wait_until="networkidle", timeout=60_000)
            try:  # the cards say "At 09:30 AM every day": the description names the zone
                page.wait_for_function("t => document.body.innerText.includes(t)", arg="Asia/Shanghai", timeout=30_000)
            finally:
                page.screenshot(path=str(ARTIFACTS / "prefect-ui-advance-cases-description.png"), full_page=True)
            seen["description"] = page.inner_text("body")
            # a deployment the pager skipped (the list re-sorts itself while it polls): its own page in the UI
            for s in DEPLOYMENTS:
                if s.name not in seen["deployments"]:
                    one = _post(api + "/deployments/filter", {"deployments": {"name": {"any_": [s.name]}}})[0]
                    page.goto(f"{ui}/deployments/deployment/{one['id']}", wait_until="networkidle", timeout=60_000)
                    page.wait_for_function("t => document.body.innerText.includes(t)", arg=s.name, timeout=30_000)
                    seen["deployments"] += "\n" + page.inner_text("body")
            browser.close()
        for s in DEPLOYMENTS:
            assert s.name in seen["deployments"]
        assert "09:30" in seen["schedule"] and "北京时间 Asia/Shanghai" in seen["description"]
        assert "sweep-2026-11-16" in seen["runs"] and "advance-cases" in seen["artifacts"]
        assert "Create a work pool" not in seen["work-pools"]
        assert "baoxue-local" in seen["workers"] and "Online" in seen["workers"]
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "all stopped" in out
    assert port_free(prefect_port) and port_free(web_port)
