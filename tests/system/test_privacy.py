"""Privacy and audit: no full pupil name, guardian name, 身份证号 or phone number leaves the store
through logs, Prefect (flow-run parameters and names, task runs, state messages, logs, artifacts,
events) or the case history; passwords are stored hashed; every change names its actor and reason.

The scan follows a reduced run of the same flows the demo runs (morning checks for a week, the
hourly sweep, reminders, staff actions, document rendering, the monthly report, the spot check)
under the session's Prefect harness, then reads everything back through the Prefect client and
the database. Pupils and guardians get names made of characters the generator never uses, so a
hit is a leak and not a coincidence (two-character names are common substrings of other text).

Also here: object-level access the route × role probe of tests/web/test_scoping.py does not cover
(an id of one case's object put under another case's path; filters naming another school).
"""
from __future__ import annotations

import json
import logging
import re
import time
from datetime import date, datetime, timedelta, timezone
from itertools import product

import pytest
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from sqlalchemy import inspect as sa_inspect, select, text

from store.access.accounts import create_user, issue_token, start_session
from store.cases.context import CaseContext
from store.db import transaction
from store.models import Case, CaseEvent, Guardian, Pupil
from tests.engine_helpers import THREE_HELPERS, setup_store

DAYS = [date(2026, 11, 16) + timedelta(days=i) for i in range(4)]  # Monday to Thursday
# characters demo/synthetic.py never draws, so a hit is ours
RARE_SURNAMES, RARE_GIVEN = "禤蒯郗佘訾厍亓", "珏彧翀禛昀琰煜玥珝沄"


def private_strings(session) -> dict[str, str]:
    """Give every pupil and guardian a rare name; return {needle: what it is} of every private value."""
    given = ["".join(p) for p in product(RARE_GIVEN, repeat=2)]
    needles: dict[str, str] = {}
    pupils = session.scalars(select(Pupil).order_by(Pupil.id)).all()
    for i, p in enumerate(pupils):
        surname = RARE_SURNAMES[i % len(RARE_SURNAMES)]
        p.name = surname + (given[i][0] if i % 4 == 0 else given[i])  # every fourth a two-character name
        needles[p.name] = f"pupil {p.id} name"
        if p.id_number:
            needles[p.id_number] = f"pupil {p.id} ID number"
        for j, g in enumerate(p.guardians):
            g.name = surname + given[(i * 3 + j + 37) % len(given)]
            needles[g.name] = f"guardian of pupil {p.id}"
            if g.phone:
                needles[g.phone] = f"phone of a guardian of pupil {p.id}"
    session.flush()
    assert sum(1 for what in needles.values() if what.endswith("ID number")) == len(pupils)
    return needles


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is still text we keep
            self.lines.append(f"{record.msg!r} {record.args!r}")


