"""queues: the work queues at province scale (issue 18, first byte ≤ 300 ms at 1 M open cases).

Revision ID: 0015_queues
Revises: 0014_intake
Create Date: 2026-12-02

- ``ix_duties_undone_case``: a case's duties not done, by due time (partial: status open/overdue) — the
  stuck list of a township or school walks its open cases and reads their late duties from the index;
  the case list sorted by deadline finds each case's next duty from it;
- ``ix_cases_pupil``: a pupil's cases with their state and dates (the watch list's month outcomes ask, of
  each watched pupil, for a dropout or returned case from the index alone; a watch entry's page lists the
  pupil's cases; the only index on ``pupil_id`` was the open cases' unique one).

A database made by the baseline since these joined the models already has them: each is made only
if missing.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_queues"
down_revision: str | Sequence[str] | None = "0014_intake"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNDONE = "status IN ('open', 'overdue')"
INDEXES = [
    ("ix_duties_undone_case", "duties", ["case_id", "due_at", "id"], UNDONE),
    ("ix_cases_pupil", "cases", ["pupil_id", "state", "opened_on", "closed_on"], None),
]


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for name, table, columns, where in INDEXES:
        if name in {i["name"] for i in inspector.get_indexes(table)}:
            continue
        kw = {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)} if where else {}
        op.create_index(name, table, columns, **kw)


def downgrade() -> None:
    for name, table, *_ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
