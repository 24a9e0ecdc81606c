"""Drive the two-worker try-out: start runs through the deployments, wait, check who ran them."""
from __future__ import annotations

import re
import sys
import time
from collections import Counter
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from sqlalchemy import func, select

from deploy.deployments import spec, trigger_morning_check
from store.db import make_engine, session_factory, transaction
from store.models import Case, Pupil, School

work = Path(sys.argv[1])
factory = session_factory(make_engine())
with transaction(factory) as s:
    schools = list(s.scalars(select(School.code).order_by(School.code)))
    absent = {code: [n for n, in s.execute(select(Pupil.student_no).join(School).where(School.code == code)
                                         .order_by(Pupil.id).limit(3))] for code in schools}

runs = []
for i, code in enumerate(schools):  # one morning-check run per school, as the web page would start them
    runs.append(trigger_morning_check({"day": "2026-11-16", "school_code": code, "source": "web",
                                       "submitted_by": "try-two-workers", "submitted_at": "2026-11-16T08:0%d:00" % i,
                                       "marks": [{"student_no": n, "status": "缺勤"} for n in absent[code]]}).id)
t0 = time.monotonic()


def wait(ids, timeout=300):
    with get_client(sync_client=True) as c:
        states = {}
        while time.monotonic() - t0 < timeout:
            states = {i: c.read_flow_run(i).state for i in ids}
            if all(st is not None and st.is_final() for st in states.values()):
                return states
            time.sleep(1)
    raise SystemExit(f"runs not finished after {timeout} s: {[(str(i), s.name) for i, s in states.items()]}")


states = wait(runs)
runs.append(run_deployment(spec("advance-cases").full_name, parameters={"as_of": "2026-11-16T09:30:00", "render": False},
                           timeout=0, as_subflow=False).id)
states = wait(runs)
for _ in range(4):  # render runs: the deployment's concurrency limit (2) spreads them over the workers
    runs.append(run_deployment(spec("render-documents").full_name, parameters={"as_of": "2026-11-16T09:45:00"},
                               timeout=0, as_subflow=False).id)
states = wait(runs, timeout=600)

taken = Counter()
for n in (1, 2):
    log = (work / f"worker-{n}.log").read_text(errors="replace")
    taken[f"worker-{n}"] = len(set(re.findall(r"Flow run '([^']+)' submitted to infrastructure", log)))
with transaction(factory) as s:
    cases = dict(s.execute(select(Case.state, func.count()).group_by(Case.state)).all())
bad = {str(i): st.name for i, st in states.items() if not st.is_completed()}
print(f"[2w] {len(runs)} runs: {Counter(st.name for st in states.values())}; taken by {dict(taken)}; cases {cases}; "
      f"{time.monotonic() - t0:.0f} s")
if bad or min(taken.values()) == 0 or cases.get("family_contacted", 0) != 3 * len(schools):
    raise SystemExit(f"[2w] FAILED: not completed {bad}, per worker {dict(taken)}, cases {cases}")
print("[2w] OK: one PostgreSQL, one Prefect server, two workers")
