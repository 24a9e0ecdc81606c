"""The web app's behaviour: login and tokens, JSON errors a clerk understands, uploads with per-row
errors, the deployment run or the in-process service, actions with their permissions."""
from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import func, select

from store.cases.advance import advance
from store.db import Settings
from store.models import AttendanceMark, Case, CaseEvent, Submission
from tests.web_support import MONDAY, PASSWORD, Clock, build_county, form_token, in_process_app, page_login, pupils_of_class
from web.app import create_app
from web.deps import SESSION_COOKIE
from web.services import RunStarted


class FakeDeployments:
    """Stands in for the Prefect server: records what would be started."""

    def __init__(self, available: bool = True):
        self.available, self.started = available, []

    def start(self, name, parameters, *, idempotency_key=None):
        try:  # Prefect's run_deployment returns a coroutine when called on a running event loop
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise AssertionError("deployments.start() called on the event loop")
        self.started.append((name, parameters))
        return RunStarted("1c0ffee0-0000-4000-8000-000000000001", "http://prefect.local/runs/flow-run/1c0ffee0") \
            if self.available else None


@pytest.fixture
def web(factory, tmp_path):
    with factory() as s:
        county = build_county(s, sessions=False)
        s.commit()
        pupils = [p.student_no for p in pupils_of_class(s, county.class_ids[0])]
        other_class = [p.student_no for p in pupils_of_class(s, county.class_ids[1])]
    clock = Clock()
    app = in_process_app(factory, tmp_path / "archive", clock)
    with TestClient(app) as client:
        yield {"client": client, "app": app, "county": county, "clock": clock, "pupils": pupils,
               "other_class": other_class, "factory": factory}


