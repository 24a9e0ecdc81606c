"""Accountability records (seed 001 责任追究制度, seed 003 班主任控辍保学责任书, seed 000 §一.1).

- ``care_chains``: each pupil's 包保 chain — one named person per role of the policy's
  ``accountability.chain_roles`` (班主任, 校领导, 乡镇干部, 村干部); a member who is a staff member owns the
  pupil's duties of that role (:func:`store.accountability.chain.route_to_chain`).
- ``interviews``: a 约谈 — who, with whom, when, about what, the rectification items and deadline, and
  the outcome once recorded. ``talk_duties``: its follow-up (kind ``talk`` of the duty ledger).
- ``pledges``: the yearly 责任书 of one person with the chain's pupils, rendered and then signed.
  ``pledge_duties``: a signature still missing (kind ``pledge`` of the duty ledger).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, DutyColumns


class CareChainMember(Base):
    __tablename__ = "care_chains"
    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"))  # indexed by UNIQUE(pupil_id, role)
    role: Mapped[str] = mapped_column(String(32))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    person_name: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(12))          # roster | page | cli
    assigned_by: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("pupil_id", "role"),)


class Interview(Base):
    __tablename__ = "interviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # the submission's key: a resubmission records nothing new
    level: Mapped[str] = mapped_column(String(12))             # township | county
    interviewer_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    interviewer: Mapped[str] = mapped_column(String(32))
    interviewee: Mapped[str] = mapped_column(String(32))
    interviewee_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    interviewee_role: Mapped[str | None] = mapped_column(String(32))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    held_at: Mapped[datetime] = mapped_column(DateTime)
    subject: Mapped[str] = mapped_column(String(255))
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)   # accountability keys it is about
    items: Mapped[list[Any]] = mapped_column(JSON, default=list)      # rectification items (整改事项)
    deadline: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | rectified | not_rectified
    outcome: Mapped[str | None] = mapped_column(Text)
    outcome_at: Mapped[datetime | None] = mapped_column(DateTime)
    outcome_by: Mapped[str | None] = mapped_column(String(64))
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)


class TalkDuty(DutyColumns, Base):
    __tablename__ = "talk_duties"
    interview_id: Mapped[int] = mapped_column(ForeignKey("interviews.id"), unique=True)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"))
    label: Mapped[str] = mapped_column(String(128))
    due_at: Mapped[datetime] = mapped_column(DateTime)
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime)
    done_by: Mapped[str | None] = mapped_column(String(64))
    __table_args__ = (Index("ix_talk_duties_status_due", "status", "due_at"),)


class Pledge(Base):
    __tablename__ = "pledges"
    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer)                 # the school year it starts (2026 = 2026–2027)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    role: Mapped[str] = mapped_column(String(32))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    title: Mapped[str] = mapped_column(String(64))
    pupil_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # fmt → archive path
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    signed_at: Mapped[datetime | None] = mapped_column(DateTime)
    signed_recorded_by: Mapped[str | None] = mapped_column(String(64))
    __table_args__ = (UniqueConstraint("year", "staff_id"),)


class PledgeDuty(DutyColumns, Base):
    __tablename__ = "pledge_duties"
    pledge_id: Mapped[int] = mapped_column(ForeignKey("pledges.id"), unique=True)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"))
    label: Mapped[str] = mapped_column(String(128))
    due_at: Mapped[datetime] = mapped_column(DateTime)
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime)
    done_by: Mapped[str | None] = mapped_column(String(64))
    __table_args__ = (Index("ix_pledge_duties_status_due", "status", "due_at"),)
