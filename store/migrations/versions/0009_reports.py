"""reports as the people's work: report duties, submitted report versions, weekly counts, 季查 results.

Revision ID: 0009_reports
Revises: 0008_accountability
Create Date: 2026-12-02

A database made by the baseline since these tables joined the models already has them (0001 creates
the models' schema): nothing to do. An older one gets the tables, exactly as the models define them.
"""
from __future__ import annotations

from typing import Sequence

from alembic import op

revision: str = "0009_reports"
down_revision: str | Sequence[str] | None = "0008_accountability"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("report_duties", "report_versions", "weekly_counts", "spot_check_results")


def upgrade() -> None:
    from store.models import report_work as m

    for model in (m.ReportDuty, m.ReportVersion, m.WeeklyCount, m.SpotCheckResult):
        model.__table__.create(bind=op.get_bind(), checkfirst=True)


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
