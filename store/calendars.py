"""School calendars from data: holiday tables, term dates, and the materialised school_days table."""
from __future__ import annotations

import os
import re
import tomllib
from datetime import date
from functools import lru_cache
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from machines.calendar import (
    CalendarYearUnknown, HolidayTable, Period, SchoolCalendar, holiday_list_problems, period_problems,
)

from store.db import settings
from store.models import Case, SchoolDay

SHIPPED_CALENDARS = Path(__file__).resolve().parent.parent / "deploy" / "calendars"


def calendar_dir() -> Path:
    return settings().calendar_dir or SHIPPED_CALENDARS


def chinesecalendar_table() -> HolidayTable:
    """Holidays and 调休 days as published in ``chinesecalendar`` (it knows years up to 2026)."""
    from chinese_calendar import constants

    years = {d.year for d in constants.holidays} | {d.year for d in constants.workdays}
    return HolidayTable(frozenset(years), frozenset(constants.holidays), frozenset(constants.workdays))


class HolidayFileError(ValueError):
    """A holiday list that cannot be used as it is (named with the file and the reason)."""


def read_holiday_file(path: Path) -> HolidayTable:
    """A jurisdiction's own list for a year: ``year``, ``holidays = [dates]``, ``workdays = [dates]``;
    every date inside the year, no day both a holiday and a make-up working day."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise HolidayFileError(f"{path}: not a TOML file ({exc}) (文件格式有误)") from None
    year = data.get("year")
    if not isinstance(year, int) or f"holidays-{year}.toml" != path.name:
        raise HolidayFileError(f"{path}: year = {year!r} must be the year of the file name (year 与文件名年份不符)")
    lists = {key: data.get(key, []) for key in ("holidays", "workdays")}
    for key, days in lists.items():
        if not isinstance(days, list) or not all(type(d) is date for d in days):
            raise HolidayFileError(f"{path}: {key} must be a list of dates like 2027-01-01 ({key} 应为日期列表)")
    holidays, workdays = frozenset(lists["holidays"]), frozenset(lists["workdays"])
    problems = holiday_list_problems(year, holidays, workdays)
    if problems:
        raise HolidayFileError(f"{path}: " + "; ".join(problems))
    return HolidayTable(frozenset({year}), holidays, workdays)


def holiday_files(directory: Path | None = None) -> list[Path]:
    return sorted((directory or calendar_dir()).glob("holidays-*.toml"))


def holiday_table(directory: Path | None = None) -> HolidayTable:
    table = chinesecalendar_table()
    for path in holiday_files(directory):
        table = table.merged(read_holiday_file(path))
    return table


def read_calendar(path: Path, holidays: HolidayTable) -> SchoolCalendar:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    periods = lambda key: [Period(p["start"], p["end"], p.get("label", "")) for p in data.get(key, [])]
    return SchoolCalendar(data["key"], holidays, periods("terms"), periods("breaks"), str(data.get("label", "")))


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


class CalendarNotLoaded(LookupError):
    """The calendar's data answers for the day but its numbered school days have not been written yet."""

    def __init__(self, message: str, year: int):
        super().__init__(message)
        self.year = year


def ensure_covered(session: Session, calendars_by_key: dict[str, SchoolCalendar], day: date) -> None:
    """Raise if a calendar cannot answer for ``day``: never escalate on a guess."""
    for key, calendar in calendars_by_key.items():
        last = covered_until(session, key)
        if last is not None and last >= day:
            continue
        if day.year not in calendar.holidays.years:
            raise CalendarYearUnknown(day.year, key)
        if calendar.terms and calendar.span()[1] >= day:
            raise CalendarNotLoaded(f"calendar '{key}' has school days up to {calendar.span()[1]} but only {last} are "
                                    f"written: run `baoxue init` (校历 '{key}' 已更新，请运行 baoxue init)", day.year)
        raise LookupError(
            f"calendar '{key}' has no school days loaded after {last}: add the term of {day} and run "
            f"`baoxue init` (校历 '{key}' 未录入 {day} 所在学期)"
        )


@lru_cache(maxsize=8)
def _cached(directory: str, stamp: tuple) -> dict[str, SchoolCalendar]:
    return load_calendars(Path(directory))


