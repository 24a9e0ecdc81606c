"""The pages as a head teacher and the offices use them (server-rendered forms, no script)."""
from __future__ import annotations

import re
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from store.access.accounts import Role
from store.cases.advance import advance
from store.models import Case, CaseEvent, Helper
from tests.web_support import Clock, build_county, pupils_of_class, in_process_app
from web.deps import SESSION_COOKIE
from web.shell import NAV


class RunsOnly:
    """A Prefect server with two runs (no deployments started here)."""

    def start(self, name, parameters, *, idempotency_key=None):
        return None

    def ui_url(self):
        return "http://prefect.local"

    def recent_runs(self, limit=50):
        return [{"id": "r1", "name": "clever-fox", "flow": "advance_cases", "state": "Completed",
                 "start": datetime(2026, 11, 16, 1, 30), "url": "http://prefect.local/runs/flow-run/r1"},
                {"id": "r2", "name": "brave-owl", "flow": "morning_check", "state": "Failed", "start": None,
                 "url": "http://prefect.local/runs/flow-run/r2"}]


@pytest.fixture
def pages(factory, tmp_path):
    with factory() as s:
        county = build_county(s)
        s.commit()
        pupils = pupils_of_class(s, county.class_ids[0])
        names = {p.student_no: p.name for p in pupils}
    clock = Clock()
    app = in_process_app(factory, tmp_path / "archive", clock)
    with TestClient(app) as client:
        yield {"client": client, "app": app, "county": county, "clock": clock, "names": names, "factory": factory}


def as_(pages, username: str) -> TestClient:
    client = pages["client"]
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, pages["county"].cookies[username])
    return client


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_every_page_of_every_role_renders_with_an_empty_ledger(pages):
    for username, role in [("teacher", Role.head_teacher), ("school", Role.school_staff), ("township", Role.township),
                           ("county", Role.county), ("operator", Role.operator)]:
        client = as_(pages, username)
        for href, label in NAV[role]:
            r = client.get(href)
            assert r.status_code == 200, (username, href, r.text[-500:])
            assert label in r.text


def test_a_head_teacher_ticks_the_absent_pupils_on_the_page(pages):
    client = as_(pages, "teacher")
    form = client.get("/morning-check").text
    first, second = list(pages["names"])[:2]
    r = client.post("/morning-check/form", data={"csrf": csrf(form), "day": "2026-11-16", f"status:{first}": "unexcused",
                                                 f"status:{second}": "sick_leave"})
    assert r.status_code == 200 and "新登记缺勤案件" in r.text
    home = client.get("/teacher").text
    assert pages["names"][first] in home and "无故缺勤" in home and "病假" in home
    assert "今天的晨检还没有上报" not in home


def test_a_home_visit_with_photos_is_recorded_from_the_case_page(pages):
    client = as_(pages, "teacher")
    first = list(pages["names"])[0]
    client.post("/morning-check/form", data={"csrf": csrf(client.get("/morning-check").text), f"status:{first}": "unexcused"})
    with pages["factory"]() as s:
        case_id = s.scalar(select(Case.id))
    page = client.get(f"/cases/{case_id}").text
    assert 'value="record_home_visit"' in page and "现场照片" in page
    jpeg = b"\xff\xd8\xff\xe0" + b"\x01" * 40
    form = {"csrf": csrf(page), "event": "record_home_visit", "met": "祖母", "visitors": "王老师、李老师", "note": "孩子在家",
            "version": "1", "at": "2026-11-16T07:50"}
    r = client.post(f"/cases/{case_id}/act", data=form, files=[("photos", ("门口.jpg", jpeg, "image/jpeg"))])
    assert r.status_code == 422 and "照片说明" in r.text  # a photo needs its caption
    r = client.post(f"/cases/{case_id}/act", data=form | {"photo_caption": "家门口"},
                    files=[("photos", ("门口.jpg", jpeg, "image/jpeg"))], follow_redirects=True)
    assert r.status_code == 200 and "已记录：家访" in r.text
    assert "王老师、李老师" in r.text and 'src="/attachments/' in r.text and 'alt="家门口"' in r.text
    with pages["factory"]() as s:
        ev = s.scalar(select(CaseEvent).where(CaseEvent.event == "record_home_visit"))
        assert ev.payload["visitors"] == ["王老师", "李老师"] and ev.payload["notes"] == "孩子在家"
        assert ev.at == datetime(2026, 11, 16, 7, 50) and ev.actor == "user:teacher"


