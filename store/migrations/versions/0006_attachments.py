"""attachments: files uploaded to a case (photos, PDF), referenced from payloads by id only.

Revision ID: 0006_attachments
Revises: 0005_render_retries
Create Date: 2026-12-02

A database made by the baseline since this table joined the models already has it (0001 creates
the models' schema): nothing to do.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_attachments"
down_revision: str | Sequence[str] | None = "0005_render_retries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if "attachments" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("uploaded_by", sa.String(64), nullable=False),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("filename", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_attachments_case", "attachments", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_attachments_case", table_name="attachments")
    op.drop_table("attachments")
