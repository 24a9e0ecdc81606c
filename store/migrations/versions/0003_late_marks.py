"""late_marks: marks recorded after their day, applied by the next sweep and kept for review.

Revision ID: 0003_late_marks
Revises: 0002
Create Date: 2026-12-02

A database made by the baseline since the table joined the models already has it: nothing to do.
Downgrade drops it.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_late_marks"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("late_marks"):
        return
    op.create_table(
        "late_marks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("school_id", sa.Integer(), sa.ForeignKey("schools.id"), nullable=False),
        sa.Column("pupil_id", sa.Integer(), sa.ForeignKey("pupils.id"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("submission_id", sa.Integer(), sa.ForeignKey("submissions.id"), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("applied_at", sa.DateTime(), nullable=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=True),
        sa.Column("note", sa.String(255), nullable=False),
    )
    op.create_index("ix_late_marks_applied", "late_marks", ["applied_at", "pupil_id"])
    op.create_index("ix_late_marks_school", "late_marks", ["school_id"])


def downgrade() -> None:
    op.drop_index("ix_late_marks_school", table_name="late_marks")
    op.drop_index("ix_late_marks_applied", table_name="late_marks")
    op.drop_table("late_marks")
