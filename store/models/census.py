"""Tables of the out-of-school census (排查) and of hand-off receipts (送达回证).

- ``census_imports``: one register file as received (its SHA-256 makes a re-import a no-op);
- ``census_rows``: every row of it with what the matching found (the report);
- ``census_cases`` / ``census_events`` / ``census_duties``: the ``not_enrolled`` (失学) track, one
  open case per 身份证号, its append-only history and its persuasion duties;
- ``handoffs``: a paper sent to an outside body, when it was sent, and when and by whom it was received.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, DutyColumns


class CensusImport(Base):
    __tablename__ = "census_imports"
    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(64), default="")  # 村委会 / 户籍 / 公安人口库 …
    census_year: Mapped[int] = mapped_column(Integer)
    reference_date: Mapped[date] = mapped_column(Date)
    imported_by: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(DateTime)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CensusRow(Base):
    """One register row and its outcome: enrolled, not_enrolled, exempted, out_of_age or a problem."""

    __tablename__ = "census_rows"
    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("census_imports.id"), index=True)
    row_no: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(32), default="")
    id_number: Mapped[str] = mapped_column(String(32), default="")  # as written (may be invalid)
    birth_date: Mapped[date | None] = mapped_column(Date)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("jurisdictions.id"))
    village: Mapped[str] = mapped_column(String(64), default="")
    guardian: Mapped[str] = mapped_column(String(32), default="")
    guardian_phone: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(128))
    gender: Mapped[str | None] = mapped_column(String(4))
    outcome: Mapped[str] = mapped_column(String(20))
    problems: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{code, detail}]
    pupil_id: Mapped[int | None] = mapped_column(ForeignKey("pupils.id"))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)  # enrolled at / responsible
    census_case_id: Mapped[int | None] = mapped_column(ForeignKey("census_cases.id"))
    __table_args__ = (UniqueConstraint("import_id", "row_no"),)


class CensusCase(Base):
    """失学 case: a child of school age enrolled nowhere; the responsible school and village persuade."""

    __tablename__ = "census_cases"
    id: Mapped[int] = mapped_column(primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    name: Mapped[str] = mapped_column(String(32))
    gender: Mapped[str | None] = mapped_column(String(4))
    birth_date: Mapped[date] = mapped_column(Date)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("jurisdictions.id"))
    township_id: Mapped[int] = mapped_column(ForeignKey("jurisdictions.id"), index=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)  # the school responsible
    guardian: Mapped[str | None] = mapped_column(String(32))
    guardian_phone: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    policy_name: Mapped[str] = mapped_column(String(32))
    policy_version: Mapped[int] = mapped_column(Integer)
    calendar_key: Mapped[str] = mapped_column(String(32))
    import_id: Mapped[int] = mapped_column(ForeignKey("census_imports.id"))
    opened_on: Mapped[date] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    outcome_reason: Mapped[str | None] = mapped_column(String(255))
    pupil_id: Mapped[int | None] = mapped_column(ForeignKey("pupils.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (
        Index("uq_census_cases_one_open", "id_number", unique=True,
              sqlite_where=text("state = 'not_enrolled'"), postgresql_where=text("state = 'not_enrolled'")),
    )


class CensusEvent(Base):
    __tablename__ = "census_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    census_case_id: Mapped[int] = mapped_column(ForeignKey("census_cases.id"))
    seq: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(String(255), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    __table_args__ = (UniqueConstraint("census_case_id", "seq"),)


class CensusDuty(DutyColumns, Base):
    __tablename__ = "census_duties"
    census_case_id: Mapped[int] = mapped_column(ForeignKey("census_cases.id"))
    label: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("census_case_id", "action"),)


class Handoff(Base):
    """送达回证: a document handed to an outside body, and its acknowledgement of receipt."""

    __tablename__ = "handoffs"
    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    kind: Mapped[str] = mapped_column(String(40))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    census_case_id: Mapped[int | None] = mapped_column(ForeignKey("census_cases.id"), index=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(24))         # body id: village_committee, township, …
    recipient_name: Mapped[str] = mapped_column(String(64))    # 城关镇人民政府, 石门村民委员会
    sent_at: Mapped[datetime] = mapped_column(DateTime)
    due_at: Mapped[datetime] = mapped_column(DateTime)         # receipt expected by (policy: school days)
    received_at: Mapped[datetime | None] = mapped_column(DateTime)
    received_by: Mapped[str | None] = mapped_column(String(64))  # who signed for it (签收人)
    acked_by: Mapped[str | None] = mapped_column(String(64))     # who recorded the receipt
    acked_at: Mapped[datetime | None] = mapped_column(DateTime)
    note: Mapped[str | None] = mapped_column(String(255))
    __table_args__ = (UniqueConstraint("document_id", "recipient"), Index("ix_handoffs_pending", "received_at", "due_at"))
