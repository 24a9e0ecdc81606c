"""intake: staged_files, a morning-check file as received, named by a morning_check run (issue 20).

Revision ID: 0014_intake
Revises: 0013_weekly
Create Date: 2026-12-02

A database made by the baseline since this table joined the models already has it (0001 creates
the models' schema): nothing to do.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_intake"
down_revision: str | Sequence[str] | None = "0013_weekly"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if "staged_files" not in set(sa.inspect(op.get_bind()).get_table_names()):
        op.create_table(
            "staged_files",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("filename", sa.String(255), nullable=False),
            sa.Column("size", sa.Integer(), nullable=False),
            sa.Column("body", sa.LargeBinary(), nullable=False),
            sa.Column("created_by", sa.String(64), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
        )
        op.create_index("ix_staged_files_sha256", "staged_files", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_staged_files_sha256", table_name="staged_files")
    op.drop_table("staged_files")
