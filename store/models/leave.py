"""请假、免学/缓学、转学 awaiting their approver; per-lesson absences; 放学未回家 reports.

A :class:`LeaveRequest` is both the application and the approver's duty (the duty columns of
:class:`store.models.DutyColumns`: ``status`` open → overdue → done): the ledger lists it as an
``approval`` duty (store.duties.ledger). ``decision`` is pending | approved | refused; only an
approved request excuses an absence (store.cases.leave).
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, DutyColumns


class LeaveRequest(DutyColumns, Base):
    __tablename__ = "leave_requests"
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    kind: Mapped[str] = mapped_column(String(20))            # sick_leave | personal_leave | exemption | transfer
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    days: Mapped[int] = mapped_column(Integer)               # school days asked for (routes the approver)
    source: Mapped[str] = mapped_column(String(8))           # mark | web | api | cli
    requested_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(255), default="")
    due_at: Mapped[datetime] = mapped_column(DateTime)       # the approver's deadline; a pending leave holds until then
    decision: Mapped[str] = mapped_column(String(12), default="pending")  # pending | approved | refused
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decision_note: Mapped[str] = mapped_column(String(255), default="")
    counted_at: Mapped[datetime | None] = mapped_column(DateTime)  # when a sweep counted its days as unexcused
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))  # the case it opened or excused
    to_school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"))  # 转入 school in the county
    to_school_name: Mapped[str | None] = mapped_column(String(64))               # or outside it
    cert_path: Mapped[str | None] = mapped_column(String(255))        # certificate / receipt, under the archive
    cert_sha256: Mapped[str | None] = mapped_column(String(64))
    cert_media_type: Mapped[str | None] = mapped_column(String(64))
    cert_filename: Mapped[str | None] = mapped_column(String(128))
    document_id: Mapped[int | None] = mapped_column(Integer)  # 免学/缓学 decision (documents archive)
    __table_args__ = (Index("ix_leave_requests_pupil", "pupil_id", "first_day"),
                      Index("ix_leave_requests_status_due", "status", "due_at"))


class LessonAbsence(Base):
    """每节课前清点 (seed 000 §二.2): a subject teacher found a pupil missing at a lesson."""

    __tablename__ = "lesson_absences"
    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    day: Mapped[date] = mapped_column(Date)
    lesson: Mapped[int] = mapped_column(Integer)             # 第几节
    subject: Mapped[str] = mapped_column(String(32), default="")
    reported_by: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime] = mapped_column(DateTime)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    note: Mapped[str] = mapped_column(String(255), default="")
    __table_args__ = (UniqueConstraint("pupil_id", "day", "lesson"),)


class AfterSchoolReport(Base):
    """放学未回家 (seed 000 §二.4): a parent reports the pupil did not come home; the school's search
    is a same-day prevention duty (``prevention_duties``, source ``after_school``)."""

    __tablename__ = "after_school_reports"
    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"), index=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    day: Mapped[date] = mapped_column(Date)
    reported_at: Mapped[datetime] = mapped_column(DateTime)
    parent_name: Mapped[str] = mapped_column(String(32), default="")
    parent_phone: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(String(255), default="")
    recorded_by: Mapped[str] = mapped_column(String(64))
    duty_id: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (UniqueConstraint("pupil_id", "day"),)
