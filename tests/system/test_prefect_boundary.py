"""Prefect is not a way around the web app's rules (issue 14, row 3), on SQLite and PostgreSQL.

Before: with no credentials, one ``run_deployment("morning_check/morning-check", …)`` carrying an
empty complete check for every school closed every open case of the county, recorded as done by
a township official. Now the flow records only a submission the web app signed, from an active
account that may act on those schools and pupils, for a day within policy; and the production
Prefect server demands its basic-auth string.
"""
from __future__ import annotations

import base64
import os
import signal
import subprocess
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from machines.states import OPEN_STATES
from store.models.accounts import User
from store.cases.context import CaseContext
from store.db import transaction
from store.cases.intake import MarkIn, record_morning_check
from store.models import Case, Pupil, School, Submission
from store.access.submission_check import LATE_WINDOW_DAYS, refusal
from tasks.intake import MorningCheckSubmission, SubmissionRejected
from tasks.runtime import using
from tests.web_support import MONDAY, Clock, build_county, in_process_app, pupils_of_class

ROOT = Path(__file__).resolve().parents[2]
MON = MONDAY.date()
TUE = date(2026, 11, 17)


@pytest.fixture
def county(fresh_db, prefect_harness):
    """A county with accounts, two open cases in each school (opened Monday), tasks bound to it."""
    from deploy.deployments import no_heartbeat

    with transaction(fresh_db) as s:
        c = build_county(s, sessions=False)
        ctx = CaseContext(s)
        for school in s.scalars(select(School).order_by(School.id)):
            nos = list(s.scalars(select(Pupil.student_no).where(Pupil.school_id == school.id).order_by(Pupil.id)))
            record_morning_check(s, ctx, school_code=school.code, day=MON, source="test", submitted_by="setup",
                                 now=MONDAY, marks=[MarkIn(nos[0], "缺勤"), MarkIn(nos[1], "缺勤")])
        klass = pupils_of_class(s, c.class_ids[0])
        c.tokens["class_pupils"] = [p.student_no for p in klass]  # (a spare slot of the dataclass)
    with using(fresh_db), no_heartbeat():
        yield fresh_db, c


def open_cases(factory) -> int:
    with transaction(factory) as s:
        return s.scalar(select(func.count()).select_from(Case).where(Case.state.in_([st.value for st in OPEN_STATES])))


def submissions(factory) -> int:
    with transaction(factory) as s:
        return s.scalar(select(func.count()).select_from(Submission))


def check(code: str | None, *, by: str, marks=(), day: date = TUE, at: datetime | None = None, complete=True,
          schools=()) -> MorningCheckSubmission:
    return MorningCheckSubmission(day=day, school_code=code, schools=list(schools), source="web", submitted_by=by,
                                  submitted_at=at or datetime.combine(day, datetime.min.time()).replace(hour=8),
                                  complete=complete, marks=[{"student_no": n, "status": st} for n, st in marks])


def test_an_unsigned_run_closing_the_countys_cases_is_refused_and_records_nothing(county):
    from flows.morning_check import morning_check

    factory, c = county
    before, subs = open_cases(factory), submissions(factory)
    assert before == 2 * len(c.school_codes)
    attack = check(None, by="user:township", schools=c.school_codes)  # every school, nobody absent
    with pytest.raises(SubmissionRejected, match="签名"):
        morning_check(attack)
    forged = attack.model_copy(update={"signature": "0" * 64})
    with pytest.raises(SubmissionRejected):
        morning_check(forged)
    assert (open_cases(factory), submissions(factory)) == (before, subs)


def test_a_forged_submitter_or_school_breaks_the_web_apps_signature(county, tmp_path):
    """The web app signs what it accepted; changing who, which school or what is refused."""
    from flows.morning_check import morning_check

    factory, c = county
    started = []

    class Recorder:
        def start(self, name, parameters, *, idempotency_key=None):
            started.append(parameters["submission"])
            from web.services import RunStarted

            return RunStarted("run", None)

    app = in_process_app(factory, tmp_path / "archive", Clock(datetime(2026, 11, 17, 8, 5)))
    app.state.deployments = Recorder()
    with TestClient(app) as client:
        r = client.post("/api/morning-checks", headers={"Authorization": f"Bearer {c.tokens['school']}"},
                        json={"day": "2026-11-17", "marks": []})
        assert r.status_code == 409 and r.json()["preview"]["closing"] == 2 and not started  # closes 2 cases: confirm
        r = client.post("/api/morning-checks", headers={"Authorization": f"Bearer {c.tokens['school']}"},
                        json={"day": "2026-11-17", "marks": [], "confirm": True})
        assert r.status_code == 202, r.text
    sent = started[0]
    assert sent["submitted_by"] == "user:school" and sent["signature"]
    before = open_cases(factory)
    for change in ({"submitted_by": "user:township"}, {"school_code": c.school_codes[2]},
                   {"day": "2026-11-16"}, {"complete": False}):
        with pytest.raises(SubmissionRejected, match="签名"):
            morning_check(MorningCheckSubmission(**(sent | change)))
    assert open_cases(factory) == before
    out = morning_check(MorningCheckSubmission(**sent))  # as sent: recorded, the home school's two cases close
    assert out["returned"] == 2 and open_cases(factory) == before - 2


