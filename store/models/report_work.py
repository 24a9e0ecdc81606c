"""Reports as the people's work (issue 17 items 1–3): the duty to submit, the submitted versions,
the weekly class count (周查表) and the 季查 results.

- ``report_duties``: a named person's duty to submit one report (月报 / 学期初·学期末报告 of a school,
  township or the county) or one class's weekly count, with its due time from the policy
  (``[reports]``). It is a duty like the others (:class:`store.models.DutyColumns`) and
  :mod:`store.duties.ledger` lists it (kind ``report``): a missing submission becomes an overdue duty
  of its owner; a late one is done with ``done_late``.
- ``report_versions``: what the school's 填表人 and 负责人 wrote and signed (存在问题, 下一步) with the
  figures as they stood when submitted (frozen). A draft is version 0; every submission is a new
  version (a correction never overwrites the one before).
- ``weekly_counts``: one head teacher's count of one class on the policy's weekday (在册, 在校, 缺勤,
  辍学), next to what the ledger said (pre-filled); a correction is a new version.
- ``spot_check_results``: the inspector's findings in one sampled class of a quarter's 季查; a
  discrepancy opens a reconciliation item (its differences, resolved with an explanation).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, DutyColumns


class ReportDuty(DutyColumns, Base):
    """The duty to submit one report (``action`` submit_report) or one weekly count (submit_weekly_count)."""

    __tablename__ = "report_duties"
    report_kind: Mapped[str] = mapped_column(String(16))   # monthly | term_start | term_end | weekly_count
    level: Mapped[str] = mapped_column(String(16))         # school | township | county | class
    scope_code: Mapped[str] = mapped_column(String(32))    # School.code, Jurisdiction.code or the class id
    scope_name: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(16))        # "2026-11", "20260901", the week's day "2026-11-23"
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    label: Mapped[str] = mapped_column(String(128))
    due_at: Mapped[datetime] = mapped_column(DateTime)
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime)
    done_late: Mapped[bool] = mapped_column(Boolean, default=False)
    done_by: Mapped[str | None] = mapped_column(String(64))
    # the weekly count that did it when it was on record before the duty was opened (weekly_counts.id):
    # store.reporting.report_credit (0017_search)
    done_ref_id: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (UniqueConstraint("report_kind", "level", "scope_code", "period"),
                      Index("ix_report_duties_status_due", "status", "due_at"))


class ReportVersion(Base):
    """One version of a report of one scope and period: the draft (0) and each submission (1, 2…)."""

    __tablename__ = "report_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    report_kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    scope_code: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)          # 0: the draft (editable); ≥ 1: submitted (frozen)
    status: Mapped[str] = mapped_column(String(12))        # draft | submitted
    problems: Mapped[str] = mapped_column(Text, default="")     # 存在问题
    next_steps: Mapped[str] = mapped_column(Text, default="")   # 下一步工作安排
    prepared_by: Mapped[str] = mapped_column(String(32), default="")  # 填表人
    approved_by: Mapped[str] = mapped_column(String(32), default="")  # 负责人
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # frozen at submission
    due_on: Mapped[date] = mapped_column(Date)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(255), default="")  # why a correction was made
    created_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("report_kind", "level", "scope_code", "period", "version"),)


class WeeklyCount(Base):
    """周查表: one class's count on the policy's weekday, as its head teacher submitted it."""

    __tablename__ = "weekly_counts"
    id: Mapped[int] = mapped_column(primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    day: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, default=1)
    enrolled: Mapped[int] = mapped_column(Integer)    # 在册
    present: Mapped[int] = mapped_column(Integer)     # 在校
    absent: Mapped[int] = mapped_column(Integer)      # 缺勤
    dropouts: Mapped[int] = mapped_column(Integer)    # 辍学
    collective_visits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # 本周集体家访 (0013_weekly)
    ledger: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the pre-filled figures
    note: Mapped[str] = mapped_column(String(255), default="")
    submitted_by: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column(DateTime)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (UniqueConstraint("class_id", "day", "version"), Index("ix_weekly_counts_day", "day", "school_id"))


class SpotCheckResult(Base):
    """季查结果: what the inspector found in one sampled class, signed."""

    __tablename__ = "spot_check_results"
    id: Mapped[int] = mapped_column(primary_key=True)
    spot_check_id: Mapped[int] = mapped_column(ForeignKey("spot_checks.id"))
    quarter: Mapped[str] = mapped_column(String(8))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    enrolled: Mapped[int] = mapped_column(Integer)
    present: Mapped[int] = mapped_column(Integer)
    absent: Mapped[int] = mapped_column(Integer)
    discrepancies: Mapped[int] = mapped_column(Integer, default=0)   # pupils whose record differs from the ledger
    findings: Mapped[str] = mapped_column(Text, default="")
    ledger: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the sealed draw's row for the class
    inspector: Mapped[str] = mapped_column(String(32))      # signed by
    inspector_role: Mapped[str] = mapped_column(String(32))  # township | county
    signed_at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(64))
    # the reconciliation item a discrepancy opens (store.reporting.reconcile.compare against the class's ledger):
    # open until the school explains and the office resolves it; its duty is a ``report_duties`` row
    differences: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(12), default="consistent")  # consistent | open | resolved
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    explanation: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (UniqueConstraint("spot_check_id", "class_id"),)
