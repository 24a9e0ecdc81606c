"""SQLAlchemy 2 models of the Baoxue store.

All timestamps are Asia/Shanghai wall-clock time, stored naive (China has one time zone and
no daylight saving; SQLite and PostgreSQL then compare them the same way).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship

from machines.states import OPEN_STATES

OPEN_STATE_SQL = "(" + ", ".join(f"'{s.value}'" for s in sorted(OPEN_STATES, key=lambda s: s.value)) + ")"
UNDONE_SQL = "status IN ('open', 'overdue')"  # a duty not done yet (store.duties.ledger.UNDONE)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


# -- organisation ------------------------------------------------------------------------------
class Jurisdiction(Base):
    """County (县), township (镇/街道) or village (村/社区)."""

    __tablename__ = "jurisdictions"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))  # county | township | village
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("jurisdictions.id"))
    retired_on: Mapped[date | None] = mapped_column(Date)  # left the organisation file: kept for history


class School(Base):
    __tablename__ = "schools"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    township_id: Mapped[int] = mapped_column(ForeignKey("jurisdictions.id"), index=True)
    calendar_key: Mapped[str] = mapped_column(String(32), default="default")
    policy_name: Mapped[str] = mapped_column(String(32), default="default")
    enrolled: Mapped[int] = mapped_column(Integer, default=0)
    stage: Mapped[str | None] = mapped_column(String(16))  # 学段: 小学 | 初中 | 九年一贯制 | 完全中学
    boarding: Mapped[bool] = mapped_column(Boolean, default=False)  # 寄宿制学校
    retired_on: Mapped[date | None] = mapped_column(Date)


class Staff(Base):
    """A named person who may owe a duty: school staff or an official of a jurisdiction."""

    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(32), index=True)
    phone: Mapped[str | None] = mapped_column(String(20))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    jurisdiction_id: Mapped[int | None] = mapped_column(ForeignKey("jurisdictions.id"), index=True)
    office: Mapped[str | None] = mapped_column(String(32))  # 教导处, 政教处, 包村干部… as the policies name them
    retired_on: Mapped[date | None] = mapped_column(Date)


class SchoolClass(Base):
    __tablename__ = "classes"
    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    grade: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(32))
    head_teacher_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    retired_on: Mapped[date | None] = mapped_column(Date)
    __table_args__ = (UniqueConstraint("school_id", "name"),)


class Pupil(Base):
    __tablename__ = "pupils"
    id: Mapped[int] = mapped_column(primary_key=True)
    student_no: Mapped[str] = mapped_column(String(32), unique=True)  # 学籍号
    name: Mapped[str] = mapped_column(String(32))
    id_number: Mapped[str | None] = mapped_column(String(18), unique=True)  # 身份证号, GB 11643 checked
    gender: Mapped[str | None] = mapped_column(String(4))
    birth_date: Mapped[date | None] = mapped_column(Date)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), index=True)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("jurisdictions.id"))
    address: Mapped[str | None] = mapped_column(String(128))  # 现住址
    registered_address: Mapped[str | None] = mapped_column(String(128))  # 户口所在地
    special_groups: Mapped[list[Any]] = mapped_column(JSON, default=list)  # orphan, left_behind, disabled…
    enrolled: Mapped[bool] = mapped_column(Boolean, default=True)
    guardians: Mapped[list["Guardian"]] = relationship(back_populates="pupil", order_by="Guardian.id")
    # the lists' search by name, whole or its beginning (pattern ops: LIKE '王%' on PostgreSQL); it holds the id
    # (SQLite's rowid; INCLUDE on PostgreSQL) so that a prefix matching 10 000 pupils is read from it alone (0017_search)
    __table_args__ = (Index("ix_pupils_name_id", "name", postgresql_ops={"name": "varchar_pattern_ops"},
                            postgresql_include=["id"]),)


class Guardian(Base):
    __tablename__ = "guardians"
    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    relation: Mapped[str] = mapped_column(String(16))  # 父亲, 母亲, 祖父母…
    phone: Mapped[str | None] = mapped_column(String(20))
    pupil: Mapped[Pupil] = relationship(back_populates="guardians")


# -- policies and calendars ----------------------------------------------------------------------
class PolicyVersion(Base):
    """A jurisdiction policy as loaded: the exact text, so a case's rules can always be reread."""

    __tablename__ = "policy_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("name", "version"),)


