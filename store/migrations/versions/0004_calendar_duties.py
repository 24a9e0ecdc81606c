"""calendar_duties: the operator's duty to supply a year's holiday list before a term runs into it.

Revision ID: 0004
Revises: 0003_late_marks
Create Date: 2026-12-02

A database made by the baseline since the table joined the models already has it (0001 creates the
models' schema): nothing to do. An older one gets the table.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003_late_marks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from store.models.calendar import CalendarDuty

    CalendarDuty.__table__.create(bind=op.get_bind(), checkfirst=True)


def downgrade() -> None:
    pass
