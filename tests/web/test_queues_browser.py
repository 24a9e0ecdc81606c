"""The work queues and downloads in Chromium (issue 18 items 3, 6, 7): the county's 逾期督办 by kind,
a watch-list row to the pupil's own entry, the school filter, the export as a Chinese-named XLSX, the
case search and the watch list's pages; screenshots for docs/img/screens."""
from __future__ import annotations

import io
import re
from datetime import date, datetime, time

from openpyxl import load_workbook
from sqlalchemy import select

from store.cases.advance import advance
from store.cases.context import CaseContext
from store.cases.intake import MarkIn, record_morning_check
from store.models import Pupil, School
from store.prevention import risk
from tests.web_support import browser, login, pupils_of_class, shot, site  # noqa: F401 - fixtures

DAYS = [date(2026, 11, d) for d in (16, 17, 18)]
NOW = datetime(2026, 11, 23, 10, 0)


def _populate(factory, county) -> dict:
    with factory() as s:
        schools = {x.code: x for x in s.scalars(select(School))}
        home, far = schools[county.school_codes[0]], schools[county.school_codes[2]]
        for p in s.scalars(select(Pupil)):
            p.special_groups = ["left_behind"]
        mine = pupils_of_class(s, county.class_ids[0])
        mine[1].name = "赵明远"
        s.commit()
        far_pupils = s.scalars(select(Pupil).where(Pupil.school_id == far.id).order_by(Pupil.id)).all()
        for d in DAYS:
            for school, group in ((home, mine[1:4]), (far, far_pupils[:2])):
                record_morning_check(s, CaseContext(s), school_code=school.code, day=d, source="cli", submitted_by="t",
                                     marks=[MarkIn(p.student_no, "缺勤") for p in group], now=datetime.combine(d, time(8)))
                s.commit()
            advance(factory, datetime.combine(d, time(9, 30)))
        risk.refresh_watch_list(s, as_of=datetime(2026, 11, 2, 10, 0))
        s.commit()
        return {"home": home.id, "home_name": home.name, "far_name": far.name}


def test_the_county_works_its_queues_in_chromium(site, browser):
    base, factory, clock, county = site
    ids = _populate(factory, county)
    clock.at = NOW
    page = login(browser, base, "county")
    page.goto(f"{base}/stuck")
    assert page.locator("#queue a.ref").first.inner_text().startswith("案件 #")
    shot(page, "stuck-cases")
    page.click("a[data-kind=watch]")
    first = page.locator("#queue a.ref").first
    assert first.inner_text().startswith("关注 #")
    first.click()
    assert re.search(r"/risk/entries/\d+$", page.url) and page.locator("h1").inner_text().startswith("关注 #")
    shot(page, "watch-entry")

    page.goto(f"{base}/stuck")  # the school filter, then the export of what it shows
    page.select_option("select[name=school]", str(ids["home"]))
    page.click("#stuck-filters button")
    assert f"school={ids['home']}" in page.url
    schools = page.locator("#queue tr td:nth-child(3)").all_inner_texts()
    assert schools and set(schools) == {ids["home_name"]}
    with page.expect_download() as dl:
        page.click("#stuck-filters a.export")
    download = dl.value
    assert download.suggested_filename.endswith(".xlsx") and "逾期督办" in download.suggested_filename
    ws = load_workbook(io.BytesIO(open(download.path(), "rb").read())).active
    assert ws.cell(row=3, column=1).value == "类别" and len([r for r in ws.iter_rows(min_row=4, values_only=True)
                                                            if str(r[1] or "").startswith("案件")]) == len(schools)

    page.goto(f"{base}/cases")  # the search, by the beginning of a name (the county sees it masked)
    page.fill("input[name=q]", "赵明")
    page.click("#case-filters button")
    refs = page.locator("#queue a.ref").all_inner_texts()
    assert len(refs) == 1 and refs[0].startswith("案件 #") and "赵*远" in page.locator("#queue").inner_text()
    shot(page, "case-list")

    page.goto(f"{base}/risk?per=20")  # the watch list in pages of 20
    assert page.locator("#queue a.ref").count() == 20
    page.click("a[rel=next]")
    assert "page=2" in page.url and page.locator("#queue a.ref").count() == 20
    shot(page, "watch-list")
    page.click("text=本月关注学生去向汇总")  # the county's month summary: its own page, not holding up the list
    assert "/risk/outcomes?month=" in page.url and "关注学生中辍学" in page.locator("main, body").first.inner_text()
    shot(page, "watch-summary")
    page.context.close()
