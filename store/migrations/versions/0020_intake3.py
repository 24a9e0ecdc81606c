"""intake3: staged_file_parts, a staged morning-check file's bytes in parts (issue 20 item 3).

Revision ID: 0020_intake3
Revises: 0019_pgwrites
Create Date: 2026-12-02

``store.ingest.staged.stage_file`` writes a file's bytes a part (1 MB) a statement, so the database driver
never copies the whole file at once (a 1 M-row county file: 23 MB, a copy at staging); a file staged
before this revision keeps its bytes in ``staged_files.body`` and reads back as before. A database made
by the baseline since the table joined the models already has it: made only if missing.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_intake3"
down_revision: str | Sequence[str] | None = "0019_pgwrites"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if "staged_file_parts" not in set(sa.inspect(op.get_bind()).get_table_names()):
        op.create_table(
            "staged_file_parts",
            sa.Column("file_id", sa.Integer(), sa.ForeignKey("staged_files.id", ondelete="CASCADE"), nullable=False),
            sa.Column("seq", sa.Integer(), nullable=False),
            sa.Column("body", sa.LargeBinary(), nullable=False),
            sa.PrimaryKeyConstraint("file_id", "seq"),
        )


def downgrade() -> None:
    op.drop_table("staged_file_parts")
