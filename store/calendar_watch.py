"""Which schools' terms run, within :data:`machines.calendar.WARN_DAYS` days, into a year without a holiday
list — and the operator's duty to supply it (``calendar_duties``, listed by :mod:`store.duties.ledger`).

`baoxue init`, `baoxue serve`, `baoxue policy check` and the daily sweep ask :func:`calendar_warnings`;
the sweep also keeps the duties in step with it (:func:`sync_calendar_duties`): a new missing year raises
one, a year whose list has arrived closes it.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.calendar import WARN_DAYS, MissingYear, SchoolCalendar, missing_holiday_years

from store.models.calendar import CalendarDuty
from store.duties.ledger import mark_overdue
from store.models import School

DUTY_LEAD = timedelta(days=21)  # the list is due three weeks before the first term day of its year
SYSTEM = "system:calendar_check"


def calendar_warnings(session: Session, calendars: dict[str, SchoolCalendar], today: date,
                      within_days: int = WARN_DAYS) -> list[dict[str, Any]]:
    """One entry per (calendar, missing year) that some school's term reaches into within ``within_days``
    of ``today``: the calendar, the year, the first term day in it, the schools (code, name) and a message."""
    by_calendar: dict[str, list[dict[str, str]]] = {}
    for code, name, key in session.execute(select(School.code, School.name, School.calendar_key).order_by(School.code)):
        by_calendar.setdefault(key, []).append({"code": code, "name": name})
    out = []
    for key, schools in sorted(by_calendar.items()):
        if key not in calendars:
            continue
        for missing in missing_holiday_years(calendars[key], today, within_days):
            out.append(warning_row(missing, schools))
    return out


def warning_row(missing: MissingYear, schools: list[dict[str, str]]) -> dict[str, Any]:
    names = "、".join(s["name"] for s in schools[:5]) + (f" 等 {len(schools)} 所" if len(schools) > 5 else "")
    return {"calendar": missing.calendar, "year": missing.year, "first_day": missing.first_day, "term": missing.term,
            "schools": schools, "message": f"{missing.message}（{len(schools)} 所学校 schools: {names}）"}


def sync_calendar_duties(session: Session, warnings: list[dict[str, Any]], now: datetime) -> dict[str, list[int]]:
    """An open operator duty for every warning (one per calendar and year, however often this runs), the open
    duties whose year is no longer missing done, those past due overdue. Returns the ids raised and closed now."""
    wanted = {(w["calendar"], w["year"]): w for w in warnings}
    rows = {(d.calendar_key, d.year): d for d in session.scalars(select(CalendarDuty))}
    raised, closed = [], []
    for key, w in wanted.items():
        if key in rows:
            duty = rows[key]
            if duty.status == "done":  # supplied once, missing again (the file was removed): owed again
                duty.status, duty.done_at, duty.done_by = "open", None, None
                raised.append(duty.id)
            continue
        duty = CalendarDuty(
            action="supply_holiday_list", role="operator", status="open", created_at=now, calendar_key=w["calendar"],
            year=w["year"], first_day=w["first_day"], schools=[s["code"] for s in w["schools"]],
            label=f"补充 {w['year']} 年节假日表 holidays-{w['year']}.toml（校历 {w['calendar']}）"[:128],
            due_at=datetime.combine(w["first_day"] - DUTY_LEAD, time(17, 0)))
        session.add(duty)
        session.flush()
        raised.append(duty.id)
    for key, duty in rows.items():
        if key not in wanted and duty.status in ("open", "overdue"):
            duty.status, duty.done_at, duty.done_by = "done", now, SYSTEM
            closed.append(duty.id)
    session.flush()
    mark_overdue(session, now, kinds=("calendar",))
    return {"raised": raised, "closed": closed}


def one_line(w: dict[str, Any]) -> str:
    """The warning as the command line prints it."""
    return f"注意 warning: {w['message']}；请提供 holidays-{w['year']}.toml 后运行 baoxue init"


def review(session: Session, calendars: dict[str, SchoolCalendar], now: datetime) -> list[dict[str, Any]]:
    """The warnings at ``now`` with the operator's duties kept in step with them (init, serve, the sweep)."""
    warnings = calendar_warnings(session, calendars, now.date())
    sync_calendar_duties(session, warnings, now)
    return warnings