def calendars() -> dict[str, SchoolCalendar]:
    """The calendars of the calendar folder, read again when a file there changes (a holiday list supplied
    to a running worker is used by its next sweep)."""
    directory = calendar_dir()
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(directory.glob("*.toml")))
    return _cached(str(directory), stamp)


def refresh_school_days(session: Session, calendars_by_key: dict[str, SchoolCalendar]) -> dict[str, int]:
    """Materialise the calendars whose data now reaches further than their written school days (a holiday list
    supplied since); returns {calendar: school days} of those rewritten."""
    out = {}
    for key, calendar in calendars_by_key.items():
        days = calendar.numbered_days() if calendar.terms else []
        if days and covered_until(session, key) != days[-1][0]:
            out[key] = materialise(session, calendar)
    return out


# -- entered by the county (the calendar page, `baoxue calendar …`) ---------------------------------
CALENDAR_KEY = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_holiday_list(year: int, holidays: list[date], workdays: list[date], *, entered_by: str,
                       directory: Path | None = None) -> Path:
    """The State Council's list for ``year`` as ``holidays-<year>.toml`` in the calendar folder, checked
    as a file from the folder is (dates inside the year, no day both, make-up days on weekends)."""
    if not 2000 <= year <= 2100:
        raise HolidayFileError(f"年份 {year} 不合理 (year out of range)")
    problems = holiday_list_problems(year, frozenset(holidays), frozenset(workdays))
    if not holidays:
        problems.append("放假日期不能为空 (no holidays given)")
    if problems:
        raise HolidayFileError("; ".join(problems))
    line = lambda days: "[" + ", ".join(d.isoformat() for d in sorted(days)) + "]"
    path = (directory or calendar_dir()) / f"holidays-{year}.toml"
    _write_atomically(path, f"# {year}年部分节假日安排（国务院办公厅通知）：由 {entered_by} 录入\n"
                            f"year = {year}\nholidays = {line(holidays)}\nworkdays = {line(workdays)}\n")
    read_holiday_file(path)  # what was written reads back as entered
    return path


def write_calendar(key: str, label: str, terms: list[Period], breaks: list[Period], *, entered_by: str,
                   directory: Path | None = None) -> Path:
    """A school calendar's terms and breaks as ``<key>.toml`` in the calendar folder."""
    if not CALENDAR_KEY.fullmatch(key or ""):
        raise HolidayFileError("校历代号只能是小写字母、数字、-、_，以字母开头 (calendar key)")
    problems = period_problems(terms, breaks)
    if problems:
        raise HolidayFileError("; ".join(problems))
    text = f"# 校历：由 {entered_by} 录入\nkey = \"{key}\"\nlabel = {_toml_text(label)}\n"
    for name, periods in (("terms", terms), ("breaks", breaks)):
        for p in sorted(periods, key=lambda p: p.start):
            text += f"\n[[{name}]]\nlabel = {_toml_text(p.label)}\nstart = {p.start}\nend = {p.end}\n"
    path = (directory or calendar_dir()) / f"{key}.toml"
    _write_atomically(path, text)
    return path


def _toml_text(value: str) -> str:
    value = "".join(ch for ch in (value or "") if ch >= " ")[:64]
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_periods(text: str) -> list[Period]:
    """Lines ``标签, 2026-09-01, 2027-01-22`` (commas or tabs) as periods; at most 40."""
    periods = []
    for n, raw in enumerate((text or "").strip().splitlines(), start=1):
        if not raw.strip():
            continue
        parts = [p.strip() for p in re.split(r"[,，\t]", raw)]
        if len(parts) != 3:
            raise HolidayFileError(f"第 {n} 行应为「名称, 开始日期, 结束日期」: '{raw[:60]}'")
        try:
            periods.append(Period(date.fromisoformat(parts[1]), date.fromisoformat(parts[2]), parts[0][:64]))
        except ValueError:
            raise HolidayFileError(f"第 {n} 行日期应写成 2026-09-01: '{raw[:60]}'") from None
        if len(periods) > 40:
            raise HolidayFileError("行数过多（上限 40）")
    return periods
