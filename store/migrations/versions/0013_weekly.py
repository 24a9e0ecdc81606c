"""weekly: the 周查表 counts the week's collective visits (seed 002: 集体家访计入周查表).

Revision ID: 0013_weekly
Revises: 0012_leave
Create Date: 2026-12-02

A database made by the baseline since the column joined the models already has it (0001 creates the
models' schema): nothing to do.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_weekly"
down_revision: str | Sequence[str] | None = "0012_leave"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("weekly_counts")}
    if "collective_visits" not in columns:
        op.add_column("weekly_counts", sa.Column("collective_visits", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("weekly_counts", "collective_visits")