class SchoolDay(Base):
    """Materialised school calendar: the ordinal of every school day, for set-based streaks."""

    __tablename__ = "school_days"
    calendar_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    __table_args__ = (UniqueConstraint("calendar_key", "seq"),)


# -- the morning check ---------------------------------------------------------------------------
class AttendanceMark(Base):
    __tablename__ = "attendance_marks"
    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))  # present | unexcused | sick_leave | personal_leave | …
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("pupil_id", "day"),)


class LateMark(Base):
    """A mark recorded after its day (补报): the case ledger is brought in line with it by the next
    sweep (``store.cases.late_marks.apply_late_marks``), which notes here what it did, for review."""

    __tablename__ = "late_marks"
    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"))
    day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))  # the pupil's status for the day, "present" if unlisted
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime)  # NULL: not yet applied by a sweep
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))  # the case it changed, if any
    note: Mapped[str] = mapped_column(String(255), default="")
    __table_args__ = (Index("ix_late_marks_applied", "applied_at", "pupil_id"), Index("ix_late_marks_school", "school_id"))


class Submission(Base):
    """One morning-check submission; its content hash makes a resubmission a no-op."""

    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    day: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16))  # web | api | cli | upload | sis
    content_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    submitted_by: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# -- cases ----------------------------------------------------------------------------------------
class Case(Base):
    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    state: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, default=1)  # = seq of the latest event
    policy_name: Mapped[str] = mapped_column(String(32))
    policy_version: Mapped[int] = mapped_column(Integer)
    calendar_key: Mapped[str] = mapped_column(String(32))
    opened_on: Mapped[date] = mapped_column(Date)  # first missed school day (day 1)
    opened_seq: Mapped[int] = mapped_column(Integer)  # its ordinal in school_days: streak = today's seq - this + 1
    closed_on: Mapped[date | None] = mapped_column(Date)  # 台账销号
    reason: Mapped[str] = mapped_column(String(24), default="unknown")  # dropout reason class
    outcome_reason: Mapped[str | None] = mapped_column(String(32))  # excuse / outside reason
    relapse_of: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    # the pupil's special groups (留守, 贫困…), copied when the case opens and kept current by the
    # roster while the case is not closed: the reports count them without joining the pupils
    # (nullable: migration 0002 adds it to older databases)
    special_groups: Mapped[list[Any] | None] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    events: Mapped[list["CaseEvent"]] = relationship(order_by="CaseEvent.seq", viewonly=True)
    duties: Mapped[list["Duty"]] = relationship(order_by="Duty.id", viewonly=True)

    __table_args__ = (
        Index("ix_cases_due", "policy_name", "policy_version", "calendar_key", "state", "opened_seq"),
        Index("ix_cases_school_state", "school_id", "state"),
        # the case list in first-absence order (0007_queues); on PostgreSQL with the pupil and school a search's walk
        # tests (0017_search) — not the state (0019_pgwrites: the walk re-checks it on the rows it keeps)
        Index("ix_cases_opened_keys", "opened_on", "id", postgresql_include=["pupil_id", "school_id"]),
        # a pupil's cases, open or closed, with what the watch list's month outcomes ask of them, read from the index
        # alone (0015_queues; 0019_pgwrites undid 0017's wider ix_cases_pupil_keys: on PostgreSQL every escalation
        # writes an entry of it at a random place, and its width doubled what the raw escalation UPDATE wrote)
        Index("ix_cases_pupil", "pupil_id", "state", "opened_on", "closed_on"),
        Index(
            "uq_cases_one_open_per_pupil", "pupil_id", unique=True,
            sqlite_where=text(f"state IN {OPEN_STATE_SQL}"), postgresql_where=text(f"state IN {OPEN_STATE_SQL}"),
        ),
    )


