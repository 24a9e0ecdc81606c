"""cases.special_groups: the pupil's special groups kept on the case (the reports count them there).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

A database made by the baseline since this column joined the models already has it (0001 creates
the models' schema): nothing to do. An older one gets the column, filled from each case's pupil.
Downgrade leaves it: a database at 0001 made today has the column too.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if "special_groups" in {c["name"] for c in sa.inspect(bind).get_columns("cases")}:
        return
    op.add_column("cases", sa.Column("special_groups", sa.JSON(), nullable=True))
    op.execute("UPDATE cases SET special_groups = "
               "(SELECT pupils.special_groups FROM pupils WHERE pupils.id = cases.pupil_id)")


def downgrade() -> None:
    pass
