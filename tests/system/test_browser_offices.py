"""The offices' pages in a real browser, on a week of a small county: stuck cases sorted by how long
overdue and by owner, open cases by step per school, figures with charts, late reporting, the
spot-check sheet and the accountability evidence."""
from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path

import httpx
from openpyxl import load_workbook
import pytest
from sqlalchemy import func, select

from machines.states import OPEN_STATES
from store.cases.advance import advance
from store.cases.actions import act
from store.cases.context import CaseContext
from store.db import transaction
from store.cases.intake import MarkIn, record_morning_check
from store.models import Case, Pupil, School
from store.reporting.reports import file_report, month_period, scope_of, spot_check
from tests.web_support import browser, login, shot, site  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
WEEK = [date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19)]
# school index → pupils (by index within the school) absent each day; None = the school did not report
ABSENT = {
    0: [[0, 1, 6], [0, 6], [0, 6], [0, 6]],
    1: [[0], None, [0], [0]],
    2: [[0, 1], [0, 1], [0], [0]],
    3: [[0], [0], [0], [0]],
}
LATE_SCHOOL = 3  # reports at 09:40 on Monday, after the 09:00 morning-check deadline


def run_week(factory) -> dict:
    with transaction(factory) as s:
        schools = s.scalars(select(School).order_by(School.id)).all()
        pupils = {x.id: [p.student_no for p in s.scalars(select(Pupil).where(Pupil.school_id == x.id).order_by(Pupil.id))]
                  for x in schools}
    for n, day in enumerate(WEEK):
        for i, school in enumerate(schools):
            absent = ABSENT[i][n]
            if absent is None:
                continue
            late = i == LATE_SCHOOL and n == 0
            at = datetime.combine(day, datetime.min.time()).replace(hour=9 if late else 8, minute=40 if late else 8)
            with transaction(factory) as s:
                record_morning_check(s, CaseContext(s), school_code=school.code, day=day, source="web",
                                     marks=[MarkIn(pupils[school.id][k], "缺勤", "study" if k else "family") for k in absent],
                                     submitted_by="user:test", now=at)
        advance(factory, datetime.combine(day, datetime.min.time()).replace(hour=10))
        if n == 0:  # school 1's call on time, school 3's the next morning (late)
            with transaction(factory) as s:
                first = lambda sc: s.scalar(select(Case.id).join(Pupil).where(Pupil.student_no == pupils[sc.id][0]))
                act(s, CaseContext(s), first(schools[0]), "record_phone_call", actor="user:teacher",
                    at=datetime(2026, 11, 16, 11, 0), now=datetime(2026, 11, 16, 11, 0),
                    payload={"contact": "父亲", "reached": True, "result": "家长表示孩子厌学"})
                act(s, CaseContext(s), first(schools[2]), "record_phone_call", actor="system",
                    at=datetime(2026, 11, 17, 8, 30), now=datetime(2026, 11, 17, 8, 30))
        if n == 1:
            with transaction(factory) as s:
                case = s.scalar(select(Case.id).join(Pupil).where(Pupil.student_no == pupils[schools[0].id][0]))
                act(s, CaseContext(s), case, "record_home_visit", actor="user:school", at=datetime(2026, 11, 17, 16, 0),
                    now=datetime(2026, 11, 17, 16, 0), payload={"visitors": ["教务主任", "班主任"], "met": "祖母",
                                                              "result": "答应明天送孩子上学"})
    end = datetime(2026, 11, 19, 19, 0)
    advance(factory, end)
    with transaction(factory) as s:
        policy = CaseContext(s).policies.get("default")
        file_report(s, policy=policy, level="school", scope=scope_of(s, "school", schools[0].code),
                    period=month_period(2026, 11), as_of=end, actor="user:school")
        spot_check(s, quarter="2026Q4", seed=7, fraction=0.5, as_of=end, actor="user:county")
    return {"schools": schools, "pupils": pupils, "end": end}


