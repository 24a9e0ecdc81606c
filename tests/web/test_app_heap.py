"""The served app settles the collector once it has started (web.app.settle_heap): the objects of the
started process leave the collector's walks and young collections are rarer — checked in a fresh process,
before and after the app's start, since the setting is the process's."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json, sys, tempfile
from fastapi.testclient import TestClient
from store.db import Settings
from web.app import YOUNG_COLLECTION_EVERY, create_app
from web.services import InProcess
d = tempfile.mkdtemp()
app = create_app(Settings(database_url=f"sqlite:///{d}/b.db", archive_dir=d), deployments=InProcess())
before = [gc.get_threshold()[0], gc.get_freeze_count()]
with TestClient(app) as client:
    status = client.get("/login").status_code
    started = [gc.get_threshold()[0], gc.get_freeze_count()]
with TestClient(app) as client:  # a second start settles nothing again
    again = [gc.get_threshold()[0], gc.get_freeze_count()]
print(json.dumps({"before": before, "started": started, "again": again, "status": status, "every": YOUNG_COLLECTION_EVERY}))
"""


def test_the_started_app_freezes_its_heap_once_and_collects_young_objects_less_often():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["status"] == 200
    assert r["before"] == [700, 0]  # CPython's defaults until the app starts
    assert r["started"][0] == r["every"] > 700 and r["started"][1] > 10_000  # the started heap is frozen
    # a second start freezes nothing more (frozen objects freed since only lower the count)
    assert r["again"][0] == r["every"] and r["again"][1] <= r["started"][1]
