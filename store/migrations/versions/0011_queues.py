"""queues: indexes for the paged work queues (issue 18 item 3) — the stuck list, the case list and the
watch list read one page in index order instead of sorting the population.

Revision ID: 0011_queues
Revises: 0010_uploads
Create Date: 2026-12-02

- ``ix_duties_undone_due``: duties not done, in due order (partial: status open/overdue);
- ``ix_cases_opened``: cases in first-absence order;
- ``ix_pupils_name``: the search by name (whole or its beginning; pattern ops on PostgreSQL);
- ``ix_watch_open_order``: the open watch entries by school and class (partial: until IS NULL);
- ``ix_watch_duties_undone_due``: watch duties not done, in due order (partial).

A database made by the baseline since these joined the models already has them: each is made only
if missing.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_queues"
down_revision: str | Sequence[str] | None = "0010_uploads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNDONE = "status IN ('open', 'overdue')"
OPEN_ENTRY = "until IS NULL"
INDEXES = [
    ("ix_duties_undone_due", "duties", ["due_at", "id"], UNDONE, None),
    ("ix_cases_opened", "cases", ["opened_on", "id"], None, None),
    ("ix_pupils_name", "pupils", ["name"], None, {"name": "varchar_pattern_ops"}),
    ("ix_watch_open_order", "watch_entries", ["school_id", "class_id", "id"], OPEN_ENTRY, None),
    ("ix_watch_duties_undone_due", "watch_duties", ["due_on", "id"], UNDONE, None),
]


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for name, table, columns, where, ops in INDEXES:
        if name in {i["name"] for i in inspector.get_indexes(table)}:
            continue
        kw = {}
        if where:
            kw.update(sqlite_where=sa.text(where), postgresql_where=sa.text(where))
        if ops:
            kw.update(postgresql_ops=ops)
        op.create_index(name, table, columns, **kw)


def downgrade() -> None:
    for name, table, *_ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