def test_offices_find_stuck_cases_by_overdue_time_and_by_owner(browser, site):
    base, factory, clock, county = site
    week = run_week(factory)
    clock.at = week["end"]

    page = login(browser, base, "county")
    page.wait_for_url(f"{base}/overview")
    with transaction(factory) as s:
        open_now = s.scalar(select(func.count()).select_from(Case).where(Case.state.in_([x.value for x in OPEN_STATES])))
    assert page.locator("tr.total td").last.inner_text() == str(open_now)
    shot(page, "20-county-overview")

    api = httpx.get(f"{base}/api/stuck", headers={"Authorization": f"Bearer {county.tokens['county']}"}).json()
    hours = [r["hours_overdue"] for r in api]
    assert hours == sorted(hours, reverse=True) and len(api) >= 4
    page.goto(f"{base}/stuck")  # the work queue: one row per overdue duty, longest overdue first
    rows = page.locator("tr.late")
    dues = [r.locator("td:nth-child(7)").inner_text() for r in rows.all()]
    assert dues == sorted(dues)  # MM-DD HH:MM of one week
    refs = [a.inner_text() for a in rows.locator("td:first-child a").all()]
    assert list(dict.fromkeys(refs)) == [f"案件 #{r['ref_id']}" for r in api]  # each case where its longest-overdue duty is
    assert {(ref, r.locator("td:nth-child(6) b").inner_text()) for ref, r in zip(refs, rows.all())} == {
        (f"案件 #{r['ref_id']}", o["owner"]) for r in api for o in r["owed"]}
    shot(page, "21-county-stuck")
    page.select_option("select[name=sort]", label="按责任人")
    page.click("#stuck-filters button:has-text('筛选')")
    page.wait_for_url("**/stuck?*sort=owner*")
    owners = [row.locator("td:nth-child(6) b").inner_text() for row in page.locator("tr.late").all()]
    assert len(owners) == len(refs) and owners == sorted(owners)
    shot(page, "22-county-stuck-by-owner")

    page.goto(f"{base}/stuck")  # its 导出 Excel: the rows the list shows, in its order, under a Chinese name
    with page.expect_download() as dl:
        page.click("a.export:has-text('导出 Excel')")
    assert dl.value.suggested_filename.endswith(f"逾期督办控辍案件{clock.at:%Y%m%d}.xlsx"), dl.value.suggested_filename
    ws = load_workbook(io.BytesIO(Path(dl.value.path()).read_bytes())).active  # (the saved file has no extension)
    body = list(ws.iter_rows(min_row=4, values_only=True))
    assert len(refs) < 50 and [r[1] for r in body[:-1]] == refs  # one page shows the whole list here
    assert body[-1][0] == f"共 {len(refs)} 行。" and all(isinstance(r[-1], (int, float)) for r in body[:-1])

    page.goto(f"{base}/figures")
    assert page.locator("svg.chart").count() >= 3
    shot(page, "23-county-figures")

    page.goto(f"{base}/late")
    late_school, silent_school = week["schools"][LATE_SCHOOL].name, week["schools"][1].name
    assert "11-16 迟（09:40）" in page.locator("tr", has_text=late_school).inner_text()
    silent = page.locator("tr", has_text=silent_school).inner_text()
    assert "11-17 未报" in silent and "11-16 未报" not in silent
    shot(page, "24-county-late")

    page.goto(f"{base}/accountability")
    assert page.locator("tr.late").count() >= 4
    shot(page, "25-county-accountability")

    page.goto(f"{base}/spot-checks")
    assert page.locator("h2", has_text="2026Q4").count() == 1
    shot(page, "26-county-spot-checks")

    school = login(browser, base, "school")
    school.wait_for_url(f"{base}/school")
    assert school.locator(".board .col").count() == 6
    shot(school, "27-school-office-week")
    with transaction(factory) as s:
        case_id = s.scalar(select(Case.id).join(Pupil).where(Pupil.student_no == week["pupils"][week["schools"][0].id][0]))
    school.goto(f"{base}/cases/{case_id}")
    assert school.locator(".rung.current .t").inner_text() == "镇政府返校通知"
    assert school.locator(".rung.done").count() == 4
    shot(school, "28-case-day4")
