"""Tables of the at-risk watch list (seed 000 §一.3): roster flags, watch entries, their events and duties.

- ``pupil_flags``: one row per (pupil, flag) read from the roster (``source``) since a day;
- ``watch_entries``: a pupil's stay on the watch list, ``since`` … ``until`` (open while NULL), the
  rules that put them there and the named helper (帮扶责任人); one open entry per pupil;
- ``watch_events``: append-only who/when/why of every change to an entry;
- ``watch_duties``: the preventive duties (学业辅导, 资助核查, 心理疏导, 家校联系) with due dates.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, DutyColumns


class PupilFlag(Base):
    __tablename__ = "pupil_flags"
    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"))
    flag: Mapped[str] = mapped_column(String(32))      # learning_difficulty | poor | left_behind | …
    source: Mapped[str] = mapped_column(String(32))    # roster | staff:<id> | user:<name>
    since: Mapped[date] = mapped_column(Date)
    __table_args__ = (UniqueConstraint("pupil_id", "flag"),)


class WatchEntry(Base):
    __tablename__ = "watch_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    since: Mapped[date] = mapped_column(Date)
    until: Mapped[date | None] = mapped_column(Date)
    rules: Mapped[list[Any]] = mapped_column(JSON, default=list)        # [{rule, label, why, numbers}]
    helper_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    policy: Mapped[str] = mapped_column(String(40))                     # name@version the rules came from
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (
        Index("uq_watch_one_open_per_pupil", "pupil_id", unique=True,
              sqlite_where=text("until IS NULL"), postgresql_where=text("until IS NULL")),
        # the watch list's pages in order (0007_queues)
        Index("ix_watch_open_order", "school_id", "class_id", "id",
              sqlite_where=text("until IS NULL"), postgresql_where=text("until IS NULL")),
        # the month outcomes: every entry of a month in pupil order, from the index alone (0018_risk)
        Index("ix_watch_pupil_month", "pupil_id", "since", "until", "school_id"),
    )


class WatchEvent(Base):
    __tablename__ = "watch_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("watch_entries.id"), index=True)
    event: Mapped[str] = mapped_column(String(20))     # added | rules_changed | left | duty_done
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(String(500), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WatchDuty(DutyColumns, Base):
    __tablename__ = "watch_duties"
    entry_id: Mapped[int] = mapped_column(ForeignKey("watch_entries.id"))
    rule_id: Mapped[str] = mapped_column(String(32))
    due_on: Mapped[date] = mapped_column(Date)  # due at the end of that day
    # the act that did it when it was already recorded (the duty_done event of another duty of the same action on
    # the entry, that day or later): store.prevention.watch_credit (0017_search)
    done_event_id: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (UniqueConstraint("entry_id", "rule_id", "action"),
                      Index("ix_watch_duties_undone_due", "due_on", "id",  # the stuck list's watch tab (0007_queues)
                            sqlite_where=text("status IN ('open', 'overdue')"),
                            postgresql_where=text("status IN ('open', 'overdue')")))