def readable(value) -> str:
    """All text inside ``value`` with JSON decoded, however deeply nested: Prefect keeps a table
    artifact as a JSON string (non-ASCII as \\uXXXX escapes), sometimes encoded twice."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        return " ".join(readable(k) + " " + readable(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return " ".join(readable(v) for v in value)
    if isinstance(value, str):
        if value.strip()[:1] in ('[', '{', '"'):
            try:
                decoded = json.loads(value)
            except ValueError:
                return value
            return value + " " + readable(decoded)
        return value
    return "" if value is None else str(value)


def hits(texts: dict[str, str], needles: dict[str, str]) -> list[str]:
    return [f"{where}: {what} ({needle})" for where, body in texts.items()
            for needle, what in needles.items() if needle in body]


# -- the run -----------------------------------------------------------------------------------------
def run_the_flows(factory, code: str, pupils: list[str]) -> None:
    from flows.advance_cases import advance_cases
    from flows.duty_reminders import duty_reminders
    from flows.monthly_report import monthly_report
    from flows.morning_check import morning_check
    from flows.quarterly_spot_check import quarterly_spot_check
    from flows.render_documents import render_documents
    from store.cases.actions import act
    from tasks.intake import MarkRow, MorningCheckSubmission

    absent, sick = pupils[:4], pupils[4]
    for n, day in enumerate(DAYS):
        away = absent if n < 2 else absent[1:]  # the first pupil is back on Wednesday
        marks = [MarkRow(student_no=p, status="缺勤", reason="family") for p in away]
        marks += [MarkRow(student_no=sick, status="病假"), MarkRow(student_no="NOT-OURS-1", status="缺勤")]
        morning_check(MorningCheckSubmission(day=day, school_code=code, source="api", submitted_by="privacy-test",
                                             submitted_at=datetime.combine(day, datetime.min.time()).replace(hour=8),
                                             marks=marks).signed())
        if n == 0:  # a county export naming a school that does not exist: the run fails, saying which
            with pytest.raises(Exception):
                morning_check(MorningCheckSubmission(day=day, source="sis", marks=[
                    MarkRow(student_no=absent[0], status="缺勤", school_code="NO-SUCH-SCHOOL")]))
        advance_cases(as_of=datetime.combine(day, datetime.min.time()).replace(hour=18), render=False)
        duty_reminders(as_of=datetime.combine(day, datetime.min.time()).replace(hour=18, minute=5))
        if n == 1:  # the head teacher phones, the office names the 三帮一 helpers
            with transaction(factory) as s:
                ctx = CaseContext(s)
                case_id = s.scalar(select(Case.id).join(Pupil, Pupil.id == Case.pupil_id)
                                   .where(Pupil.student_no == absent[1]))
                at = datetime.combine(day, datetime.min.time()).replace(hour=10)
                act(s, ctx, case_id, "assign_helpers", actor="user:school", at=at, now=at, note="三帮一",
                    payload={"helpers": THREE_HELPERS})
    render_documents(as_of=datetime(2026, 11, 19, 19, 0), batch_size=6, max_batches=1)
    monthly_report(level="school", as_of=datetime(2026, 11, 23, 16, 0))
    quarterly_spot_check(as_of=datetime(2026, 11, 20, 10, 0), seed=42)


CANARY = "金丝雀测试名-110105201001010013"  # what a careless log line would look like (name and ID)


@flow(name="privacy_canary")
def canary_flow(note: str) -> None:
    """The control: a leak on every channel the scan reads, so a blind channel fails the test."""
    get_run_logger().info("leak %s", CANARY)
    logging.getLogger("baoxue.canary").warning("leak %s", CANARY)
    create_markdown_artifact(key="privacy-canary", markdown=f"leak {CANARY}")
    create_table_artifact(key="privacy-canary-table", table=[{"学生": CANARY}])
    emit_event(event="baoxue.privacy.canary", resource={"prefect.resource.id": "baoxue.canary"}, payload={"leak": CANARY})


def prefect_texts(since: datetime) -> tuple[dict[str, str], dict[str, int]]:
    """Everything Prefect keeps of the runs started after ``since``, as {where: text}."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterStartTime, LogFilter,
        LogFilterFlowRunId, TaskRunFilter, TaskRunFilterFlowRunId,
    )
    from prefect.events.filters import EventFilter, EventOccurredFilter
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=30)
    texts: dict[str, str] = {}
    n = {"flow_runs": 0, "task_runs": 0, "log_lines": 0, "artifacts": 0, "events": 0}

    def pages(read, **kw):
        offset = 0
        while True:
            page = read(**kw, limit=200, offset=offset)
            yield from page
            if len(page) < 200:
                return
            offset += 200

    with get_client(sync_client=True) as client:
        runs = list(pages(client.read_flow_runs,
                          flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since))))
        ids = [r.id for r in runs]
        for r in runs:
            n["flow_runs"] += 1
            texts[f"flow run {r.name}"] = readable(
                {"name": r.name, "parameters": r.parameters, "state": r.state.message if r.state else None,
                 "data": repr(r.state.data) if r.state else None, "tags": r.tags})
        for t in pages(client.read_task_runs, task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=ids))):
            n["task_runs"] += 1
            texts[f"task run {t.name}"] = readable(
                {"name": t.name, "inputs": t.task_inputs, "state": t.state.message if t.state else None,
                 "data": repr(t.state.data) if t.state else None})
        for log in pages(client.read_logs, log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids))):
            n["log_lines"] += 1
            texts[f"Prefect log {log.id}"] = log.message
        for a in pages(client.read_artifacts, artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))):
            n["artifacts"] += 1
            texts[f"artifact {a.key or a.id}"] = readable({"data": a.data, "description": a.description})
        # the server stores events in batches: wait until the control's event (sent last) is there
        from prefect.events.filters import EventNameFilter
        deadline = time.monotonic() + 60
        while not client.read_events(filter=EventFilter(
                occurred=EventOccurredFilter(since=since, until=datetime.now(timezone.utc) + timedelta(minutes=1)),
                event=EventNameFilter(name=["baoxue.privacy.canary"])), limit=1).events:
            assert time.monotonic() < deadline, "the Prefect server did not store the control event within 60 s"
            time.sleep(0.5)
        page = client.read_events(filter=EventFilter(occurred=EventOccurredFilter(
            since=since, until=datetime.now(timezone.utc) + timedelta(minutes=1))), limit=50)
        while page is not None:
            for e in page.events:
                n["events"] += 1
                texts[f"event {e.event} {e.id}"] = readable(e)
            page = client.read_events_page(page.next_page) if page.next_page else None
    return texts, n


