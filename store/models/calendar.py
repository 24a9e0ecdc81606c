"""The operator's duty to supply a missing holiday list before a school calendar runs into its year.

``calendar_duties``: one row per (calendar, year) a term reaches into within
:data:`machines.calendar.WARN_DAYS` days with no holiday list (``store.calendar_watch``). It is a duty like
the others (:class:`store.models.DutyColumns`; role ``operator``, no named staff member) and
:mod:`store.duties.ledger` lists it with them (kind ``calendar``). It is done — by the system, when the
list has been supplied and the check no longer finds the year — never deleted.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, DateTime, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, DutyColumns


class CalendarDuty(DutyColumns, Base):
    __tablename__ = "calendar_duties"
    calendar_key: Mapped[str] = mapped_column(String(32))
    year: Mapped[int] = mapped_column(Integer)
    first_day: Mapped[date] = mapped_column(Date)          # the first term day in the year without a list
    schools: Mapped[list] = mapped_column(JSON, default=list)  # codes of the schools on this calendar
    label: Mapped[str] = mapped_column(String(128))
    due_at: Mapped[datetime] = mapped_column(DateTime)
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime)
    done_by: Mapped[str | None] = mapped_column(String(64))
    __table_args__ = (UniqueConstraint("calendar_key", "year"), Index("ix_calendar_duties_status_due", "status", "due_at"))
