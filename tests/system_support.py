"""Shared pieces of the system tests (tests/system/test_system_served.py): a small county whose cases are
due at the real current time, the Prefect API as a user's script sees it, the real scheduler's
runs waited for, and a check that no child process outlived the test.

Both layouts use it: ``baoxue serve`` (one machine) and the production layout (PostgreSQL, one
``prefect server``, two ``prefect worker`` processes, deploy/production/*.sh).
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time as dtime
from pathlib import Path
from typing import Any, Callable

from deploy.deployments import DEPLOYMENTS, WORK_POOL

ROOT = Path(__file__).resolve().parent.parent
# Every 60 s instead of hourly: a sweep falls due within the test, fired by Prefect's own scheduler.
SCHEDULES = '[advance-cases]\ncrons = ["* * * * *"]\n'
# Prefect's own settings: the scheduler and the worker poll every few seconds instead of 60 s / 10 s.
FAST_LOOPS = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
    "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "2",
    "PREFECT_WORKER_QUERY_SECONDS": "2",
    "PREFECT_WORKER_HEARTBEAT_SECONDS": "10",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}
ESCALATION_KINDS = ("escalate",)


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any PREFECT_* or BAOXUE_* setting, plus the fast loops."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "BAOXUE_"))}
    env.update(FAST_LOOPS)
    env.update(extra)
    return env


# -- the county ---------------------------------------------------------------------------------------
@dataclass
class DueCounty:
    db_url: str
    absent_day: date          # the school day the pupils were absent (the last one whose check is over)
    case_ids: list[int]       # their open cases, due for the ladder's next step now
    login: tuple[str, str]    # the school office's account (it reads its own documents in full)


def shanghai_now() -> datetime:
    from web.deps import shanghai_now as now

    return now()


def build_due_county(db_url: str, *, absent: int = 3, seed: int = 5) -> DueCounty:
    """A one-school county, ``absent`` pupils absent without excuse on the last school day whose
    morning check is over at the real current time (Asia/Shanghai): their cases are due now."""
    from sqlalchemy import func, select

    from store.access.accounts import seed_demo_accounts
    from store.bootstrap import init_store
    from store.cases.context import CaseContext, effective_day
    from store.db import make_engine, session_factory, transaction
    from store.cases.intake import MarkIn, record_morning_check
    from store.models import Case, School, SchoolDay
    from store.policy_files import PolicyRegistry
    from demo.synthetic import Size, generate_county, pupils_of

    now = shanghai_now()
    engine = make_engine(db_url)
    try:
        init_store(engine, now=now)
        factory = session_factory(engine)
        with transaction(factory) as s:
            generate_county(s, seed=seed, size=Size(townships=1, schools_per_township=1, pupils_per_class=4))
        with transaction(factory) as s:
            school = s.scalars(select(School)).one()
            last_day = effective_day(PolicyRegistry(s).get(school.policy_name), now)
            day = s.scalar(select(func.max(SchoolDay.day)).where(SchoolDay.calendar_key == school.calendar_key,
                                                                 SchoolDay.day <= last_day))
            assert day is not None, f"calendar {school.calendar_key} has no school day before {last_day}"
            marks = [MarkIn(p.student_no, "缺勤") for p in pupils_of(s, school.code)[:absent]]
            record_morning_check(s, CaseContext(s), school_code=school.code, day=day, marks=marks, source="cli",
                                 submitted_by="system-test", now=datetime.combine(day, dtime(8, 0)))
        with transaction(factory) as s:
            case_ids = list(s.scalars(select(Case.id).where(Case.state == "absent").order_by(Case.id)))
            county = next(a for a in seed_demo_accounts(s, now=now, password="system-test-1234")
                          if a.role == "school_staff")
        return DueCounty(db_url, day, case_ids, (county.username, county.password))
    finally:
        engine.dispose()


def case_states(db_url: str, case_ids: list[int]) -> dict[int, str]:
    from sqlalchemy import select

    from store.db import make_engine, session_factory, transaction
    from store.models import Case

    engine = make_engine(db_url)
    try:
        with transaction(session_factory(engine)) as s:
            return dict(s.execute(select(Case.id, Case.state).where(Case.id.in_(case_ids))).all())
    finally:
        engine.dispose()


def transitions(db_url: str, case_ids: list[int]) -> Counter:
    """(case id, from state, to state) → how many history events record that move."""
    from sqlalchemy import select

    from store.db import make_engine, session_factory, transaction
    from store.models import CaseEvent

    engine = make_engine(db_url)
    try:
        with transaction(session_factory(engine)) as s:
            rows = s.execute(select(CaseEvent.case_id, CaseEvent.from_state, CaseEvent.to_state)
                             .where(CaseEvent.case_id.in_(case_ids), CaseEvent.from_state != CaseEvent.to_state)).all()
        return Counter(tuple(r) for r in rows)
    finally:
        engine.dispose()


def archived_document_ids(db_url: str, case_ids: list[int]) -> list[int]:
    from sqlalchemy import select

    from store.db import make_engine, session_factory, transaction
    from store.models.documents import Document

    engine = make_engine(db_url)
    try:
        with transaction(session_factory(engine)) as s:
            return list(s.scalars(select(Document.id).where(Document.case_id.in_(case_ids)).order_by(Document.id)))
    finally:
        engine.dispose()


# -- the Prefect API, as any script sees it -----------------------------------------------------------
class Api:
    def __init__(self, url: str, auth: str | None = None):
        self.url = url.rstrip("/")
        self.auth = auth  # "user:password" of a Prefect server run with PREFECT_SERVER_API_AUTH_STRING

    def __call__(self, path: str, body: dict | None = None, method: str | None = None) -> Any:
        import base64

        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.auth:
            headers["Authorization"] = "Basic " + base64.b64encode(self.auth.encode()).decode()
        req = urllib.request.Request(self.url + path, data=data, method=method or ("GET" if body is None else "POST"),
                                     headers=headers)
        with urllib.request.urlopen(req, timeout=20) as r:  # noqa: S310 - 127.0.0.1
            return json.loads(r.read() or b"null")

    def deployments(self) -> dict[str, dict]:
        return {d["name"]: d for d in self("/deployments/filter", {"limit": 100})}

    def runs(self, deployment_id: str, states: list[str] | None = None, **flow_runs: Any) -> list[dict]:
        filt: dict[str, Any] = {"deployment_id": {"any_": [deployment_id]}, **flow_runs}
        if states:
            filt["state"] = {"type": {"any_": states}}
        return self("/flow_runs/filter", {"flow_runs": filt, "limit": 200, "sort": "EXPECTED_START_TIME_ASC"})

    def workers(self, pool: str = WORK_POOL) -> list[dict]:
        return self(f"/work_pools/{pool}/workers/filter", {})


def wait_for(what: str, probe: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` (and the last value)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"waited {timeout:.0f} s for {what}; last seen: {last!r}"[:4000])


def scheduled_deployments() -> set[str]:
    return {s.name for s in DEPLOYMENTS if s.crons}


def upcoming_by_deployment(api: Api) -> dict[str, int]:
    """How many SCHEDULED runs each deployment has (the UI's Upcoming tab)."""
    return {name: len(api.runs(d["id"], ["SCHEDULED"])) for name, d in api.deployments().items()}


class Pending(dict):
    """Counts that are not there yet: falsy, so :func:`wait_for` goes on and reports them."""

    def __bool__(self) -> bool:
        return False


def every_scheduled_deployment_has_upcoming_runs(api: Api) -> dict[str, int]:
    counts = upcoming_by_deployment(api)
    ok = all(counts.get(n, 0) > 0 for n in scheduled_deployments())
    return counts if ok else Pending(counts)


def online_workers(api: Api) -> list[dict]:
    return [w for w in api.workers() if w.get("status") == "ONLINE"]


def completed_scheduled_sweeps(api: Api, since: datetime) -> list[dict]:
    """The COMPLETED advance-cases runs that the scheduler created (auto_scheduled: no hand-made
    trigger) and a worker of the pool ran, started after ``since`` (UTC)."""
    dep = api.deployments()["advance-cases"]
    return [run for run in api.runs(dep["id"], ["COMPLETED"])
            if run.get("auto_scheduled") and run.get("work_queue_name") == "default" and run.get("start_time")
            and datetime.fromisoformat(run["start_time"].replace("Z", "+00:00")) >= since]


def failed_sweeps(api: Api) -> list[dict]:
    dep = api.deployments()["advance-cases"]
    return api.runs(dep["id"], ["FAILED", "CRASHED"])


def check_the_schedules_fire(api: Api, county: DueCounty, since: datetime, *, workers: int, sweeps: int = 1,
                             server_log: Path | None = None) -> list[dict]:
    """:func:`_check_the_schedules_fire`; a failure also quotes the Prefect server's last error."""
    try:
        return _check_the_schedules_fire(api, county, since, workers=workers, sweeps=sweeps)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nPrefect server's last error: {last_error(server_log)}") from None


def last_error(log: Path | None) -> str:
    """The last line of the Prefect server's log that names an exception (what it was failing on)."""
    lines = log.read_text(errors="replace").splitlines() if log and log.exists() else []
    errors = [ln for ln in lines if "Error:" in ln or "Exception:" in ln]
    return errors[-1].strip()[:500] if errors else "(none)"


def _check_the_schedules_fire(api: Api, county: DueCounty, since: datetime, *, workers: int, sweeps: int = 1) -> list[dict]:
    """What both layouts promise, seen through the Prefect API and the Baoxue database:

    every deployment is in the process pool and every scheduled one has upcoming runs; ``workers``
    workers are ONLINE on it; with no hand-made trigger, ``sweeps`` scheduled advance-cases runs are
    created by the scheduler and COMPLETED by a worker; the due cases moved up the ladder, each move
    written exactly once. Returns the completed sweeps."""
    deployments = wait_for("every deployment registered", lambda: (d := api.deployments()) and
                           {s.name for s in DEPLOYMENTS} <= set(d) and d, timeout=180)
    assert {d["work_pool_name"] for d in deployments.values()} == {WORK_POOL}
    for d in deployments.values():
        assert ("Asia/Shanghai" in d["description"]) == bool(d["schedules"]), d["name"]
    wait_for("upcoming runs of every scheduled deployment", lambda: every_scheduled_deployment_has_upcoming_runs(api),
             timeout=120)
    assert api(f"/work_pools/{WORK_POOL}")["type"] == "process"
    wait_for(f"{workers} ONLINE workers on the pool", lambda: len(online_workers(api)) >= workers, timeout=120)

    runs = wait_for(f"{sweeps} scheduled advance-cases runs COMPLETED by a worker",
                    lambda: len(done := completed_scheduled_sweeps(api, since)) >= sweeps and done or _no_failed(api),
                    timeout=180 + 60 * sweeps, every=2)
    states = case_states(county.db_url, county.case_ids)
    assert set(states.values()) == {"family_contacted"}, states
    moves = transitions(county.db_url, county.case_ids)
    assert set(moves) == {(c, "absent", "family_contacted") for c in county.case_ids}, moves
    assert set(moves.values()) == {1}, moves
    return runs


def _no_failed(api: Api) -> None:
    """While waiting: a sweep that failed or crashed ends the wait with its state message."""
    failed = failed_sweeps(api)
    assert not failed, [(r["name"], r["state"]["message"]) for r in failed]
    return None


# -- the web app ---------------------------------------------------------------------------------------
def web_get(base: str, path: str, login: tuple[str, str]) -> tuple[int, bytes]:
    """GET ``path`` on the Baoxue web app with an API token of ``login``: (status, body)."""
    req = urllib.request.Request(base + "/api/auth/token", method="POST", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"username": login[0], "password": login[1]}).encode())
    with urllib.request.urlopen(req, timeout=20) as r:  # noqa: S310 - 127.0.0.1
        token = json.loads(r.read())["token"]
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - 127.0.0.1
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- processes -------------------------------------------------------------------------------------
def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


class Children:
    """The processes a test started (each in its own session), stopped at the end; :meth:`leaked`
    names any descendant seen during the test that is still alive afterwards."""

    def __init__(self) -> None:
        self.procs: list = []
        self.seen: set[int] = set()

    def add(self, proc):
        self.procs.append(proc)
        return proc

    def look(self) -> None:
        for p in self.procs:
            self.seen |= descendants(p.pid) | {p.pid}

    def stop(self) -> None:
        from deploy.local import stop

        self.look()
        for p in reversed(self.procs):
            stop(p, timeout=30)

    def leaked(self) -> list[str]:
        return [cmdline(p) for p in alive(self.seen)]


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (zombies count as gone)."""
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"