def store_texts(session) -> tuple[dict[str, str], int]:
    """Case history (reason, payload), outgoing messages and accountability evidence."""
    from store.models.notifications import AccountabilityEntry, Notification

    texts = {}
    rows = session.scalars(select(CaseEvent)).all()
    for e in rows:
        texts[f"case_events {e.id} ({e.event})"] = e.reason + " " + json.dumps(e.payload, ensure_ascii=False)
    for note in session.scalars(select(Notification)):
        texts[f"notification {note.key}"] = f"{note.subject} {note.body}"
    for entry in session.scalars(select(AccountabilityEntry)):
        texts[f"accountability {entry.key}"] = json.dumps(entry.detail, ensure_ascii=False, default=str)
    return texts, len(rows)


@pytest.mark.slow
def test_a_run_of_the_flows_leaks_no_name_id_number_or_phone(fresh_db, prefect_harness, capsys):
    from deploy.deployments import no_heartbeat
    from tasks.runtime import using

    with transaction(fresh_db) as s:
        code, pupils = setup_store(s, pupils_per_class=3, grades=(3, 7))
        needles = private_strings(s)
    collect = Collect()
    collect.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(), logging.getLogger("prefect")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(collect)
    logging.getLogger().setLevel(logging.INFO)
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    try:
        with no_heartbeat(), using(fresh_db):
            run_the_flows(fresh_db, code, pupils)
            canary_flow("control")
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(collect)
            lg.setLevel(level)
    texts, counted = prefect_texts(since)
    out = capsys.readouterr()
    texts |= {f"python log line {i}": line for i, line in enumerate(collect.lines)}
    texts |= {"stdout": out.out, "stderr": out.err}
    with transaction(fresh_db) as s:
        db_texts, event_rows = store_texts(s)
        opened = s.scalar(select(text("count(*)")).select_from(Case.__table__))
    texts |= db_texts
    print(f"privacy scan: {len(needles)} private values × {len(texts)} texts; {len(collect.lines)} python log lines, "
          f"{event_rows} case_events rows, prefect {counted}")
    assert hits(texts, needles) == []
    found = {where.split(" ")[0] + " " + where.split(" ")[1] for where, body in texts.items() if CANARY in body}
    assert {"Prefect log", "artifact privacy-canary", "artifact privacy-canary-table", "event baoxue.privacy.canary",
            "python log"} <= found, found
    # the scan saw a real run: runs, their logs, artifacts, events and a case history
    assert opened == 5 and event_rows >= 12  # four absent, and the sick note never approved (store.cases.leave)
    assert counted["flow_runs"] >= 15 and counted["task_runs"] >= 30 and counted["artifacts"] >= 10
    assert counted["log_lines"] >= 10 and counted["events"] >= 5 and len(collect.lines) >= 10


