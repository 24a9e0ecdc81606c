"""The leave page and API: who applies, who decides, what an approval does (both databases)."""
from __future__ import annotations

from datetime import date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from store.access.scope import EVERYTHING
from store.cases.advance import advance
from store.reporting.dashboards import stuck_cases
from store.models import Case, Pupil, School
from store.models.leave import LeaveRequest
from tests.web_support import Clock, build_county, in_process_app, pupils_of_class
from web.deps import SESSION_COOKIE

NOW = datetime(2026, 11, 16, 10, 0)
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


@pytest.fixture
def site(factory, tmp_path):
    with factory() as s:
        county = build_county(s)
        mine = [p.student_no for p in pupils_of_class(s, county.class_ids[0])]
        s.commit()
    clock = Clock(NOW)
    app = in_process_app(factory, tmp_path / "archive", clock)
    with TestClient(app) as client:
        yield {"client": client, "county": county, "factory": factory, "mine": mine, "clock": clock}


def _api(site, user):
    return {"Authorization": f"Bearer {site['county'].tokens[user]}"}


def _page_as(site, user):
    c = site["client"]
    c.cookies.clear()
    c.cookies.set(SESSION_COOKIE, site["county"].cookies[user])
    return c


def test_a_three_day_leave_goes_to_the_office_as_principal_and_the_teachers_report_lessons_and_not_home(site):
    c, pupil = site["client"], site["mine"][0]
    r = c.post("/api/leave", headers=_api(site, "teacher"), json={
        "student_no": pupil, "kind": "sick_leave", "first_day": "2026-11-16", "last_day": "2026-11-18", "reason": "发烧"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["days"], made["role"], made["decision_label"]) == (3, "principal", "待审批")
    up = c.post(f"/api/leave/{made['id']}/certificate", headers=_api(site, "teacher"),
                files={"file": ("假条.png", PNG, "image/png")})
    assert up.status_code == 200 and up.json()["certificate"] == "假条.png"
    assert c.post(f"/api/leave/{made['id']}/decision", headers=_api(site, "teacher"),
                  json={"approve": True}).status_code == 403
    assert c.post(f"/api/leave/{made['id']}/decision", headers=_api(site, "school_far"),
                  json={"approve": True}).status_code == 404  # another township's school: not found
    ok = c.post(f"/api/leave/{made['id']}/decision", headers=_api(site, "school"), json={"approve": True, "note": "同意"})
    assert ok.status_code == 200 and ok.json()["decision"] == "approved" and "校长" in ok.json()["decided_by"]
    assert c.post(f"/api/leave/{made['id']}/decision", headers=_api(site, "school"),
                  json={"approve": False}).status_code == 409  # a decision is final
    page = _page_as(site, "school").get("/leave").text
    assert "已批准" in page and "校长" in page and "假条.png" in page
    # the page: a subject teacher's lesson count and a parent's 放学未回家
    c = _page_as(site, "teacher")
    token = site["county"].csrf["teacher"]
    pupil = site["mine"][4]
    assert c.post("/leave/lesson", data={"csrf": token, "student_no": pupil, "lesson": "3", "subject": "语文"},
                  follow_redirects=False).status_code == 303
    assert c.post("/leave/not-home", data={"csrf": token, "student_no": site["mine"][5], "parent_name": "李母",
                                           "note": "六点未到家"}, follow_redirects=False).status_code == 303
    page = c.get("/leave").text
    assert "第3节" in page and "语文" in page and "李母" in page and "放学未回家" in page
    with site["factory"]() as s:
        assert s.scalar(select(Case.opened_on).join(Pupil, Pupil.id == Case.pupil_id)
                        .where(Pupil.student_no == pupil)) == date(2026, 11, 16)
    other = site["county"].tokens["teacher_other_school"]
    r = site["client"].post("/api/lesson-absences", headers={"Authorization": f"Bearer {other}"},
                            json={"student_no": pupil, "lesson": 4})
    assert r.status_code == 404  # another school's pupil


def test_exemption_by_the_county_transfer_confirmed_by_the_receiving_school_or_opening_a_case(site):
    c, (a, b) = site["client"], site["mine"][1:3]
    ex = c.post("/api/leave", headers=_api(site, "school"),
                json={"student_no": a, "kind": "exemption", "first_day": "2026-11-16", "last_day": "2026-12-31"}).json()
    assert ex["role"] == "education_bureau"
    assert c.post(f"/api/leave/{ex['id']}/decision", headers=_api(site, "school"), json={"approve": True}).status_code == 403
    decided = c.post(f"/api/leave/{ex['id']}/decision", headers=_api(site, "county"), json={"approve": True}).json()
    assert decided["decision"] == "approved" and decided["document_id"]  # the decision is a document
    pdf = c.get(f"/api/leave/{ex['id']}/decision.pdf", headers=_api(site, "school"))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    sibling = site["county"].school_codes[1]
    t = c.post("/api/transfers", headers=_api(site, "school"), json={"student_no": b, "day": "2026-11-16",
                                                                   "to_school_code": sibling})
    assert t.status_code == 201, t.text
    tid = t.json()["id"]
    assert c.post(f"/api/leave/{tid}/decision", headers=_api(site, "school"), json={"approve": True}).status_code == 403
    listed = c.get("/api/leave?pending=true", headers=_api(site, "school_other")).json()
    assert [(x["id"], x["may_decide"]) for x in listed] == [(tid, True)]  # the receiving school sees it coming
    assert c.post(f"/api/leave/{tid}/decision", headers=_api(site, "school_other"),
                  json={"approve": True}).json()["decision_label"] == "已确认转入"
    with site["factory"]() as s:
        assert s.scalar(select(School.code).join(Pupil, Pupil.school_id == School.id)
                        .where(Pupil.student_no == b)) == sibling
    # the page: an unconfirmed 转出 to a school outside the county opens a case after the policy's days
    c = _page_as(site, "school")
    token = site["county"].csrf["school"]
    pupil = site["mine"][3]
    r = c.post("/leave/transfer", data={"csrf": token, "student_no": pupil, "day": "2026-11-16",
                                        "to_school_name": "外县第二中学"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    advance(site["factory"], datetime(2026, 12, 1, 9, 30))
    with site["factory"]() as s:
        case = s.scalar(select(Case).join(Pupil, Pupil.id == Case.pupil_id).where(Pupil.student_no == pupil))
        assert case is not None and case.opened_on == date(2026, 11, 16)
        stuck = stuck_cases(s, EVERYTHING, datetime(2026, 12, 1, 10))  # the /stuck page's read model
        assert [(r["kind"], [o["action_label"] for o in r["owed"]]) for r in stuck if r["kind"] == "approval"] == [
            ("approval", ["确认转入"])]
