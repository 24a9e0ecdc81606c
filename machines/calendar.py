"""The school-day calendar: which days count towards an absence streak (DOMAIN.md §2).

A school day is a working day (weekdays less statutory holidays, plus 调休 make-up working days)
inside one of the school's terms and outside its breaks. Holiday tables arrive as data (from
``chinesecalendar`` or a jurisdiction's own list); a year nobody supplied raises, never guesses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta


class CalendarYearUnknown(LookupError):
    def __init__(self, year: int, calendar: str = ""):
        self.year, self.calendar = year, calendar
        where = f" (calendar '{calendar}')" if calendar else ""
        super().__init__(
            f"no holiday list for {year}{where}: supply deploy/calendars/holidays-{year}.toml "
            f"with the State Council's holidays and 调休 make-up days "
            f"({year}年节假日安排未录入，请补充法定节假日及调休上班日)"
        )


@dataclass(frozen=True)
class HolidayTable:
    """Statutory holidays and make-up working days (调休上班日) for the years it knows."""

    years: frozenset[int]
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    def merged(self, other: "HolidayTable") -> "HolidayTable":
        return HolidayTable(self.years | other.years, self.holidays | other.holidays, self.workdays | other.workdays)

    def is_working_day(self, d: date) -> bool:
        if d.year not in self.years:
            raise CalendarYearUnknown(d.year)
        if d in self.workdays:
            return True
        return d.weekday() < 5 and d not in self.holidays


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive
    label: str = ""

    def __contains__(self, d: date) -> bool:
        return self.start <= d <= self.end


@dataclass
class SchoolCalendar:
    key: str
    holidays: HolidayTable
    terms: list[Period]
    breaks: list[Period] = field(default_factory=list)
    label: str = ""  # what people call it (校历名称); the key is the schools' reference

    def __post_init__(self) -> None:
        self.terms = sorted(self.terms, key=lambda p: p.start)
        self._days: list[date] | None = None

    def is_school_day(self, d: date) -> bool:
        if d.year not in self.holidays.years:
            raise CalendarYearUnknown(d.year, self.key)
        return (
            any(d in t for t in self.terms)
            and not any(d in b for b in self.breaks)
            and self.holidays.is_working_day(d)
        )

    def school_days(self, start: date, end: date) -> list[date]:
        """Every school day in [start, end]."""
        out, d = [], start
        while d <= end:
            if self.is_school_day(d):
                out.append(d)
            d += timedelta(days=1)
        return out

    def school_days_between(self, d1: date, d2: date) -> int:
        """How many school days lie in [d1, d2] (0 if d2 < d1)."""
        return len(self.school_days(d1, d2)) if d2 >= d1 else 0

    def add_school_days(self, d: date, n: int) -> date:
        """The Nth school day after ``d`` (n = 0: ``d`` itself if a school day, else the next one)."""
        if n < 0:
            raise ValueError("n must be ≥ 0")
        cur = d
        while not self.is_school_day(cur):
            cur = self._next(cur)
        for _ in range(n):
            cur = self._next(cur)
            while not self.is_school_day(cur):
                cur = self._next(cur)
        return cur

    def _next(self, d: date) -> date:
        nxt = d + timedelta(days=1)
        if self.terms and nxt > self.terms[-1].end:
            raise LookupError(f"calendar '{self.key}' has no term after {d}; add the next term's dates")
        return nxt

    def span(self) -> tuple[date, date]:
        """The first and last day this calendar can answer for (its terms, within known years)."""
        last_known = date(max(self.holidays.years), 12, 31)
        return self.terms[0].start, min(self.terms[-1].end, last_known)

    def numbered_days(self) -> list[tuple[date, int]]:
        """(day, ordinal) of every school day in the span: the table the set-based SQL joins."""
        start, end = self.span()
        return [(d, i) for i, d in enumerate(self.school_days(start, end), start=1)]


def streak_on(calendar: SchoolCalendar, opened_on: date, today: date) -> int:
    """Consecutive school days from the first missed day through ``today`` (inclusive)."""
    return calendar.school_days_between(opened_on, today)


# -- the cliff ahead: a term that reaches into a year nobody supplied holidays for ---------------------
WARN_DAYS = 60  # how far ahead a missing holiday list is reported (init, serve, the daily sweep)


@dataclass(frozen=True)
class MissingYear:
    """``calendar``'s term ``term`` reaches into ``year`` (from ``first_day``), which has no holiday list."""

    calendar: str
    year: int
    first_day: date
    term: str = ""

    @property
    def message(self) -> str:
        return (f"{self.year} 年的节假日表尚未提供：校历 {self.calendar} 的学期{self.term and '「' + self.term + '」'}"
                f"自 {self.first_day} 起进入 {self.year} 年 — no holiday list for {self.year}: calendar "
                f"'{self.calendar}' has term days from {self.first_day}")