def token(web, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {web['county'].tokens[username]}"}


def count(factory, model, *where) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def open_case(web, student_no: str) -> int:
    r = web["client"].post("/api/morning-checks", headers=token(web, "teacher"),
                           json={"marks": [{"student_no": student_no, "status": "缺勤"}]})
    assert r.status_code == 200, r.text
    return r.json()["opened_case_ids"][0]


# -- login, sessions, tokens -----------------------------------------------------------------------
def test_login_sends_each_role_home_and_logout_ends_the_session(web):
    client = web["client"]
    for username, home in [("teacher", "/teacher"), ("school", "/school"), ("township", "/stuck"),
                           ("county", "/overview"), ("operator", "/runs")]:
        client.cookies.clear()
        r = page_login(client, username, PASSWORD, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == home
        assert client.get(home).status_code == 200
    client.post("/logout", data={"csrf": form_token(client)}, follow_redirects=False)
    r = client.get("/overview", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/overview")


def test_a_wrong_password_is_answered_in_chinese_and_repeated_failures_lock_the_account(web):
    client = web["client"]
    r = page_login(client, "teacher", "wrong-password")
    assert r.status_code == 401 and "用户名或密码不正确" in r.text
    for _ in range(5):
        page_login(client, "teacher", "wrong-password")
    r = page_login(client, "teacher", PASSWORD)
    assert r.status_code == 401 and "用户名或密码不正确" in r.text  # locked: the same answer as a wrong password
    web["clock"].at = MONDAY.replace(hour=9)  # the lock lasts 15 minutes
    r = page_login(client, "teacher", PASSWORD, follow_redirects=False)
    assert r.status_code == 303


def test_a_page_asked_for_without_login_redirects_and_an_expired_session_is_refused(web):
    client = web["client"]
    assert client.get("/cases/1", follow_redirects=False).headers["location"] == "/login?next=/cases/1"
    page_login(client, "teacher", PASSWORD, follow_redirects=False)
    web["clock"].at = datetime(2026, 11, 18, 8, 0)  # 48 hours later: past the 12-hour session
    assert client.get("/teacher", follow_redirects=False).status_code == 303


def test_an_api_token_is_issued_for_a_password_and_can_be_revoked(web):
    client = web["client"]
    r = client.post("/api/auth/token", json={"username": "school", "password": PASSWORD, "name": "学籍系统"})
    assert r.status_code == 200 and r.json()["role"] == "school_staff"
    bearer = {"Authorization": f"Bearer {r.json()['token']}"}
    assert client.get("/api/me", headers=bearer).json()["role_label"] == "学校管理员"
    assert client.delete("/api/auth/token", headers=bearer).status_code == 204
    r = client.get("/api/me", headers=bearer)
    assert r.status_code == 401 and "访问令牌" in r.json()["message"]
    r = client.post("/api/auth/token", json={"username": "school", "password": "nope"})
    assert r.status_code == 401 and r.json() == {"message": "用户名或密码不正确"}


def test_a_page_form_without_its_csrf_token_is_refused(web):
    client = web["client"]
    client.cookies.set(SESSION_COOKIE, "")
    page_login(client, "teacher", PASSWORD, follow_redirects=False)
    case_id = open_case(web, web["pupils"][0])
    r = client.post(f"/cases/{case_id}/act", data={"event": "record_phone_call"}, headers={"accept": "text/html"})
    assert r.status_code == 403 and "页面已过期" in r.text


# -- the morning check --------------------------------------------------------------------------------
def test_morning_check_json_is_applied_in_process_without_a_prefect_server(web):
    r = web["client"].post("/api/morning-checks", headers=token(web, "teacher"),
                           json={"day": "2026-11-16", "marks": [{"student_no": web["pupils"][0], "status": "缺勤"}]})
    body = r.json()
    assert r.status_code == 200 and body["mode"] == "applied" and len(body["opened_case_ids"]) == 1
    assert "新登记缺勤 1 人" in body["message"]
    # a head teacher's check covers their class only: the other class was not marked
    assert count(web["factory"], AttendanceMark) == len(web["pupils"])


def test_morning_check_starts_the_deployment_run_when_prefect_is_there(web):
    fake = FakeDeployments()
    web["app"].state.deployments = fake
    r = web["client"].post("/api/morning-checks", headers=token(web, "school"),
                           json={"marks": [{"student_no": web["pupils"][0], "status": "病假"}]})
    assert r.status_code == 202
    assert r.json()["flow_run_id"].startswith("1c0ffee0") and r.json()["run_url"].startswith("http://prefect.local")
    [(name, params)] = fake.started
    assert name == "morning_check/morning-check"  # deploy/deployments.py: flow name / deployment name
    sub = params["submission"]
    assert sub["school_code"] == web["county"].school_codes[0] and sub["day"] == "2026-11-16" and sub["complete"]
    assert sub["marks"] == [{"student_no": web["pupils"][0], "status": "病假", "reason": "unknown", "row": 1}]
    assert sub["submitted_by"] == "user:school"
    from tasks.intake import MorningCheckSubmission  # the flow's parameter type accepts it as sent

    assert MorningCheckSubmission.model_validate(sub).source == "api"
    assert count(web["factory"], Submission) == 0  # the flow records it, not the web process


def test_morning_check_falls_back_to_the_service_when_the_deployment_is_missing(web):
    web["app"].state.deployments = FakeDeployments(available=False)
    r = web["client"].post("/api/morning-checks", headers=token(web, "school"), json={"marks": []})
    assert r.status_code == 200 and r.json()["mode"] == "applied"


def test_a_malformed_request_gets_a_chinese_message_and_the_field(web):
    r = web["client"].post("/api/morning-checks", headers=token(web, "teacher"), json={"day": "16/11/2026"})
    body = r.json()
    assert r.status_code == 422 and body["message"].startswith("提交的内容有误")
    assert {e["field"] for e in body["errors"]} == {"day", "marks"}
    assert any("日期格式" in e["message"] for e in body["errors"])


def test_a_future_day_or_a_holiday_is_refused(web):
    client = web["client"]
    r = client.post("/api/morning-checks", headers=token(web, "teacher"), json={"day": "2026-11-20", "marks": []})
    assert r.status_code == 422 and "还没到" in r.json()["message"]
    r = client.post("/api/morning-checks", headers=token(web, "teacher"), json={"day": "2026-11-15", "marks": []})
    assert r.status_code == 422 and "不是上学日" in r.json()["message"]


def upload(web, username: str, content: bytes, filename: str, **form):
    return web["client"].post("/api/morning-checks/upload", headers=token(web, username), data=form,
                              files={"file": (filename, content, "application/octet-stream")})


def test_an_upload_with_bad_rows_lists_every_row_and_records_nothing(web):
    a, b, c = web["pupils"][:3]
    sheet = f"城关镇石门小学晨检表\n学籍号,姓名,出勤状态\n{a},张三,缺勤\n{b},李四,迟到\n,王五,到校\n{c},赵六,\n".encode("gbk")
    r = upload(web, "teacher", sheet, "晨检.csv")
    body = r.json()
    assert r.status_code == 422 and "未保存" in body["message"]
    assert [(e["row"], e["student_no"]) for e in body["errors"]] == [(4, b), (5, ""), (6, c)]
    assert "迟到" in body["errors"][0]["message"]
    assert count(web["factory"], Submission) == 0 and count(web["factory"], Case) == 0


def test_an_xlsx_upload_with_a_date_column_opens_the_cases(web):
    book = Workbook()
    sheet = book.active
    sheet.append(["学籍号", "姓名", "出勤", "缺勤原因", "日期"])
    for i, no in enumerate(web["pupils"]):
        sheet.append([no, "x", "×" if i < 2 else "√", "厌学" if i == 0 else None, "2026/11/16"])
    out = io.BytesIO()
    book.save(out)
    r = upload(web, "teacher", out.getvalue(), "morning.xlsx")
    assert r.status_code == 200, r.text
    assert len(r.json()["opened_case_ids"]) == 2 and r.json()["day"] == "2026-11-16"
    with web["factory"]() as s:
        assert sorted(s.scalars(select(Case.reason))) == ["study", "unknown"]
    r = upload(web, "teacher", out.getvalue(), "morning.xlsx")  # the same file again changes nothing
    assert r.status_code == 200 and r.json()["summary"]["duplicate"]


def test_an_old_xls_file_is_refused_with_advice(web):
    r = upload(web, "school", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.xls")
    assert r.status_code == 422 and "另存为 .xlsx" in r.json()["message"]


def test_a_template_lists_the_readers_pupils_marked_present(web):
    r = web["client"].get("/api/morning-checks/template?fmt=csv", headers=token(web, "teacher"))
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "学籍号,姓名,班级,出勤状态,缺勤原因" and len(lines) == 1 + len(web["pupils"])
    assert all(",到校," in line for line in lines[1:])


# -- actions ---------------------------------------------------------------------------------------
def act(web, username: str, case_id: int, body: dict, **headers):
    return web["client"].post(f"/api/cases/{case_id}/actions", headers=token(web, username) | headers, json=body)


def test_the_phone_call_is_recorded_once_however_often_it_is_sent(web):
    case_id = open_case(web, web["pupils"][0])
    web["clock"].at = MONDAY.replace(hour=10)
    advance(web["factory"], web["clock"]())
    body = {"event": "record_phone_call", "payload": {"contact": "母亲", "reached": True, "result": "明天返校"}}
    first = act(web, "teacher", case_id, body, **{"Idempotency-Key": "k1"})
    again = act(web, "teacher", case_id, body, **{"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 200
    assert again.json()["duplicate"] and first.json()["seq"] == again.json()["seq"]
    assert count(web["factory"], CaseEvent, CaseEvent.event == "record_phone_call") == 1
    detail = web["client"].get(f"/api/cases/{case_id}", headers=token(web, "teacher")).json()
    assert [d["status"] for d in detail["duties"]] == ["done"]
    assert detail["events"][-1]["payload"]["result"] == "明天返校"


def test_an_action_the_state_does_not_allow_is_a_409_in_chinese(web):
    case_id = open_case(web, web["pupils"][0])
    r = act(web, "township", case_id, {"event": "serve_legal_notice"})
    assert r.status_code == 409 and "当前处于「缺勤登记」" in r.json()["message"]


def test_an_action_the_role_may_not_fire_is_a_403(web):
    case_id = open_case(web, web["pupils"][0])
    for username, event in [("teacher", "escalate_outside"), ("teacher", "serve_township_notice"),
                            ("county", "mark_returned"), ("school", "escalate")]:
        r = act(web, username, case_id, {"event": event, "reason": "working_away"})
        assert r.status_code == 403 and "无权" in r.json()["message"], (username, event)


def test_a_stale_page_gets_a_409_instead_of_overwriting(web):
    case_id = open_case(web, web["pupils"][0])
    assert act(web, "teacher", case_id, {"event": "record_phone_call", "expected_version": 1}).status_code == 200
    r = act(web, "teacher", case_id, {"event": "mark_returned", "expected_version": 1})
    assert r.status_code == 409 and r.json()["version"] == 2


def test_excuse_needs_a_reason_and_the_ledger_closes(web):
    case_id = open_case(web, web["pupils"][0])
    # a leave is excused by its approval, not by the teacher saying so
    r = act(web, "teacher", case_id, {"event": "excuse", "reason": "sick_leave", "note": "补交病假条"})
    assert r.status_code == 409 and "审批" in r.json()["message"]
    r = act(web, "teacher", case_id, {"event": "excuse", "reason": "opened_in_error", "note": "误报"})
    assert r.status_code == 200 and r.json()["state"] == "excused"
    assert act(web, "teacher", case_id, {"event": "record_phone_call"}).status_code == 409


def test_a_visit_photo_must_be_a_picture(web):
    case_id = open_case(web, web["pupils"][0])
    r = web["client"].post(f"/api/cases/{case_id}/visits", headers=token(web, "teacher"),
                           data={"event": "record_home_visit", "payload": json.dumps({"met": "祖母"})},
                           files=[("photos", ("notes.txt", b"hello", "text/plain"))])
    assert r.status_code == 415 and "JPG/PNG" in r.json()["message"]
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 32
    r = web["client"].post(f"/api/cases/{case_id}/visits", headers=token(web, "teacher"),
                           data={"event": "record_home_visit", "payload": json.dumps({"met": "祖母"})},
                           files=[("photos", ("家访.jpg", jpeg, "image/jpeg"))])
    assert r.status_code == 200
    photo = web["client"].get(f"/api/cases/{case_id}", headers=token(web, "teacher")).json()["events"][-1]["payload"]["photos"][0]
    assert set(photo) == {"attachment_id", "caption"} and photo["caption"] == "家访"
    got = web["client"].get(f"/api/attachments/{photo['attachment_id']}", headers=token(web, "teacher"))
    assert got.status_code == 200 and got.content == jpeg and got.headers["content-type"] == "image/jpeg"


def test_the_case_offers_only_the_buttons_the_state_and_role_allow(web):
    case_id = open_case(web, web["pupils"][0])
    web["clock"].at = datetime(2026, 11, 18, 10, 0)  # day 3: collective visit
    advance(web["factory"], web["clock"]())
    offered = lambda who: [a["event"] for a in web["client"].get(f"/api/cases/{case_id}", headers=token(web, who)).json()["allowed_actions"]]
    assert offered("teacher") == ["record_phone_call", "record_home_visit", "record_reason", "mark_returned", "excuse"]
    # the duties still owed come first (the day-1 and day-2 ones are overdue), in ladder order
    assert offered("school")[:4] == ["record_phone_call", "record_home_visit", "record_collective_visit", "assign_helpers"]
    assert "escalate_outside" in offered("school")
    assert offered("township") == ["record_collective_visit", "escalate_outside"]
    assert offered("county") == ["escalate_outside"]


def test_the_openapi_document_lists_the_api(web):
    spec = web["client"].get("/openapi.json").json()
    assert {"/api/morning-checks/upload", "/api/cases/{case_id}/actions", "/api/stuck", "/api/figures/monthly",
            "/api/accountability", "/api/roster"} <= set(spec["paths"])
    assert web["client"].get("/docs").status_code == 200


def test_the_schools_figures_add_up_to_the_total(web):
    first, second = web["pupils"][:2]
    open_case(web, first)
    r = web["client"].post("/api/morning-checks", headers=token(web, "teacher"),
                           json={"marks": [{"student_no": first, "status": "缺勤"}, {"student_no": second, "status": "缺勤"}]})
    returned = r.json()["opened_case_ids"][0]
    act(web, "teacher", returned, {"event": "mark_returned"})
    data = web["client"].get("/api/figures/monthly?month=2026-11", headers=token(web, "county")).json()
    total = data["total"]
    for key in ("enrolled", "dropouts", "opened", "returned", "excused", "escalated"):
        assert sum(s[key] for s in data["schools"]) == total[key], key
    assert (total["opened"], total["returned"]) == (2, 1)


def test_an_uploaded_file_and_the_page_form_start_the_deployment_too(web):
    fake = FakeDeployments()
    web["app"].state.deployments = fake
    sheet = f"学籍号,出勤状态\n{web['pupils'][0]},缺勤\n".encode()
    r = upload(web, "school", sheet, "a.csv")
    assert r.status_code == 202 and r.json()["mode"] == "run"
    client = web["client"]
    page_login(client, "teacher", PASSWORD)
    csrf = client.get("/morning-check").text.split('name="csrf" value="')[1].split('"')[0]
    r = client.post("/morning-check/upload", data={"csrf": csrf, "day": "2026-11-16"},
                    files={"file": ("b.csv", sheet, "text/csv")})
    # a school user is never sent to the operator's console: the page waits for the result itself
    assert r.status_code == 200 and "正在处理" in r.text and "在 Prefect 中查看" not in r.text
    assert "prefect.local" not in r.text and 'http-equiv="refresh"' in r.text and "/morning-check/result?" in r.text
    assert [p["submission"]["source"] for _, p in fake.started] == ["upload", "upload"]


def test_with_a_prefect_server_but_no_deployment_the_check_is_recorded_here(prefect_harness, factory, tmp_path):
    from web.services import PrefectDeployments

    with factory() as s:
        county = build_county(s, sessions=False)
        s.commit()
        student = pupils_of_class(s, county.class_ids[0])[0].student_no
    from web.deps import WebSettings

    # a deployment name no test registers in the session's harness (test_deploy registers the real ones)
    settings = WebSettings(archive_dir=tmp_path, morning_check_deployment="morning_check/not-registered-here")
    app = create_app(settings, factory=factory, clock=Clock(), init=False, deployments=PrefectDeployments())
    assert PrefectDeployments.api_url()  # the harness's server
    with TestClient(app) as client:
        r = client.post("/api/morning-checks/upload", headers={"Authorization": f"Bearer {county.tokens['teacher']}"},
                        files={"file": ("a.csv", f"学籍号,出勤状态\n{student},缺勤\n".encode(), "text/csv")})
    assert r.status_code == 200 and r.json()["mode"] == "applied" and len(r.json()["opened_case_ids"]) == 1
