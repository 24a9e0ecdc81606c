"""School calendars from data: holiday tables, term dates, and the materialised school_days table."""
from __future__ import annotations

import tomllib
from datetime import date
from functools import lru_cache
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from machines.calendar import CalendarYearUnknown, HolidayTable, Period, SchoolCalendar

from .db import settings
from .models import Case, SchoolDay

SHIPPED_CALENDARS = Path(__file__).resolve().parent.parent / "deploy" / "calendars"


def calendar_dir() -> Path:
    return settings().calendar_dir or SHIPPED_CALENDARS


def chinesecalendar_table() -> HolidayTable:
    """Holidays and 调休 days as published in ``chinesecalendar`` (it knows years up to 2026)."""
    from chinese_calendar import constants

    years = {d.year for d in constants.holidays} | {d.year for d in constants.workdays}
    return HolidayTable(frozenset(years), frozenset(constants.holidays), frozenset(constants.workdays))


def read_holiday_file(path: Path) -> HolidayTable:
    """A jurisdiction's own list for a year: ``year``, ``holidays = [dates]``, ``workdays = [dates]``."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    year = int(data["year"])
    holidays, workdays = frozenset(data.get("holidays", [])), frozenset(data.get("workdays", []))
    wrong = sorted(d for d in holidays | workdays if d.year != year)
    if wrong:
        raise ValueError(f"{path}: dates outside {year}: {wrong}")
    return HolidayTable(frozenset({year}), holidays, workdays)


def holiday_table(directory: Path | None = None) -> HolidayTable:
    table = chinesecalendar_table()
    for path in sorted((directory or calendar_dir()).glob("holidays-*.toml")):
        table = table.merged(read_holiday_file(path))
    return table


def read_calendar(path: Path, holidays: HolidayTable) -> SchoolCalendar:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    periods = lambda key: [Period(p["start"], p["end"], p.get("label", "")) for p in data.get(key, [])]
    return SchoolCalendar(data["key"], holidays, periods("terms"), periods("breaks"))


def load_calendars(directory: Path | None = None) -> dict[str, SchoolCalendar]:
    directory = directory or calendar_dir()
    holidays = holiday_table(directory)
    return {c.key: c for c in (read_calendar(p, holidays) for p in sorted(directory.glob("*.toml"))
                                if not p.name.startswith("holidays-"))}


def materialise(session: Session, calendar: SchoolCalendar) -> int:
    """(Re)write the numbered school days of ``calendar``; returns how many.

    A changed calendar (a new break, a holiday list for a new year) renumbers the days, so the
    open cases' ``opened_seq`` is recomputed in the same transaction.
    """
    rows = [{"calendar_key": calendar.key, "day": d, "seq": n} for d, n in calendar.numbered_days()]
    session.execute(delete(SchoolDay).where(SchoolDay.calendar_key == calendar.key))
    if rows:
        session.execute(SchoolDay.__table__.insert(), rows)
    from machines.states import OPEN_STATES
    seq = (select(SchoolDay.seq).where(SchoolDay.calendar_key == Case.calendar_key, SchoolDay.day == Case.opened_on)
           .scalar_subquery())
    session.execute(update(Case).where(Case.calendar_key == calendar.key,
                                       Case.state.in_([s.value for s in OPEN_STATES])).values(opened_seq=seq))
    return len(rows)


def school_day_seq(session: Session, calendar_key: str, day: date) -> int | None:
    """The ordinal of ``day`` among the calendar's school days (None: not a school day)."""
    return session.scalar(select(SchoolDay.seq).where(SchoolDay.calendar_key == calendar_key, SchoolDay.day == day))


def last_seq_on_or_before(session: Session, calendar_key: str, day: date) -> int:
    """How many school days of the calendar have passed by the end of ``day`` (0 before the first)."""
    return session.scalar(select(func.max(SchoolDay.seq)).where(
        SchoolDay.calendar_key == calendar_key, SchoolDay.day <= day)) or 0


def covered_until(session: Session, calendar_key: str) -> date | None:
    return session.scalar(select(func.max(SchoolDay.day)).where(SchoolDay.calendar_key == calendar_key))


def ensure_covered(session: Session, calendars_by_key: dict[str, SchoolCalendar], day: date) -> None:
    """Raise if a calendar cannot answer for ``day``: never escalate on a guess."""
    for key, calendar in calendars_by_key.items():
        last = covered_until(session, key)
        if last is not None and last >= day:
            continue
        if day.year not in calendar.holidays.years:
            raise CalendarYearUnknown(day.year, key)
        raise LookupError(
            f"calendar '{key}' has no school days loaded after {last}: add the term of {day} and run "
            f"`baoxue init` (校历 '{key}' 未录入 {day} 所在学期)"
        )


@lru_cache(maxsize=8)
def _cached(directory: str) -> dict[str, SchoolCalendar]:
    return load_calendars(Path(directory))


def calendars() -> dict[str, SchoolCalendar]:
    return _cached(str(calendar_dir()))
