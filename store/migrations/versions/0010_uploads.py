"""duties.done_seq: the history event (seq on the case) that did a case duty — also one recorded before the
duty was raised (a call logged before the sweep that raised 电话联系家长 makes that duty done, not overdue).

Revision ID: 0010_uploads
Revises: 0009_reports
Create Date: 2026-12-02

A database made by the baseline since this column joined the models already has it (0001 creates
the models' schema): nothing to do. An older one gets the column, filled for the duties already done
from the latest event of the duty's action on its case.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_uploads"
down_revision: str | Sequence[str] | None = "0009_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if "done_seq" in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("duties")}:
        return
    op.add_column("duties", sa.Column("done_seq", sa.Integer(), nullable=True))
    op.execute("UPDATE duties SET done_seq = (SELECT max(e.seq) FROM case_events e WHERE e.case_id = duties.case_id "
               "AND e.event = duties.action) WHERE status = 'done'")


def downgrade() -> None:
    pass