def test_a_signed_submission_is_still_checked_against_the_account_and_the_calendar(county):
    """Even with the key (a server-side bug, a stale page): account, scope, pupils and times."""
    from flows.morning_check import morning_check

    factory, c = county
    home, far = c.school_codes[0], c.school_codes[2]
    mine = c.tokens["class_pupils"]
    with transaction(factory) as s:
        other_class = [p.student_no for p in pupils_of_class(s, c.class_ids[1])]
        s.execute(update(User).where(User.username == "school_other").values(active=False))
    refused = {
        "no such account": check(home, by="user:ghost"),
        "deactivated": check(c.school_codes[1], by="user:school_other"),
        "a township does not submit": check(home, by="user:township"),
        "another school": check(far, by="user:school"),
        "a county file naming another school": check(None, by="user:school", schools=[home, far]),
        "a head teacher's whole-school check": check(home, by="user:teacher"),
        "a pupil of another class": check(home, by="user:teacher", complete=False, marks=[(other_class[0], "缺勤")]),
        "a day in the future": check(home, by="user:school", day=TUE, at=datetime(2026, 11, 16, 8)),
        "sent from the future": check(home, by="user:school", at=datetime.now() + timedelta(days=2)),
        "older than the late window": check(home, by="user:school", day=MON,
                                            at=datetime(2026, 11, 16, 8) + timedelta(days=LATE_WINDOW_DAYS + 1)),
    }
    before, subs = open_cases(factory), submissions(factory)
    with transaction(factory) as s:
        for what, sub in refused.items():
            signed = sub.signed()
            assert refusal(s, signed.content(), signed.signature, now=datetime(2026, 11, 17, 9)) is not None, what
    for what in ("another school", "a head teacher's whole-school check"):  # and through the flow itself
        with pytest.raises(SubmissionRejected):
            morning_check(refused[what].signed())
    assert (open_cases(factory), submissions(factory)) == (before, subs)
    # the head teacher's own class, signed: recorded
    out = morning_check(check(home, by="user:teacher", complete=False, marks=[(mine[2], "缺勤")]).signed())
    assert out["opened"] == 1


# -- the Prefect server's own authentication ------------------------------------------------------------
def test_the_production_prefect_server_refuses_unauthenticated_calls(tmp_path):
    from deploy.local import free_port, wait_healthy

    script = str(ROOT / "deploy/production/prefect-server.sh")
    base = {"PATH": os.environ["PATH"], "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}"}
    # exposed beyond loopback without the auth string: the script will not start it
    r = subprocess.run([script, str(free_port())], env=base | {"PREFECT_SERVER_API_HOST": "0.0.0.0"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "PREFECT_SERVER_API_AUTH_STRING" in r.stderr

    port, secret = free_port(), "baoxue:" + "s3cr3t" * 4
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen([script, str(port)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                  env=base | {"PREFECT_SERVER_API_HOST": "127.0.0.1",
                                              "PREFECT_SERVER_API_AUTH_STRING": secret})
    try:
        api = f"http://127.0.0.1:{port}/api"
        wait_healthy(f"{api}/health", server, timeout=180, log=log)
        basic = lambda s: {"Authorization": "Basic " + base64.b64encode(s.encode()).decode()}  # noqa: E731
        run = {"name": "morning_check/morning-check", "parameters": {}}
        assert httpx.post(f"{api}/flow_runs/filter", json={}).status_code == 401
        assert httpx.post(f"{api}/deployments/filter", json={}, headers=basic("baoxue:guess")).status_code == 401
        assert httpx.post(f"{api}/flow_runs/", json=run).status_code == 401
        assert httpx.post(f"{api}/flow_runs/filter", json={}, headers=basic(secret)).status_code == 200
        # Prefect's own client authenticates with PREFECT_API_AUTH_STRING (what env.example sets)
        probe = ("from prefect.client.orchestration import get_client\n"
                 "with get_client(sync_client=True) as c: print(len(c.read_flow_runs()))")
        env = base | {"PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        ok = subprocess.run([str(ROOT / ".venv/bin/python"), "-c", probe], env=env | {"PREFECT_API_AUTH_STRING": secret},
                            capture_output=True, text=True, timeout=120)
        assert ok.returncode == 0 and ok.stdout.strip() == "0", ok.stderr[-2000:]
        no = subprocess.run([str(ROOT / ".venv/bin/python"), "-c", probe], env=env, capture_output=True, text=True,
                            timeout=120)
        assert no.returncode != 0 and "401" in no.stderr
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)


def test_a_census_import_run_must_name_a_recorded_import_by_an_active_office_in_its_time(county, tmp_path,
                                                                                         monkeypatch):
    from flows.census import census_import
    from store.prevention import census
    from store.models.census import CensusCase
    from demo.census_register import village_register
    from tasks.census import ImportRejected

    factory, c = county
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    at = datetime(2026, 11, 17, 10)
    with transaction(factory) as s:
        reg = village_register(s, enrolled=2, unenrolled=2, exempted=0, out_of_age=0)
        imported = census.import_census(s, reg.content, reg.filename, actor="user:township", now=at)
    for import_id, as_of in ((imported.import_id + 1000, at), (imported.import_id, at - timedelta(days=30)),
                             (imported.import_id, datetime.now() + timedelta(days=3))):
        with pytest.raises(ImportRejected):
            census_import(import_id=import_id, as_of=as_of)
    with transaction(factory) as s:
        s.execute(update(User).where(User.username == "township").values(active=False))
    with pytest.raises(ImportRejected, match="停用"):
        census_import(import_id=imported.import_id, as_of=at)
    with transaction(factory) as s:
        assert s.scalar(select(func.count()).select_from(CensusCase)) == 0
        s.execute(update(User).where(User.username == "township").values(active=True))
    assert census_import(import_id=imported.import_id, as_of=at)["opened"] == 2