class CaseEvent(Base):
    """Append-only history: one row per event, written in the transaction that changes the case."""

    __tablename__ = "case_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    seq: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(64))  # "system" or "staff:<id>" or a user name
    at: Mapped[datetime] = mapped_column(DateTime)  # when it happened (effective time)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)  # when the store wrote it
    reason: Mapped[str] = mapped_column(String(255), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    __table_args__ = (
        UniqueConstraint("case_id", "seq"),
        # a submission's key, once per case; system events have none, and write no entry (0016_sweep)
        Index("uq_case_events_idempotency", "case_id", "idempotency_key", unique=True,
              sqlite_where=text("idempotency_key IS NOT NULL"), postgresql_where=text("idempotency_key IS NOT NULL")),
        # the reports' "events of a kind in a period" (store.reporting.reports.ledger_figures); case_id makes it covering
        Index("ix_case_events_event_at", "event", "at", "case_id"),
    )


class DutyColumns:
    """The columns every kind of duty shares (case ladder, census, prevention, watch list): a named
    person's action with a role, a status and when it was raised and done. Each table adds its due
    time (``due_at``, or ``due_on`` for the watch list) and what the duty belongs to;
    :mod:`store.duties.ledger` reads all four as one list."""

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | overdue | done | cancelled
    created_at: Mapped[datetime] = mapped_column(DateTime)
    done_at: Mapped[datetime | None] = mapped_column(DateTime)

    @declared_attr
    def owner_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("staff.id"), index=True)


class Duty(DutyColumns, Base):
    """A named person's action with a due time (the SLA timer)."""

    __tablename__ = "duties"
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))  # indexed by UNIQUE(case_id, step, action)
    step: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime] = mapped_column(DateTime)
    done_late: Mapped[bool] = mapped_column(Boolean, default=False)
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime)
    done_seq: Mapped[int | None] = mapped_column(Integer)  # the case event (seq) that did it (store.cases.credit)
    __table_args__ = (Index("ix_duties_status_due", "status", "due_at"), UniqueConstraint("case_id", "step", "action"),
                      # the stuck list and the case list's "next deadline", in due order (0007_queues)
                      Index("ix_duties_undone_due", "due_at", "id", sqlite_where=text(UNDONE_SQL),
                            postgresql_where=text(UNDONE_SQL)),
                      # a case's duties not done, by due time: a township's stuck list, a case's next deadline (0015_queues)
                      Index("ix_duties_undone_case", "case_id", "due_at", "id", sqlite_where=text(UNDONE_SQL),
                            postgresql_where=text(UNDONE_SQL)))


class Helper(Base):
    """三帮一: the named helpers (帮扶责任人) of a case."""

    __tablename__ = "helpers"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(32))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    event_seq: Mapped[int] = mapped_column(Integer)


class DocumentRequest(Base):
    """A document a step or action requires, queued in the same transaction as the event."""

    __tablename__ = "document_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))  # indexed by UNIQUE(case_id, kind, event_seq)
    kind: Mapped[str] = mapped_column(String(40))
    event_seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default="queued")  # queued | rendered | failed
    requested_at: Mapped[datetime] = mapped_column(DateTime)
    document_id: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)  # the last failure (kept while a retry waits)
    # a render that failed transiently (disk full…) waits until next_attempt_at (documents/retry.py)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("case_id", "kind", "event_seq"), Index("ix_docreq_status", "status", "id"))


class PolicyMigration(Base):
    """An explicit, logged move of open cases to a new policy version."""

    __tablename__ = "policy_migrations"
    id: Mapped[int] = mapped_column(primary_key=True)
    policy_name: Mapped[str] = mapped_column(String(32))
    from_version: Mapped[int] = mapped_column(Integer)
    to_version: Mapped[int] = mapped_column(Integer)
    cases_moved: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(DateTime)