def test_the_school_assigns_three_helpers(pages):
    client = as_(pages, "teacher")
    first = list(pages["names"])[0]
    client.post("/morning-check/form", data={"csrf": csrf(client.get("/morning-check").text), f"status:{first}": "unexcused"})
    pages["clock"].at = datetime(2026, 11, 18, 10, 0)
    advance(pages["factory"], pages["clock"]())
    client = as_(pages, "school")
    with pages["factory"]() as s:
        case_id = s.scalar(select(Case.id))
    page = client.get(f"/cases/{case_id}").text
    r = client.post(f"/cases/{case_id}/act", data={"csrf": csrf(page), "event": "assign_helpers", "helper1": "张校长",
                                                   "helper1_role": "head_teacher", "helper2": "李老师",
                                                   "helper2_role": "subject_teacher", "helper3": "村支书王",
                                                   "helper3_role": "village_committee"}, follow_redirects=True)
    assert r.status_code == 200 and "三帮一" in r.text
    with pages["factory"]() as s:
        assert sorted(s.scalars(select(Helper.name))) == ["张校长", "李老师", "村支书王"]


def test_the_runs_page_links_each_run_to_the_prefect_ui(pages):
    pages["app"].state.deployments = RunsOnly()
    r = as_(pages, "operator").get("/runs")
    assert r.status_code == 200
    assert 'href="http://prefect.local/runs/flow-run/r1"' in r.text and 'href="http://prefect.local"' in r.text
    assert "brave-owl" in r.text
    r = pages["client"].get("/api/runs", headers={"Authorization": f"Bearer {pages['county'].tokens['county']}"})
    assert [run["url"] for run in r.json()["runs"]] == ["http://prefect.local/runs/flow-run/r1",
                                                        "http://prefect.local/runs/flow-run/r2"]


def test_without_prefect_the_runs_page_says_so(pages):
    pages["app"].state.deployments = type("NoServer", (), {"start": lambda *a, **k: None,
                                                          "recent_runs": lambda self: None, "ui_url": lambda self: None})()
    assert "未配置 Prefect 服务" in as_(pages, "county").get("/runs").text


def test_an_error_page_is_in_chinese_with_a_way_back(pages):
    r = as_(pages, "teacher").get("/cases/999999", headers={"accept": "text/html"})
    assert r.status_code == 404 and "案件不存在" in r.text and "回到首页" in r.text
    r = as_(pages, "teacher").get("/no-such-page", headers={"accept": "text/html"})
    assert r.status_code == 404 and "页面或资源不存在" in r.text


def test_the_accountability_evidence_downloads_as_csv(pages):
    client = as_(pages, "teacher")
    first = list(pages["names"])[0]
    client.post("/morning-check/form", data={"csrf": csrf(client.get("/morning-check").text), f"status:{first}": "unexcused"})
    pages["clock"].at = datetime(2026, 11, 17, 19, 0)
    advance(pages["factory"], pages["clock"]())
    r = as_(pages, "township").get("/accountability.csv?start=2026-11-01")
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("责任人,职责,学校,案件") and len(lines) == 3  # the call and the visit, both missed
    assert {line.split(",")[6] for line in lines[1:]} == {"电话联系家长", "家访"}
    assert all(line.split(",")[8] == "未办" for line in lines[1:])
