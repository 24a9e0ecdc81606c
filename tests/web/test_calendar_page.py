"""The county enters a year's holiday list and a calendar's terms on a page (issue 19): checked as a
file is, written where `baoxue init` reads it, and the operator's warning and 校历 duty end at once."""
from __future__ import annotations

from datetime import date, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select

from store.calendar_watch import review
from store.calendars import calendars
from store.models.calendar import CalendarDuty
from tests.store.test_calendar_watch import calendar_dir, calendar_folder  # noqa: F401 (fixture)
from tests.web_support import Clock, build_county, in_process_app
from web.deps import SESSION_COOKIE

TODAY = datetime(2026, 12, 1, 10, 0)
HOLIDAYS_2027 = "2027-01-01\n2027-02-06~2027-02-13\n2027-04-05\n2027-05-01~2027-05-05\n2027-10-01~2027-10-07"


def test_a_holiday_list_entered_on_the_page_ends_the_warning_and_the_duty(factory, tmp_path, calendar_dir):
    folder = calendar_folder(tmp_path, False)
    calendar_dir(folder)
    with factory() as s:
        county = build_county(s)
        review(s, calendars(), TODAY)  # as `baoxue init` and the daily sweep do: the operator owes the list
        s.commit()
    app = in_process_app(factory, tmp_path / "archive", Clock(TODAY))
    with TestClient(app) as client:
        client.cookies.set(SESSION_COOKIE, county.cookies["county"])
        csrf = county.csrf["county"]
        page = client.get("/admin/calendar")
        assert page.status_code == 200 and "2027 年的节假日表尚未提供" in page.text
        with factory() as s:
            assert s.scalar(select(CalendarDuty.status).where(CalendarDuty.year == 2027)) == "open"

        bad = client.post("/admin/calendar/holidays", data={"csrf": csrf, "year": "2027", "holidays": HOLIDAYS_2027,
                                                            "workdays": "2027-02-15\n2027-02-06"})
        assert bad.status_code == 422
        assert "调休上班日应为周六或周日" in bad.text and "同一天既是节假日又是调休上班日" in bad.text
        assert not (folder / "holidays-2027.toml").exists()
        outside = client.post("/admin/calendar/holidays", data={"csrf": csrf, "year": "2027", "holidays": "2028-01-01"})
        assert outside.status_code == 422 and "日期不在 2027 年内" in outside.text

        good = client.post("/admin/calendar/holidays", data={"csrf": csrf, "year": "2027", "holidays": HOLIDAYS_2027,
                                                             "workdays": "2027-02-20"})
        assert good.status_code == 200 and "2027年节假日安排已保存" in good.text and "尚未提供" not in good.text
        cal = calendars()["default"]
        assert 2027 in cal.holidays.years and not cal.is_school_day(date(2027, 1, 1))
        assert cal.is_school_day(date(2027, 1, 4))
        with factory() as s:
            assert s.scalar(select(CalendarDuty.status).where(CalendarDuty.year == 2027)) == "done"

        terms = "2026—2027学年第一学期, 2026-09-01, 2027-01-22\n2026—2027学年第二学期, 2027-03-01, 2027-07-09"
        overlapping = client.post("/admin/calendar/terms", data={"csrf": csrf, "key": "default", "terms": terms,
                                                                 "breaks": "运动会, 2027-02-01, 2027-02-02"})
        assert overlapping.status_code == 422 and "不在任何学期之内" in overlapping.text
        saved = client.post("/admin/calendar/terms", data={"csrf": csrf, "key": "default", "label": "县中小学校历",
                                                           "terms": terms, "breaks": "运动会, 2027-04-15, 2027-04-16"})
        assert saved.status_code == 200 and "校历「县中小学校历」已保存" in saved.text
        cal = calendars()["default"]
        assert [t.start for t in cal.terms] == [date(2026, 9, 1), date(2027, 3, 1)]
        assert not cal.is_school_day(date(2027, 4, 15)) and cal.is_school_day(date(2027, 4, 14))

        client.cookies.set(SESSION_COOKIE, county.cookies["school"])
        assert client.get("/admin/calendar", follow_redirects=False).status_code == 403
