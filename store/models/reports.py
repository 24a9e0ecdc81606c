"""Models of the reporting calendar: filed periodic reports and the quarterly spot checks.

A *filing* is one report of one level (school, township, county) for one period, written once:
its figures are frozen as they were read from the ledger at filing time, with the due date and
whether it came late (DOMAIN.md §4, §5: late reports are a ground for accountability).
A *spot check* (季查) is one quarter's random draw, sealed: the seed is recorded after the draw
with a hash of the sample, so anyone can redraw it from the seed and the roster.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base


class ReportFiling(Base):
    """月报 / 学期初·学期末报告 of one school, township or the county for one period."""

    __tablename__ = "report_filings"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))        # monthly | term_start | term_end
    level: Mapped[str] = mapped_column(String(16))       # school | township | county
    scope_code: Mapped[str] = mapped_column(String(32))  # School.code or Jurisdiction.code
    scope_name: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(16))      # "2026-11", "2026-2027-1"
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    filed_at: Mapped[datetime] = mapped_column(DateTime)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # fmt → path under the archive
    document_id: Mapped[int | None] = mapped_column(Integer)           # documents.Document, once rendered
    actor: Mapped[str] = mapped_column(String(64))
    __table_args__ = (UniqueConstraint("kind", "level", "scope_code", "period"),)


class SpotCheck(Base):
    """季度随机抽查: which schools and classes were drawn, from which seed, and what the ledger said."""

    __tablename__ = "spot_checks"
    id: Mapped[int] = mapped_column(primary_key=True)
    quarter: Mapped[str] = mapped_column(String(8), unique=True)  # "2026Q4"
    county_code: Mapped[str] = mapped_column(String(32))
    drawn_at: Mapped[datetime] = mapped_column(DateTime)
    seed: Mapped[int] = mapped_column(Integer)                      # recorded after the draw (sealed)
    sample_sha256: Mapped[str] = mapped_column(String(64))
    fraction: Mapped[float] = mapped_column()
    sample: Mapped[dict[str, Any]] = mapped_column(JSON)            # {"schools": [...], "classes": [...]}
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    document_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(64))
