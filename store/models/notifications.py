"""Models of the notification outbox and the accountability record (责任追究记录, DOMAIN.md §5).

The outbox is the one place a reminder exists before any channel sends it: a row per
(duty, kind) — its ``key`` is unique, so a duty is reminded once however often the sweep runs.
The accountability record keeps the evidence — who missed which deadline on which case, or
which level filed its report late — and decides nothing.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base


class Notification(Base):
    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)      # "duty:12:overdue", "report:3:late"
    kind: Mapped[str] = mapped_column(String(24))                   # duty_reminder | duty_overdue | report_late
    channel: Mapped[str] = mapped_column(String(24), default="outbox")
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    role: Mapped[str | None] = mapped_column(String(32))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    duty_id: Mapped[int | None] = mapped_column(ForeignKey("duties.id"))
    subject: Mapped[str] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text)                          # no full names or ID numbers
    status: Mapped[str] = mapped_column(String(12), default="queued")  # queued | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("ix_notifications_status", "status", "id"),)


class AccountabilityEntry(Base):
    """One fact for 责任追究: a missed duty deadline or a late periodic report."""

    __tablename__ = "accountability_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)       # "duty:12", "report:3"
    ground: Mapped[str] = mapped_column(String(32))                 # no_timely_action | late_report
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    role: Mapped[str | None] = mapped_column(String(32))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    duty_id: Mapped[int | None] = mapped_column(ForeignKey("duties.id"))
    report_filing_id: Mapped[int | None] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