def missing_holiday_years(calendar: SchoolCalendar, today: date, within_days: int = WARN_DAYS) -> list[MissingYear]:
    """Each year without a holiday list that one of ``calendar``'s terms reaches into between ``today``
    and ``within_days`` later (today itself included: a term already in such a year is reported too)."""
    horizon = today + timedelta(days=within_days)
    found: dict[int, MissingYear] = {}
    for term in calendar.terms:
        start, end = max(term.start, today), min(term.end, horizon)
        for year in range(start.year, end.year + 1):
            if year in calendar.holidays.years or year in found or start > end:
                continue
            found[year] = MissingYear(calendar.key, year, max(start, date(year, 1, 1)), term.label)
    return sorted(found.values(), key=lambda m: m.first_day)


def holiday_list_problems(year: int, holidays: frozenset[date], workdays: frozenset[date]) -> list[str]:
    """What is wrong with a holiday list for ``year`` (empty: nothing): dates of another year, a day that is
    both a holiday and a make-up working day."""
    problems = []
    wrong = sorted(d for d in holidays | workdays if d.year != year)
    if wrong:
        problems.append(f"dates outside {year}: {', '.join(map(str, wrong))} (日期不在 {year} 年内)")
    both = sorted(holidays & workdays)
    if both:
        problems.append(f"both holiday and workday: {', '.join(map(str, both))} (同一天既是节假日又是调休上班日)")
    weekdays = sorted(d for d in workdays if d.weekday() < 5)
    if weekdays:
        problems.append(f"make-up workdays must be a Saturday or Sunday: {', '.join(map(str, weekdays))} "
                        f"(调休上班日应为周六或周日)")
    return problems


MAX_LISTED_DAYS = 400


def parse_day_list(text: str) -> list[date]:
    """Dates as a person types them: one per line or separated by commas, and ranges
    ``2027-02-10~2027-02-16`` (also ``至``, ``..``); at most :data:`MAX_LISTED_DAYS` days."""
    import re
    from datetime import timedelta

    days: list[date] = []
    for part in re.split(r"[\s,，;；、]+", (text or "").strip()):
        if not part:
            continue
        ends = re.split(r"~|～|至|\.\.", part)
        if len(ends) > 2:
            raise ValueError(f"无法识别的日期: '{part[:40]}'")
        try:
            first, last = (date.fromisoformat(e.strip()) for e in (ends[0], ends[-1]))
        except ValueError:
            raise ValueError(f"日期应写成 2027-01-01，区间写成 2027-02-10~2027-02-16: '{part[:40]}'") from None
        if last < first:
            raise ValueError(f"区间结束早于开始: '{part}'")
        if (last - first).days + len(days) >= MAX_LISTED_DAYS:
            raise ValueError(f"日期过多（上限 {MAX_LISTED_DAYS} 天）")
        days += [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return sorted(set(days))


def period_problems(terms: list[Period], breaks: list[Period]) -> list[str]:
    """What is wrong with a calendar's terms and breaks (empty: nothing)."""
    problems = []
    for p in terms + breaks:
        if p.end < p.start:
            problems.append(f"「{p.label}」结束 {p.end} 早于开始 {p.start}")
    ordered = sorted(terms, key=lambda p: p.start)
    for a, b in zip(ordered, ordered[1:]):
        if b.start <= a.end:
            problems.append(f"学期「{a.label}」与「{b.label}」重叠")
    for br in breaks:
        if not any(br.start in t and br.end in t for t in terms):
            problems.append(f"停课「{br.label}」不在任何学期之内")
    if not terms:
        problems.append("至少要有一个学期")
    return problems
