"""In a real browser (Debian's Chromium driven by Playwright): a head teacher logs in, uploads the
morning check, sees the new case and records the phone call; when the simulated clock passes the
next deadline without the home visit, the township sees the case in its stuck list with the name
of the person who owes the visit. Every page visited is saved as a screenshot.
"""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from store.cases.advance import advance
from store.db import transaction
from store.models import Case, Duty
from tests.web_support import browser, login, pupils_of_class, shot, site, staff_name  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_head_teacher_reports_absence_and_township_sees_the_missed_visit(browser, site, tmp_path):
    base, factory, clock, county = site
    with transaction(factory) as s:
        pupils = pupils_of_class(s, county.class_ids[0])
        absent = pupils[0]
        absent_name, absent_no = absent.name, absent.student_no
        office = staff_name(s, county.school_codes[0], "academic_office")
        rows = [f"{p.student_no},{p.name},{'缺勤' if p.id == absent.id else '到校'}," for p in pupils]
    sheet = tmp_path / "晨检表.csv"
    sheet.write_bytes(("学籍号,姓名,出勤状态,缺勤原因\n" + "\n".join(rows) + "\n").encode("gbk"))  # as Chinese Excel saves

    # Monday 08:00 — the head teacher logs in and uploads the morning check.
    first = browser.new_page(viewport={"width": 1366, "height": 768})
    first.goto(f"{base}/teacher")  # not logged in: the login page, which comes back here afterwards
    assert first.url.endswith("/login?next=/teacher") and first.locator("h1").inner_text() == "登录"
    shot(first, "00-login")
    page = login(browser, base, "teacher")
    page.wait_for_url(f"{base}/teacher")
    assert "今天的晨检还没有上报" in page.content()
    shot(page, "01-teacher-home-before-check")
    page.click("text=去上报晨检")
    page.wait_for_url(f"{base}/morning-check")
    shot(page, "02-morning-check-form")
    page.set_input_files("input[name=file]", str(sheet))
    page.click("button:has-text('上传并提交')")
    page.wait_for_selector("text=晨检已记录")
    shot(page, "03-morning-check-recorded")
    with transaction(factory) as s:
        case_id = s.scalar(select(Case.id))
    assert page.locator(f"a[href='/cases/{case_id}']").count() == 1

    # 10:00 — the morning check is over; the scheduled advance opens day 1 (phone the family).
    clock.at = datetime(2026, 11, 16, 10, 0)
    advance(factory, clock())
    page.goto(f"{base}/teacher")
    body = page.content()
    assert absent_name in body and "电话联系家长" in body and "无故缺勤" in body
    shot(page, "04-teacher-home-duty")
    page.click(f"td a[href='/cases/{case_id}'] >> nth=0")
    page.wait_for_url(f"{base}/cases/{case_id}")
    assert page.locator(".rung.current .t").inner_text() == "电话联系"
    shot(page, "05-case-day1")

    # The head teacher records the phone call.
    call = page.locator("details", has=page.locator("summary", has_text="电话联系家长"))
    if call.get_attribute("open") is None:  # the action that is due opens by itself
        call.locator("summary").click()
    assert page.input_value("input[name=contact]").endswith("）")  # the guardian, filled in
    page.fill("input[name=contact]", "父亲")
    page.select_option("select[name=reached]", "yes")
    page.select_option("select[name=signs]", "yes")
    page.fill("textarea[name=result]", "家长称孩子不愿上学，约定明日家访")
    page.click("button:has-text('确认：电话联系家长')")
    page.wait_for_selector("text=已记录：电话联系家长")
    shot(page, "06-case-phone-call-recorded")
    assert "家长称孩子不愿上学" in page.content()
    with transaction(factory) as s:
        assert s.scalar(select(Duty.status).where(Duty.case_id == case_id, Duty.action == "record_phone_call")) == "done"

    # Tuesday 19:00 — day 2 came and its home visit (due 18:00) was not recorded.
    clock.at = datetime(2026, 11, 17, 19, 0)
    advance(factory, clock())
    township = login(browser, base, "township")
    township.wait_for_url(f"{base}/stuck")
    row = township.locator("tr.late", has_text=absent_name)
    assert row.count() == 1
    assert office in row.inner_text() and "家访" in row.inner_text()
    shot(township, "07-township-stuck-list")
    township.select_option("select[name=sort]", label="按责任人")
    township.click("#stuck-filters button:has-text('筛选')")
    township.wait_for_url("**/stuck?*sort=owner*")
    assert township.locator("tr.late", has_text=office).count() == 1

    # The township also sees the case itself (read-only for the school's steps), the overview and figures.
    township.goto(f"{base}/cases/{case_id}")
    assert township.locator(".rung.current .t").inner_text() == "家访"
    assert "确认：家访" not in township.content()  # the visit is the school's to record
    shot(township, "08-township-case-day2")
    for path, name in [("/overview", "09-township-overview"), ("/figures", "10-township-figures"),
                       ("/accountability", "11-township-accountability"), ("/late", "12-township-late")]:
        township.goto(base + path)
        assert township.locator("h1").count() == 1
        shot(township, name)

    # The school office sees the case on its board; the other school's head teacher does not see it at all.
    office_page = login(browser, base, "school")
    office_page.wait_for_url(f"{base}/school")
    assert absent_name in office_page.locator(".board").inner_text()
    shot(office_page, "13-school-office")
    stranger = login(browser, base, "teacher_other_school")
    stranger.goto(f"{base}/cases/{case_id}")
    assert "不在您的管辖范围内" in stranger.content() and absent_name not in stranger.content()
    county_page = login(browser, base, "county")
    county_page.goto(f"{base}/overview")
    shot(county_page, "14-county-overview")
    assert absent_no  # (the upload matched the pupil by 学籍号)
