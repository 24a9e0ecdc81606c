"""Tables of the reconciliation (seed 001 grounds 8–9: 底数不清, 瞒报, 弄虚作假).

A school's *submitted* monthly figures (what the school says) are kept apart from the filing read
off the ledger (``report_filings``). Each submission carries its latest comparison with the ledger
(``differences``, with the cases behind every difference) and, once reviewed, who accepted it,
when, and the explanation that acceptance required when open cases were hidden.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base


class SubmittedReport(Base):
    __tablename__ = "submitted_reports"
    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    period: Mapped[str] = mapped_column(String(16))            # "2026-11"
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)      # dropouts, out_of_school, opened, returned…
    submitted_by: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(12), default="submitted")  # submitted | accepted
    reconciled_at: Mapped[datetime | None] = mapped_column(DateTime)
    differences: Mapped[list[Any]] = mapped_column(JSON, default=list)    # [{field, submitted, ledger, diff, cases}]
    hides_open_cases: Mapped[bool] = mapped_column(Boolean, default=False)
    accepted_by: Mapped[str | None] = mapped_column(String(64))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime)
    explanation: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)   # a resubmission before acceptance raises it
    __table_args__ = (UniqueConstraint("school_id", "period"),)
