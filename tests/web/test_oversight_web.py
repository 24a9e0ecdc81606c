"""The oversight pages: the watch list per scope, and reconciliation with the accept action that
needs an explanation when a school's report hides open cases (both databases)."""
from __future__ import annotations

from datetime import date, datetime, time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from store.prevention import risk
from store.cases.advance import advance
from store.cases.context import CaseContext
from store.cases.intake import MarkIn, record_morning_check
from store.models import Pupil, School
from store.models.reconcile import SubmittedReport
from tests.web_support import Clock, build_county, pupils_of_class, in_process_app
from web.deps import SESSION_COOKIE

DAYS = [date(2026, 11, d) for d in (16, 17, 18)]
NOW = datetime(2026, 11, 23, 10, 0)


@pytest.fixture
def site(factory, tmp_path):
    with factory() as s:
        county = build_county(s)
        for p in s.scalars(select(Pupil)):
            p.special_groups = []
        home, far = (s.scalar(select(School).where(School.code == c)) for c in (county.school_codes[0], county.school_codes[2]))
        mine = pupils_of_class(s, county.class_ids[0])
        far_pupil = s.scalars(select(Pupil).where(Pupil.school_id == far.id).order_by(Pupil.id)).first()
        mine[0].name, far_pupil.name = "甲关注", "丁关注"
        mine[0].special_groups, far_pupil.special_groups = ["left_behind"], ["poor"]
        s.commit()
        for d in DAYS:  # two pupils of the home class absent three days: dropouts in the ledger
            record_morning_check(s, CaseContext(s), school_code=home.code, day=d, source="cli", submitted_by="t",
                                 marks=[MarkIn(p.student_no, "缺勤") for p in mine[1:3]], now=datetime.combine(d, time(8)))
            s.commit()
            advance(factory, datetime.combine(d, time(9, 30)))
        risk.refresh_watch_list(s, as_of=NOW)
        s.commit()
        ids = {"home": home.id, "far": far.id}
    app = in_process_app(factory, tmp_path / "archive", Clock(NOW))
    with TestClient(app) as client:
        yield {"client": client, "county": county, "factory": factory, "schools": ids}


def _as(site, user):
    site["client"].cookies.clear()
    site["client"].cookies.set(SESSION_COOKIE, site["county"].cookies[user])
    return site["client"]


def test_the_watch_list_follows_the_readers_scope_and_shows_why(site):
    page = _as(site, "teacher").get("/risk").text
    assert "甲关注" in page and "丁关注" not in page and "花名册标记：留守儿童" in page and "心理疏导" in page
    page = _as(site, "township_other").get("/risk").text
    assert "丁关注" in page and "甲关注" not in page and "贫困生" in page
    page = _as(site, "county").get("/risk").text
    assert "甲*注" in page and "丁*注" in page and "甲关注" not in page   # the county reads names masked
    # the county's month summary is its own page (it reads every watched pupil); the list links to it
    assert "关注学生中辍学</div>" not in page and "/risk/outcomes?month=" in page
    summary = _as(site, "county").get("/risk/outcomes?month=" + page.split("/risk/outcomes?month=")[1].split('"')[0])
    assert summary.status_code == 200 and "月末在册" in summary.text and "关注学生中辍学" in summary.text
    assert "关注学生中辍学</div>" in _as(site, "township_other").get("/risk").text   # a township's box stays on its list
    assert _as(site, "teacher").get("/risk/outcomes").status_code in (302, 303, 403)
    assert _as(site, "operator").get("/risk").status_code == 403


def test_accepting_a_report_that_hides_open_cases_needs_an_explanation(site):
    county = site["county"]
    school = _as(site, "school")
    r = school.post("/reconcile/submit", data={"csrf": county.csrf["school"], "month": "2026-11", "dropouts": "0",
                                               "out_of_school": "0"}, follow_redirects=False)
    assert r.status_code == 303
    page = school.get("/reconcile?month=2026-11").text
    assert "瞒报在办案件" in page and "辍学人数" in page
    with site["factory"]() as s:
        sub = s.scalar(select(SubmittedReport))
        assert sub.school_id == site["schools"]["home"] and sub.hides_open_cases
        case_ids = [c["case_id"] for c in sub.differences[0]["cases"]]
    assert len(case_ids) == 2 and all(f'/cases/{c}"' in page for c in case_ids)
    figures = _as(site, "township").get("/figures?month=2026-11").text   # the township's monthly figures page
    assert "上报数据与台账不符" in figures and all(f'/cases/{c}"' in figures for c in case_ids) and "待审核" in figures
    assert "上报数据与台账不符" in _as(site, "township_other").get("/figures?month=2026-11").text
    assert f'/cases/{case_ids[0]}"' not in _as(site, "township_other").get("/figures?month=2026-11").text
    school = _as(site, "school")
    form = {"submission_id": str(sub.id), "explanation": ""}
    assert school.post("/reconcile/accept", data={**form, "csrf": county.csrf["school"]}).status_code == 403
    other = _as(site, "township_other")
    assert other.post("/reconcile/accept", data={**form, "csrf": county.csrf["township_other"], "explanation": "x"},
                      headers={"accept": "text/html"}).status_code == 404
    township = _as(site, "township")
    r = township.post("/reconcile/accept", data={**form, "csrf": county.csrf["township"]}, headers={"accept": "text/html"})
    assert r.status_code == 422 and "须填写说明" in r.text
    r = township.post("/reconcile/accept", data={**form, "csrf": county.csrf["township"], "explanation": "两名学生外出，学校漏报"},
                      follow_redirects=False)
    assert r.status_code == 303
    with site["factory"]() as s:
        sub = s.get(SubmittedReport, sub.id)
        assert (sub.status, sub.accepted_by, sub.explanation) == ("accepted", "user:township", "两名学生外出，学校漏报")
    page = _as(site, "county").get("/reconcile?month=2026-11").text
    assert "两名学生外出，学校漏报" in page and "未报送" in page            # the other schools did not submit


def test_a_preventive_duty_is_done_only_by_staff_of_the_pupils_school_or_class(site):
    county = site["county"]
    with site["factory"]() as s:
        from store.models.risk import WatchDuty, WatchEntry, WatchEvent
        duty = s.scalar(select(WatchDuty).join(WatchEntry, WatchEntry.id == WatchDuty.entry_id)
                        .where(WatchEntry.school_id == site["schools"]["home"]).order_by(WatchDuty.id))
    url = f"/risk/duties/{duty.id}/done"
    for user, status in (("teacher_next_class", 404), ("school_far", 404), ("township", 403)):
        r = _as(site, user).post(url, data={"csrf": county.csrf[user]}, headers={"accept": "text/html"}, follow_redirects=False)
        assert r.status_code == status, user
    r = _as(site, "teacher").post(url, data={"csrf": county.csrf["teacher"], "note": "已谈心"}, follow_redirects=False)
    assert r.status_code == 303
    with site["factory"]() as s:
        assert s.get(WatchDuty, duty.id).status == "done"
        ev = s.scalar(select(WatchEvent).where(WatchEvent.event == "duty_done"))
        assert (ev.actor, ev.reason, ev.payload["duty_id"]) == ("user:teacher", "已谈心", duty.id)
