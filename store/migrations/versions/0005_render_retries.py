"""document_requests.attempts and next_attempt_at: a render that failed transiently is retried.

Revision ID: 0005_render_retries
Revises: 0004
Create Date: 2026-12-02

A database made by the baseline since these columns joined the models already has them (0001
creates the models' schema): nothing to do. An older one gets them; its requests start at 0
attempts, due now. Downgrade leaves them: a database at 0001 made today has them too.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_render_retries"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("document_requests")}
    if "attempts" not in have:
        op.add_column("document_requests", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    if "next_attempt_at" not in have:
        op.add_column("document_requests", sa.Column("next_attempt_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    pass
