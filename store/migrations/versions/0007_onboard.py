"""onboarding: the organisation a county imports (retired rows kept, school stage and boarding,
staff offices, the pupil's 户口所在地).

Revision ID: 0007_onboard
Revises: 0006_attachments
Create Date: 2026-12-02

A database made by the baseline since these columns joined the models already has them (0001 creates
the models' schema): each column is added only where it is missing.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_onboard"
down_revision: str | Sequence[str] | None = "0006_attachments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "jurisdictions": [sa.Column("retired_on", sa.Date(), nullable=True)],
    "schools": [sa.Column("stage", sa.String(16), nullable=True),
                sa.Column("boarding", sa.Boolean(), nullable=False, server_default=sa.false()),
                sa.Column("retired_on", sa.Date(), nullable=True)],
    "staff": [sa.Column("office", sa.String(32), nullable=True),
              sa.Column("retired_on", sa.Date(), nullable=True)],
    "classes": [sa.Column("retired_on", sa.Date(), nullable=True)],
    "pupils": [sa.Column("registered_address", sa.String(128), nullable=True)],
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table, columns in COLUMNS.items():
        have = {c["name"] for c in inspector.get_columns(table)}
        missing = [c for c in columns if c.name not in have]
        if not missing:
            continue
        with op.batch_alter_table(table) as batch:
            for column in missing:
                batch.add_column(column)
        if table == "schools" and any(c.name == "boarding" for c in missing):
            with op.batch_alter_table(table) as batch:
                batch.alter_column("boarding", server_default=None)


def downgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column.name)