# -- audit ------------------------------------------------------------------------------------------
def test_every_change_in_the_history_names_its_actor_and_reason(factory):
    """Opened, escalated, acted on, returned, excused: no case_events row without who and why; every
    document, document file, report filing, spot check and policy migration names its actor."""
    from store.cases.actions import act
    from tests.engine_helpers import morning, sweep

    with transaction(factory) as s:
        code, pupils = setup_store(s, pupils_per_class=3)
    for n, day in enumerate(DAYS[:3]):
        if n < 2:
            morning(factory, code, day, pupils[:3] + ([pupils[3]] if n == 0 else []))
        else:  # the first still away, the second on sick leave, the third back
            morning(factory, code, day, [pupils[0]], statuses={pupils[1]: "病假"})
            from store.cases.leave import decide
            from store.models.leave import LeaveRequest
            with transaction(factory) as s:  # the academic office approves the note: the case is excused
                for r in s.scalars(select(LeaveRequest)):
                    decide(s, CaseContext(s), r.id, approve=True, actor="user:school（教务处）",
                           now=datetime.combine(day, datetime.min.time().replace(hour=10)))
        sweep(factory, day, datetime.min.time().replace(hour=18))
    with transaction(factory) as s:
        case_id = s.scalar(select(Case.id).join(Pupil, Pupil.id == Case.pupil_id).where(Pupil.student_no == pupils[0]))
        at = datetime(2026, 11, 18, 19, 0)
        act(s, CaseContext(s), case_id, "record_home_visit", actor="user:teacher", at=at, now=at)
    with factory() as s:
        rows = s.execute(select(CaseEvent.id, CaseEvent.event, CaseEvent.actor, CaseEvent.reason)).all()
        assert {r.event for r in rows} >= {"open", "escalate", "record_home_visit", "mark_returned", "excuse"}
        assert [r for r in rows if not (r.actor or "").strip() or not (r.reason or "").strip()] == []
        tables = set(sa_inspect(s.connection()).get_table_names())
        for table in ("documents", "document_files", "report_filings", "spot_checks", "policy_migrations"):
            if table in tables:
                blank = s.execute(text(f"SELECT count(*) FROM {table} WHERE actor IS NULL OR trim(actor) = ''")).scalar()
                assert blank == 0, table


# -- passwords ---------------------------------------------------------------------------------------
def test_passwords_and_tokens_are_stored_only_as_hashes(session):
    import tests.web_support  # noqa: F401 - cheap argon2 parameters for tests, the same algorithm

    plain, now = "Mima-明文-2026!", datetime(2026, 11, 16, 8, 0)
    setup_store(session, pupils_per_class=1)
    user = create_user(session, username="clerk", password=plain, role="county", now=now)
    token = issue_token(session, user, name="t", now=now)
    cookie, _ = start_session(session, user, now=now)
    session.flush()
    assert user.password_hash.startswith("$argon2id$")
    dump = "\n".join(" ".join(str(v) for v in row) for table in ("users", "api_tokens", "login_sessions")
                     for row in session.execute(text(f"SELECT * FROM {table}")))
    assert "clerk" in dump  # the rows were read
    assert plain not in dump and token not in dump and cookie not in dump


# -- object-level access beyond tests/web/test_scoping.py ------------------------------------------------
from tests.web.test_scoping import ROUTES, VISIBLE, as_user, leaks, text_of, world  # noqa: E402,F401 - the shared world

ID_ROUTES = sorted((m, p) for (m, p), kind in ROUTES.items() if kind in ("case", "attachment", "document") and m == "GET")


def test_a_hidden_object_answers_exactly_like_one_that_does_not_exist(world):
    """No existence oracle: a case, attachment or document id outside the reader's scope gets the same
    status and body as an id nobody has, on every GET route with an id, for every account."""
    client, probes = world["client"], 0
    for username, visible in VISIBLE.items():
        for method, path in ID_ROUTES:
            for key in "ABCD":
                if key in visible:
                    continue
                url = (path.replace("{case_id}", str(world["cases"][key])).replace("{attachment_id}", str(world["photos"][key]))
                       .replace("{document_id}", str(world["docs"][key])).replace("{fmt}", "pdf"))
                ghost = (path.replace("{case_id}", "987654").replace("{attachment_id}", "987654")
                         .replace("{document_id}", "987654").replace("{fmt}", "pdf"))
                hidden = client.get(url, **as_user(world, username, path))
                nobody = client.get(ghost, **as_user(world, username, path))
                probes += 1
                assert hidden.status_code == nobody.status_code, (username, url, hidden.status_code, nobody.status_code)
                assert hidden.status_code in (403, 404), (username, url)
                digits = lambda r: re.sub(r"\d+", "#", text_of(r))  # noqa: E731 - ids differ, nothing else may
                assert digits(hidden) == digits(nobody), (username, url)
    assert probes >= 150


