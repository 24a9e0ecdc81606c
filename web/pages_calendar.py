"""The county's calendar page (校历与节假日): term dates and school breaks of each school calendar,
and the State Council's holiday list of a year (holidays and 调休 make-up days).

What is entered is checked (dates inside the year, no day both a holiday and a working day, make-up
days on weekends; terms that do not overlap, breaks inside terms) and written to the calendar folder
as the files `baoxue init` reads (``holidays-<year>.toml``, ``<key>.toml``); the school days are
materialised again and the operator's 校历 duty for the year is closed at once.
"""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy.orm import Session

from machines.calendar import parse_day_list
from store.access.accounts import Role
from store.calendar_watch import review
from store.calendars import (
    HolidayFileError, calendars, parse_periods, refresh_school_days, write_calendar, write_holiday_list,
)

from web.auth import check_csrf
from web.deps import ApiError, Principal, get_db, get_now
from web.shell import page, render

router = APIRouter(include_in_schema=False)
EDITORS = (Role.county, Role.operator)


def _page(request: Request, who: Principal, db: Session, now: datetime, message: str = "", status: int = 200):
    cals = calendars()
    years = sorted({y for c in cals.values() for y in c.holidays.years})
    return render(request, "calendar.html", who, status=status, calendars=cals, years=years,
                  warnings=review(db, cals, now), message=message)


@router.get("/admin/calendar")
def calendar_page(request: Request, who: Principal = Depends(page(*EDITORS)), db: Session = Depends(get_db),
                  now: datetime = Depends(get_now)):
    return _page(request, who, db, now)


def _after_change(request, who, db, now, message):
    cals = calendars()
    refresh_school_days(db, cals)
    response = _page(request, who, db, now, message)  # review() closes the duty of a year now supplied
    db.commit()
    return response


@router.post("/admin/calendar/holidays")
def post_holidays(request: Request, year: int = Form(..., ge=2000, le=2100), holidays: str = Form("", max_length=8000),
                  workdays: str = Form("", max_length=4000), csrf: str = Form(""),
                  who: Principal = Depends(page(*EDITORS)), db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    check_csrf(who, csrf)
    try:
        write_holiday_list(year, parse_day_list(holidays), parse_day_list(workdays), entered_by=who.user.display_name)
    except (HolidayFileError, ValueError) as exc:
        raise ApiError(422, f"{year}年节假日未保存：{exc}") from None
    return _after_change(request, who, db, now, f"{year}年节假日安排已保存")


@router.post("/admin/calendar/terms")
def post_terms(request: Request, key: str = Form(..., max_length=32), label: str = Form("", max_length=64),
               terms: str = Form("", max_length=4000), breaks: str = Form("", max_length=4000), csrf: str = Form(""),
               who: Principal = Depends(page(*EDITORS)), db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    check_csrf(who, csrf)
    try:
        write_calendar(key, label, parse_periods(terms), parse_periods(breaks), entered_by=who.user.display_name)
    except HolidayFileError as exc:
        raise ApiError(422, f"校历「{label or key}」未保存：{exc}") from None
    return _after_change(request, who, db, now, f"校历「{label or key}」已保存")
