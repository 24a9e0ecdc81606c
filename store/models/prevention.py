"""Tables of prevention work outside a dropout case: boarders' gate log, truancy tiers, their duties.

* ``boarders``          who boards (住校生), one row per pupil.
* ``gate_movements``    每次出校/返校: approval (who, when), who fetched the pupil, the due-back time.
* ``gate_archives``     the term-end archive of a school's gate log (学期末存档备查).
* ``truancy_tiers``     the n-th truancy of a pupil's school year and the tier it reached;
                        UNIQUE(pupil, school_year, occurrence) makes the daily rule idempotent.
* ``prevention_duties`` a named person's action with a due time that belongs to no case: a gate
                        alert for the head teacher, a truancy tier's action. UNIQUE(source, kind,
                        ref_id): one duty per alert or tier row, however often the rules run.
* ``prevention_events`` append-only history of all of the above (who, when, why).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, DutyColumns


class Boarder(Base):
    __tablename__ = "boarders"
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"), primary_key=True)
    dorm: Mapped[str | None] = mapped_column(String(32))      # 宿舍
    since: Mapped[date] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class GateMovement(Base):
    """One exit of a boarding pupil and (once back) the return."""

    __tablename__ = "gate_movements"
    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"), index=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    out_at: Mapped[datetime] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(String(64), default="")
    approved: Mapped[bool] = mapped_column(Boolean, default=False)     # 班主任签字
    approved_by: Mapped[str | None] = mapped_column(String(32))
    approver_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime)
    fetched_by: Mapped[str | None] = mapped_column(String(32))         # 接送人
    fetched_relation: Mapped[str | None] = mapped_column(String(16))
    due_back_at: Mapped[datetime | None] = mapped_column(DateTime)
    in_at: Mapped[datetime | None] = mapped_column(DateTime)
    returned_with: Mapped[str | None] = mapped_column(String(32))
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    archive_id: Mapped[int | None] = mapped_column(ForeignKey("gate_archives.id"))
    __table_args__ = (Index("ix_gate_school_out", "school_id", "out_at"), Index("ix_gate_away", "in_at", "due_back_at"))


class GateArchive(Base):
    __tablename__ = "gate_archives"
    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    term: Mapped[str] = mapped_column(String(40))
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    movements: Mapped[int] = mapped_column(Integer)
    alerts: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    archived_at: Mapped[datetime] = mapped_column(DateTime)
    partial: Mapped[bool] = mapped_column(Boolean, default=False)  # archived before the term ended
    __table_args__ = (UniqueConstraint("school_id", "term", "last_day"),)


class PreventionDuty(DutyColumns, Base):
    __tablename__ = "prevention_duties"
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"), index=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    source: Mapped[str] = mapped_column(String(16))      # gate | truancy
    kind: Mapped[str] = mapped_column(String(24))        # unapproved_exit | late_return | tier
    ref_id: Mapped[int] = mapped_column(Integer)         # gate_movements.id | truancy_tiers.id
    label: Mapped[str] = mapped_column(String(128))
    due_at: Mapped[datetime] = mapped_column(DateTime)
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime)
    done_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(String(255), default="")
    __table_args__ = (UniqueConstraint("source", "kind", "ref_id"), Index("ix_prevention_duties_status_due", "status", "due_at"))


class TruancyTierRecord(Base):
    __tablename__ = "truancy_tiers"
    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    school_year: Mapped[int] = mapped_column(Integer)
    occurrence: Mapped[int] = mapped_column(Integer)     # the n-th truancy of the school year
    tier: Mapped[int] = mapped_column(Integer)
    first_day: Mapped[date] = mapped_column(Date)        # the truancy's first day
    policy: Mapped[str] = mapped_column(String(40))      # name@version whose tiers applied
    created_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("pupil_id", "school_year", "occurrence"),)


class PreventionEvent(Base):
    __tablename__ = "prevention_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"), index=True)
    subject: Mapped[str] = mapped_column(String(16))     # boarder | gate | truancy | duty
    ref_id: Mapped[int | None] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(String(255), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