def test_a_payload_cannot_name_an_attachment_of_another_case(world):
    """A photo in a payload is an attachment id of *that* case: naming another case's attachment
    (even one the writer may read) is refused with 422 and nothing is recorded."""
    from tests.web.test_scoping import bearer, case_versions

    client, county = world["client"], world["county"]
    before = case_versions(world)
    for username, own, other in (("school", "A", "B"), ("school", "A", "D"), ("teacher", "A", "C")):
        r = client.post(f"/api/cases/{world['cases'][own]}/actions", headers=bearer(county, username),
                        json={"event": "record_home_visit",
                              "payload": {"photos": [{"attachment_id": world["photos"][other], "caption": "别人的照片"}]}})
        assert r.status_code == 422, (username, own, other, r.text[:200])
        assert "不是本案件上传的附件" in r.json()["message"]
    assert case_versions(world) == before


@pytest.mark.parametrize("username", list(VISIBLE))
def test_a_filter_naming_another_school_or_state_reads_nothing_outside_scope(world, username):
    client = world["client"]
    hidden = "".join(k for k in "ABCD" if k not in VISIBLE[username])
    allowed = {world["cases"][k] for k in VISIBLE[username]}
    for code in world["schools"]:
        for query in (f"?school_code={code}&open_only=false", f"?school_code={code}&stuck=true",
                      f"?school_code={code}&state=visited&open_only=false"):
            r = client.get("/api/cases" + query, **as_user(world, username, "/api/cases"))
            assert r.status_code in (200, 403), (username, query)
            if r.status_code == 200:
                assert {c["id"] for c in r.json()} <= allowed, (username, query)
            assert not leaks(world, text_of(r), hidden), (username, query)
        for path in (f"/cases?all=1&school={code}", f"/stuck?school={code}&sort=school"):
            r = client.get(path, **as_user(world, username, path))
            assert not leaks(world, text_of(r), hidden), (username, path)


def test_event_payloads_are_part_of_the_privacy_scan_of_what_the_county_reads(world):
    """The county (a masked reader) reads every case's detail, history, page and document preview:
    no pupil or guardian name, phone or ID number appears, even where staff typed them into an
    action's payload and reason (store.access.masking, issue 14 row 12)."""
    from documents.archive import render_for_case
    from tests.web.test_scoping import bearer

    client, county, factory = world["client"], world["county"], world["factory"]
    with factory() as s:
        needles = private_strings(s)
        s.commit()
        people = {}
        for key, case_id in world["cases"].items():
            pupil = s.get(Pupil, s.get(Case, case_id).pupil_id)
            g = pupil.guardians[0]
            people[key] = (pupil.name, g.name, g.phone or "18300001111", pupil.id_number)
    writer = {"A": "teacher", "B": "school", "C": "school_other", "D": "school_far"}
    for key, (pupil, guardian, phone, id_number) in people.items():
        r = client.post(f"/api/cases/{world['cases'][key]}/actions", headers=bearer(county, writer[key]), json={
            "event": "record_phone_call", "note": f"与{guardian}通话",
            "payload": {"contact": f"{guardian}（母亲）", "phone": phone,
                        "result": f"{pupil}（{id_number}）在家，{guardian}说明天送来"}})
        assert r.status_code == 200, r.text
    import os

    os.environ["BAOXUE_ARCHIVE_DIR"] = str(world["app"].state.settings.archive_dir)
    try:
        with factory() as s:
            docs = [render_for_case(s, case_id, kind, actor="test", fmt="pdf").document_id
                    for case_id in world["cases"].values() for kind in ("phone_record", "absence_register")]
            s.commit()
    finally:
        del os.environ["BAOXUE_ARCHIVE_DIR"]
    texts = {}
    for key, case_id in world["cases"].items():
        for path in (f"/api/cases/{case_id}", f"/api/cases/{case_id}/history", f"/cases/{case_id}"):
            r = client.get(path, **as_user(world, "county", path))
            assert r.status_code == 200, path
            texts[f"county {path}"] = text_of(r)
    for doc_id in docs:
        r = client.get(f"/documents/{doc_id}.html", **as_user(world, "county", "/documents"))
        assert r.status_code == 200
        texts[f"county preview of document {doc_id}"] = r.text
    assert hits(texts, needles) == []
    # the readers who work the case still read what was typed
    r = client.get(f"/api/cases/{world['cases']['A']}/history", **as_user(world, "teacher", "/api"))
    assert r.json()[-1]["payload"]["contact"] == f"{people['A'][1]}（母亲）"
