"""School days: weekends, statutory holidays, 调休 make-up days, terms and breaks."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from machines.calendar import CalendarYearUnknown, HolidayTable, Period, SchoolCalendar
from store.calendars import calendars, holiday_table, read_holiday_file

CAL = calendars()["default"]


def test_weekends_holidays_and_breaks_are_not_school_days():
    assert CAL.is_school_day(date(2026, 11, 23))          # Monday
    assert not CAL.is_school_day(date(2026, 11, 22))      # Sunday
    assert not CAL.is_school_day(date(2026, 10, 1))       # 国庆节
    assert not CAL.is_school_day(date(2026, 10, 29))      # the school's own break (运动会)
    assert not CAL.is_school_day(date(2026, 8, 3))        # summer holidays (between terms)


def test_a_make_up_working_saturday_is_a_school_day():
    assert date(2026, 10, 10).weekday() == 5
    assert CAL.is_school_day(date(2026, 10, 10))


def test_nth_school_day_after_and_days_between():
    assert CAL.add_school_days(date(2026, 9, 29), 2) == date(2026, 10, 8)   # over the National Day holiday
    assert CAL.add_school_days(date(2026, 11, 21), 0) == date(2026, 11, 23)  # Saturday → the next school day
    assert CAL.school_days_between(date(2026, 9, 28), date(2026, 10, 12)) == 7
    assert CAL.school_days_between(date(2026, 10, 12), date(2026, 10, 11)) == 0


def test_a_year_nobody_supplied_is_an_error_never_a_guess():
    with pytest.raises(CalendarYearUnknown, match="2027"):
        CAL.is_school_day(date(2027, 1, 4))


def test_a_jurisdiction_can_supply_the_holidays_of_a_later_year(tmp_path):
    (tmp_path / "holidays-2027.toml").write_text(
        "year = 2027\nholidays = [2027-01-01]\nworkdays = [2027-01-09]\n", encoding="utf-8")
    table = holiday_table(tmp_path)
    cal = SchoolCalendar("t", table, [Period(date(2026, 9, 1), date(2027, 1, 22))])
    assert not cal.is_school_day(date(2027, 1, 1))
    assert cal.is_school_day(date(2027, 1, 9))       # a Saturday made a working day
    assert cal.is_school_day(date(2027, 1, 4))
    assert cal.span()[1] == date(2027, 1, 22)


def test_a_holiday_file_with_dates_of_another_year_is_rejected(tmp_path):
    path = tmp_path / "holidays-2027.toml"
    path.write_text("year = 2027\nholidays = [2028-01-01]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="outside 2027"):
        read_holiday_file(path)


days = st.dates(min_value=date(2025, 9, 1), max_value=date(2026, 11, 15))  # the last 2026 school days need 2027 data


@settings(max_examples=200, deadline=None)
@given(days, st.integers(0, 30))
def test_the_nth_school_day_is_a_school_day_n_school_days_later(start, n):
    end = CAL.add_school_days(start, n)
    assert CAL.is_school_day(end)
    first = CAL.add_school_days(start, 0)
    assert CAL.school_days_between(first, end) == n + 1


@settings(max_examples=200, deadline=None)
@given(days, st.integers(1, 20))
def test_non_school_days_never_add_to_a_streak(start, length):
    end = start + timedelta(days=length)
    counted = CAL.school_days_between(start, end)
    assert counted == sum(CAL.is_school_day(start + timedelta(days=i)) for i in range(length + 1))
    assert counted <= length + 1
