"""A user never reads or acts on a pupil outside their scope: every route, every role, both databases.

Four cases sit one step apart: A (the head teacher's class), B (the next class of the same
school), C (the other school of the same township) and D (a school of the other township).
Ten accounts each see exactly their share. Every route of the app is listed in ROUTES with how
to probe it; a route added without an entry fails ``test_every_route_is_probed``.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from store.cases.advance import advance
from store.cases.context import CaseContext
from store.db import Settings
from store.models.documents import Document, DocumentFile
from store.cases.intake import MarkIn, record_morning_check
from store.models import Case, Pupil, School, SchoolClass
from store.models.reports import ReportFiling
from store.reporting.reports import spot_check
from tests.store.test_gate import seed_prevention
from tests.store.test_handoffs import seed_census_world
from tests.web_support import MONDAY, Clock, build_county
from web.app import create_app, routers
from web.deps import SESSION_COOKIE
from web.services import InProcess

TUESDAY_EVENING = datetime(2026, 11, 17, 19, 0)
MARKERS = {"A": "甲测试", "B": "乙测试", "C": "丙测试", "D": "丁测试"}
VISIBLE = {
    "teacher": "A", "teacher_next_class": "B", "teacher_other_school": "C",
    "school": "AB", "school_other": "C", "school_far": "D",
    "township": "ABC", "township_other": "D", "county": "ABCD", "operator": "",
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

# How each route is probed: "case" (path names a case), "attachment", "document", "report", "list"
# (reads a scope-wide list), "act" (changes a case), "school" (writes a school's data), "open"
# (login and token routes, no pupil data), "template" (a file of the reader's pupils).
ROUTES = {
    ("GET", "/login"): "open", ("POST", "/login"): "open", ("POST", "/logout"): "open",
    ("POST", "/api/auth/token"): "open", ("DELETE", "/api/auth/token"): "open", ("GET", "/favicon.ico"): "open",
    ("GET", "/"): "open",
    # one's own account and the administrators' page: no pupil data (tests/web/test_accounts_product.py)
    ("GET", "/account"): "open", ("POST", "/account/password"): "open", ("POST", "/account/tokens/{token_id}/revoke"): "open",
    ("GET", "/admin/users"): "open", ("POST", "/admin/users/{user_id}/active"): "open",
    ("POST", "/admin/users/{user_id}/password"): "open",
    ("POST", "/admin/users/from-staff"): "open", ("POST", "/admin/users/{user_id}/reassign"): "open",
    ("GET", "/api/auth/tokens"): "open", ("DELETE", "/api/auth/tokens/{token_id}"): "open",
    ("POST", "/api/auth/password"): "open",
    ("GET", "/api/me"): "list",
    ("POST", "/api/roster"): "school",
    ("POST", "/api/morning-checks"): "school", ("POST", "/api/morning-checks/upload"): "school",
    ("GET", "/api/morning-checks/template"): "template",
    ("GET", "/api/cases"): "list", ("GET", "/api/cases/{case_id}"): "case",
    ("GET", "/api/cases/{case_id}/history"): "case", ("GET", "/api/cases/{case_id}/documents"): "case",
    ("POST", "/api/cases/{case_id}/actions"): "act", ("POST", "/api/cases/{case_id}/visits"): "act",
    ("POST", "/api/cases/{case_id}/attachments"): "act", ("GET", "/api/attachments/{attachment_id}"): "attachment",
    ("GET", "/api/documents/{document_id}"): "document",
    ("GET", "/api/duties"): "list", ("GET", "/api/stuck"): "list", ("GET", "/api/overview"): "list",
    ("GET", "/api/figures/monthly"): "list", ("GET", "/api/reports"): "list",
    ("GET", "/api/reports/{filing_id}/{fmt}"): "report",
    ("GET", "/api/late-reports"): "list", ("GET", "/api/accountability"): "list", ("GET", "/api/spot-checks"): "list",
    ("GET", "/api/runs"): "list",
    ("GET", "/teacher"): "list", ("GET", "/school"): "list", ("GET", "/morning-check"): "list",
    ("GET", "/morning-check/template.{fmt}"): "template",
    ("POST", "/morning-check/upload"): "school", ("POST", "/morning-check/form"): "school",
    ("POST", "/morning-check/confirm"): "school",  # the submitter's own school (web.services.school_for_check)
    ("GET", "/morning-check/result"): "school", ("GET", "/morning-check/status"): "school",  # own submissions only
    ("GET", "/cases"): "list", ("GET", "/cases/{case_id}"): "case", ("POST", "/cases/{case_id}/act"): "act",
    ("GET", "/attachments/{attachment_id}"): "attachment", ("GET", "/documents/{document_id}.{fmt}"): "document",
    ("GET", "/stuck"): "list", ("GET", "/overview"): "list", ("GET", "/figures"): "list",
    ("GET", "/reports/{filing_id}.{fmt}"): "report", ("GET", "/late"): "list", ("GET", "/spot-checks"): "list",
    ("GET", "/accountability"): "list", ("GET", "/accountability.csv"): "list", ("GET", "/runs"): "list",
    ("GET", "/risk"): "list", ("GET", "/risk/outcomes"): "list", ("GET", "/reconcile"): "list", ("POST", "/reconcile/submit"): "school",
    ("POST", "/reconcile/accept"): "act",  # no case in its path: every probe is refused (403/404); see test_reconcile
    ("POST", "/risk/duties/{duty_id}/done"): "school",  # out-of-scope duties probed in test_oversight_web
    ("GET", "/ledger-book"): "list", ("GET", "/ledger-book/file"): "list",  # 台账 of referred cases (issue 16)
    ("GET", "/gate"): "list", ("GET", "/truancy"): "list", ("POST", "/gate/out"): "school", ("POST", "/gate/in"): "school",
    ("POST", "/prevention/duties/{duty_id}/done"): "school",  # out-of-scope writes and ?pupil= probed in test_gate
    ("GET", "/census"): "list", ("GET", "/handoffs"): "list", ("POST", "/census/upload"): "school",
    ("POST", "/census/{census_case_id}/act"): "school",  # census and hand-off writes: test_census_and_handoff_writes_stay_in_scope
    ("POST", "/handoffs/{handoff_id}/ack"): "school",
    # the directory (名册): the pupils' list is probed like every list; schools, classes and staff carry no pupil data
    ("GET", "/directory"): "list", ("GET", "/api/pupils"): "list", ("GET", "/api/classes"): "list",
    ("GET", "/api/staff"): "list", ("GET", "/api/schools"): "list",
    # the county's onboarding: only the county may open or post it (tests/web/test_directory_web.py)
    ("GET", "/admin/onboarding"): "open", ("POST", "/admin/onboarding"): "open",
    # the calendar page: no pupil data; county and operator only (tests/web/test_calendar_page.py)
    ("GET", "/admin/calendar"): "open", ("POST", "/admin/calendar/holidays"): "open", ("POST", "/admin/calendar/terms"): "open",
    # accountability (web/pages_accountability.py): talks, veto list, ranking, 责任书, 包保 chain; out-of-scope
    # talks and 责任书 probed in tests/web/test_accountability_web.py
    ("GET", "/interviews"): "list", ("POST", "/interviews"): "school", ("GET", "/interviews/{talk_id}"): "school",
    ("POST", "/interviews/{talk_id}/outcome"): "school", ("GET", "/veto"): "list", ("GET", "/ranking"): "list",
    ("GET", "/pledges"): "list", ("POST", "/pledges/{pledge_id}/signed"): "school", ("GET", "/pledges/{pledge_id}.pdf"): "school",
    ("POST", "/cases/{case_id}/chain"): "act",
    ("GET", "/api/interviews"): "list", ("POST", "/api/interviews"): "school", ("GET", "/api/interviews/{talk_id}"): "school",
    ("POST", "/api/interviews/{talk_id}/outcome"): "school", ("GET", "/api/veto"): "list", ("GET", "/api/ranking"): "list",
    ("GET", "/api/pledges"): "list", ("POST", "/api/pledges/{pledge_id}/signed"): "school",
    ("GET", "/api/cases/{case_id}/chain"): "case", ("POST", "/api/cases/{case_id}/chain"): "act",
    # issue 17 items 1–3 (web/pages_reports.py, web/api_reports.py): own-unit writes and other-scope refusals
    # are probed in tests/web/test_reports_work.py
    ("GET", "/submissions"): "list", ("GET", "/weekly"): "list", ("GET", "/weekly.xlsx"): "list",
    ("GET", "/spot-results"): "list", ("GET", "/api/submissions"): "list", ("GET", "/api/weekly-counts"): "list",
    ("GET", "/api/spot-results"): "list",
    ("POST", "/submissions"): "school", ("POST", "/weekly"): "school", ("POST", "/spot-results"): "school",
    ("POST", "/api/submissions"): "school", ("POST", "/api/weekly-counts"): "school", ("POST", "/api/spot-results"): "school",
    ("POST", "/api/spot-results/{result_id}/resolve"): "school",
    # the work queues' exports (issue 18): read as lists; a watch entry and the day's print batch are probed
    # in tests/web/test_work_queues.py (another school's entry 404, another school's documents not merged)
    ("GET", "/stuck.xlsx"): "list", ("GET", "/cases.xlsx"): "list", ("GET", "/risk.xlsx"): "list",
    ("GET", "/risk/entries/{entry_id}"): "school", ("GET", "/print/documents.pdf"): "school",
    # leave, 免学/缓学, transfers, lesson counts (issue 17): out-of-scope requests and pupils in tests/web/test_leave_web.py
    ("GET", "/leave"): "list", ("GET", "/api/leave"): "list",
    ("POST", "/api/leave"): "school", ("POST", "/api/leave/{request_id}/certificate"): "school",
    ("POST", "/api/leave/{request_id}/decision"): "school", ("GET", "/api/leave/{request_id}/decision.pdf"): "school",
    ("POST", "/api/transfers"): "school", ("POST", "/api/lesson-absences"): "school", ("POST", "/api/not-home"): "school",
    ("GET", "/leave/{request_id}/decision.pdf"): "school", ("POST", "/leave/apply"): "school",
    ("POST", "/leave/{request_id}/decide"): "school", ("POST", "/leave/transfer"): "school",
    ("POST", "/leave/lesson"): "school", ("POST", "/leave/not-home"): "school",
}
LIST_QUERIES = {"/api/cases": "?open_only=false", "/cases": "?all=1", "/cases.xlsx": "?all=1", "/stuck.xlsx": "?kind=all",
                "/stuck": "?kind=all", "/api/duties": "?mine=false",
                "/api/accountability": "?start=2026-11-01", "/accountability": "?start=2026-11-01",
                "/accountability.csv": "?start=2026-11-01"}


def all_routes() -> set[tuple[str, str]]:
    return {(m, r.path) for router in routers() for r in router.routes for m in r.methods if m != "HEAD"}


def test_every_route_is_probed():
    assert all_routes() == set(ROUTES), "add new routes to ROUTES so their scoping is tested"


# -- the world -------------------------------------------------------------------------------------
@pytest.fixture
def world(factory, tmp_path):
    archive = tmp_path / "archive"
    with factory() as s:
        county = build_county(s)
        schools = s.scalars(select(School).order_by(School.id)).all()
        by_code = {x.code: x for x in schools}
        home, sibling, far = by_code[county.school_codes[0]], by_code[county.school_codes[1]], by_code[county.school_codes[2]]
        first = lambda cls: s.scalars(select(Pupil).where(Pupil.class_id == cls).order_by(Pupil.id)).first()
        klass = lambda school: s.scalars(select(SchoolClass.id).where(SchoolClass.school_id == school.id)
                                         .order_by(SchoolClass.id)).first()
        pupils = {"A": first(county.class_ids[0]), "B": first(county.class_ids[1]), "C": first(klass(sibling)),
                  "D": first(klass(far))}
        for key, p in pupils.items():
            p.name = MARKERS[key]
        ctx = CaseContext(s)
        for school in (home, sibling, far):
            marks = [MarkIn(p.student_no, "缺勤") for p in pupils.values() if p.school_id == school.id]
            record_morning_check(s, ctx, school_code=school.code, day=MONDAY.date(), marks=marks, source="cli",
                                 submitted_by="test", now=MONDAY)
        s.commit()
        cases = {k: s.scalar(select(Case.id).where(Case.pupil_id == p.id)) for k, p in pupils.items()}
        students = {k: p.student_no for k, p in pupils.items()}
        pupil_ids = {k: p.id for k, p in pupils.items()}
    advance(factory, TUESDAY_EVENING)
    with factory() as s:  # A–D board and left the gate unapproved; their truancy tiers (web/pages_gate.py)
        seed_prevention(s, list(pupil_ids.values()), TUESDAY_EVENING)
        s.commit()
    with factory() as s:
        docs, photos = {}, {}
        for key, case_id in cases.items():
            body = f"document of case {key}".encode()
            rel = f"test/{key}.pdf"
            (archive / "test").mkdir(parents=True, exist_ok=True)
            (archive / rel).write_bytes(body)
            doc = Document(doc_key=f"case:{case_id}:phone_record:9", version=1, kind="phone_record", title="电话联系记录",
                           case_id=case_id, event_seq=2, data={}, template_sha256="0" * 64, actor="test",
                           created_at=MONDAY)
            s.add(doc)
            s.flush()
            s.add(DocumentFile(document_id=doc.id, fmt="pdf", media_type="application/pdf", path=rel,
                               sha256=hashlib.sha256(body).hexdigest(), size=len(body), actor="test", created_at=MONDAY))
            docs[key] = doc.id
        filings = {}
        for school in schools:
            rel = f"reports/{school.code}.md"
            (archive / "reports").mkdir(parents=True, exist_ok=True)
            (archive / rel).write_text(f"# {school.name}", encoding="utf-8")
            f = ReportFiling(kind="monthly", level="school", scope_code=school.code, scope_name=school.name,
                             period="2026-11", period_start=MONDAY.date().replace(day=1), period_end=MONDAY.date(),
                             due_on=MONDAY.date(), filed_at=MONDAY, late=False, figures={}, files={"md": rel},
                             actor="test")
            s.add(f)
            s.flush()
            filings[school.code] = f.id
        spot_check(s, quarter="2026Q4", seed=3, fraction=1.0, as_of=MONDAY, actor="test")
        census_world = seed_census_world(s, cases, docs, MARKERS, MONDAY)  # hand-offs and 失学 children (web/pages_census.py)
        s.commit()
    clock = Clock(TUESDAY_EVENING)
    app = create_app(Settings(archive_dir=archive), factory=factory, clock=clock, deployments=InProcess(), init=False)
    # one in-scope photo per case, recorded through the API by someone who may
    recorder = {"A": "teacher", "B": "school", "C": "school_other", "D": "school_far"}
    with TestClient(app) as client:
        for key, username in recorder.items():
            r = client.post(f"/api/cases/{cases[key]}/visits", headers=bearer(county, username),
                            data={"event": "record_home_visit", "payload": json.dumps({"result": "见到家长"})},
                            files=[("photos", (f"{key}.png", PNG + key.encode(), "image/png"))])
            assert r.status_code == 200, r.text
            photos[key] = attachment_of(factory, cases[key])
        yield {"app": app, "client": client, "county": county, "cases": cases, "students": students, "docs": docs,
               "photos": photos, "filings": filings, "schools": {x.code: x.id for x in schools},
               "pupil_ids": pupil_ids, "factory": factory, "home": home.code, "far": far.code,
               "census_world": census_world}


def attachment_of(factory, case_id: int) -> int:
    from store.models.attachments import Attachment

    with factory() as s:
        return s.scalar(select(Attachment.id).where(Attachment.case_id == case_id).order_by(Attachment.id.desc()))


def bearer(county, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {county.tokens[username]}"}


def as_user(world, username: str, path: str):
    """Headers/cookies for ``username``: a token for /api, the session cookie for pages."""
    client, county = world["client"], world["county"]
    client.cookies.clear()
    if path.startswith("/api"):
        return {"headers": bearer(county, username)}
    client.cookies.set(SESSION_COOKIE, county.cookies[username])
    return {"headers": {"accept": "text/html"}}


def text_of(response) -> str:
    if response.headers.get("content-type", "").startswith("application/json"):
        return json.dumps(response.json(), ensure_ascii=False)
    if "spreadsheetml" in response.headers.get("content-type", ""):  # an export: every cell's text
        import io

        from openpyxl import load_workbook

        wb = load_workbook(io.BytesIO(response.content))
        return "\n".join(str(v) for ws in wb for row in ws.iter_rows(values_only=True) for v in row if v is not None)
    try:
        return response.content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return ""


def leaks(world, text: str, hidden: str) -> list[str]:
    """Names, student numbers and case links of the hidden cases found in ``text``."""
    found = []
    for key in hidden:
        for needle in (MARKERS[key], MARKERS[key][0] + "*" + MARKERS[key][-1], world["students"][key],
                       f"/cases/{world['cases'][key]}\""):
            if needle in text:
                found.append(f"{key}: {needle}")
    return found


def fill(path: str, world, key: str, fmt: str = "pdf") -> str:
    return (path.replace("{case_id}", str(world["cases"][key])).replace("{attachment_id}", str(world["photos"][key]))
            .replace("{document_id}", str(world["docs"][key])).replace("{fmt}", fmt))


ACCOUNTS = list(VISIBLE)


@pytest.mark.parametrize("username", ACCOUNTS)
def test_reads_and_writes_stay_in_scope(world, username):
    client = world["client"]
    visible, hidden = VISIBLE[username], "".join(k for k in "ABCD" if k not in VISIBLE[username])
    versions_before = case_versions(world)
    for (method, path), kind in sorted(ROUTES.items()):
        if kind == "list" and method == "GET":
            r = client.get(path + LIST_QUERIES.get(path, ""), **as_user(world, username, path))
            assert r.status_code in (200, 403), (path, r.status_code, r.text[:300])
            assert not leaks(world, text_of(r), hidden), (username, path, leaks(world, text_of(r), hidden))
        elif kind == "template":
            for fmt in ("csv",):
                url = path.replace("{fmt}", fmt) + ("?fmt=csv" if path.startswith("/api") else "")
                r = client.get(url, **as_user(world, username, path))
                assert r.status_code in (200, 403)
                assert not leaks(world, text_of(r), hidden), (username, path)
        elif kind in ("case", "attachment", "document"):
            for key in "ABCD":
                r = client.get(fill(path, world, key), **as_user(world, username, path))
                if key in visible and kind == "document" and username == "county":  # store.access.masking: a phone
                    assert r.status_code == 403, (username, path, key)  # record reaches the county as a masked preview
                    assert b"document of case" not in r.content
                elif key in visible:
                    assert r.status_code == 200, (username, path, key, r.text[:300])
                else:
                    assert r.status_code in (403, 404), (username, path, key, r.status_code)
                    assert not leaks(world, text_of(r), hidden) and b"document of case" not in r.content
        elif kind == "report":
            for code, filing_id in world["filings"].items():
                url = path.replace("{filing_id}", str(filing_id)).replace("{fmt}", "md")
                r = client.get(url, **as_user(world, username, path))
                assert r.status_code in (200, 403, 404)
                if r.status_code == 200:
                    assert readable_school(world, username, code), (username, url)
        elif kind == "act":
            for key in hidden:
                r = post_action(world, username, method, path, key)
                assert r.status_code in (403, 404), (username, path, key, r.status_code, r.text[:200])
    assert case_versions(world) == versions_before  # nothing outside scope changed
    if visible:  # and the lists are not empty by accident: each reader sees their own cases
        r = client.get("/api/cases?open_only=false", headers=bearer(world["county"], username))
        assert sorted(c["id"] for c in r.json()) == sorted(world["cases"][k] for k in visible)
        r = client.get("/stuck", **as_user(world, username, "/stuck"))
        for key in visible:
            assert f"/cases/{world['cases'][key]}\"" in r.text


def readable_school(world, username: str, code: str) -> bool:
    key = {world["home"]: "A", world["far"]: "D"}.get(code)
    return key is None or key in VISIBLE[username] or username in ("county",)


def post_action(world, username: str, method: str, path: str, key: str):
    client, county = world["client"], world["county"]
    url = fill(path, world, key)
    if path == "/api/cases/{case_id}/actions":
        return client.post(url, headers=bearer(county, username), json={"event": "mark_returned", "note": "x"})
    if path == "/api/cases/{case_id}/attachments":
        return client.post(url, headers=bearer(county, username), files=[("file", ("p.png", PNG, "image/png"))])
    if path == "/api/cases/{case_id}/chain":
        return client.post(url, headers=bearer(county, username), json={"role": "head_teacher", "person": "越权者"})
    if path == "/api/cases/{case_id}/visits":
        return client.post(url, headers=bearer(county, username), data={"event": "record_home_visit"},
                           files=[("photos", ("p.png", PNG, "image/png"))])
    opts = as_user(world, username, path)
    return client.post(url, data={"csrf": county.csrf[username], "event": "mark_returned"}, follow_redirects=False,
                       **opts)


def case_versions(world) -> dict[int, tuple[str, int]]:
    with world["factory"]() as s:
        return {c.id: (c.state, c.version) for c in s.scalars(select(Case))}


# -- the school-level writes ---------------------------------------------------------------------------
def test_a_head_teacher_cannot_mark_a_pupil_of_another_class(world):
    client, county = world["client"], world["county"]
    before = case_versions(world)
    r = client.post("/api/morning-checks", headers=bearer(county, "teacher"),
                    json={"day": "2026-11-17", "marks": [{"student_no": world["students"]["B"], "status": "到校"}]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["student_no"] == world["students"]["B"]
    assert "不是您所带班级" in r.json()["errors"][0]["message"]
    assert case_versions(world) == before  # B is still absent: nothing was recorded


def test_a_school_cannot_submit_or_import_for_another_school(world):
    client, county = world["client"], world["county"]
    before = case_versions(world)
    r = client.post("/api/morning-checks", headers=bearer(county, "school"),
                    json={"school_code": world["far"], "day": "2026-11-17", "marks": []})
    assert r.status_code == 403
    r = client.post("/api/morning-checks", headers=bearer(county, "school"),
                    json={"day": "2026-11-17", "marks": [{"student_no": world["students"]["D"], "status": "到校"}]})
    assert r.status_code == 422  # a row the school may not send refuses the whole check (one rule, every entry)
    assert [e["student_no"] for e in r.json()["errors"]] == [world["students"]["D"]]
    assert case_versions(world)[world["cases"]["D"]] == before[world["cases"]["D"]]
    roster = f"学校代码,学籍号,姓名,年级,班级\n{world['far']},X999,外校生,1,一年级(9)班\n".encode()
    r = client.post("/api/roster", headers=bearer(county, "school"), files={"file": ("r.csv", roster, "text/csv")})
    assert r.status_code == 200 and r.json()["added"] == 0 and r.json()["errors"][0]["row"] == 2
    for username in ("township", "county", "operator"):
        r = client.post("/api/morning-checks", headers=bearer(county, username),
                        json={"school_code": world["home"], "marks": []})
        assert r.status_code == 403, username


def test_the_operator_reads_no_pupil_data(world):
    client, county = world["client"], world["county"]
    for (method, path), kind in ROUTES.items():
        if method == "GET" and kind in ("list", "template") and path.startswith("/api"):
            r = client.get(path + ("?fmt=csv" if kind == "template" else ""), headers=bearer(county, "operator"))
            assert r.status_code in (200, 403)
            assert not leaks(world, text_of(r), "ABCD"), path


@pytest.mark.parametrize("username", ACCOUNTS)
def test_census_and_handoff_writes_stay_in_scope(world, username):
    """A census child or a hand-off outside the reader's scope cannot be acted on (404/403); one inside can.
    The census is the school office's and the offices' work: head teachers and the operator get 403."""
    client, county = world["client"], world["county"]
    readers = ("school", "school_other", "school_far", "township", "township_other", "county")
    visible = VISIBLE[username] if username in readers else ""
    for key in "ABCD":
        census_id, handoff_id = world["census_world"]["census"][key], world["census_world"]["handoffs"][key]
        opts = as_user(world, username, "/census")
        r1 = client.post(f"/census/{census_id}/act", data={"csrf": county.csrf[username], "event": "record_persuasion",
                                                            "reason": "入户动员"}, follow_redirects=False, **opts)
        r2 = client.post(f"/handoffs/{handoff_id}/ack", data={"csrf": county.csrf[username], "received_by": "李文书",
                                                               "received_at": "2026-11-17T09:00"}, follow_redirects=False, **opts)
        if key in visible:
            assert (r1.status_code, r2.status_code) == (303, 303), (username, key, r1.text[:200], r2.text[:200])
        else:
            assert r1.status_code in (403, 404) and r2.status_code in (403, 404), (username, key, r1.status_code, r2.status_code)
    r = client.get("/census", **as_user(world, username, "/census"))
    if username in readers:  # the county's lists are masked: 甲**童
        shown = [MARKERS[k] + "童" if username != "county" else MARKERS[k][0] + "**童" for k in visible]
        assert all(name in r.text for name in shown), (username, "own census children listed")
