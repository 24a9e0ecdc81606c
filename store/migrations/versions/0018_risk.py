"""risk: the watch list's month outcomes read the month's entries in pupil order from one index.

Revision ID: 0018_risk
Revises: 0017_search
Create Date: 2026-12-02

``ix_watch_pupil_month (pupil_id, since, until, school_id)``: ``store.prevention.risk.watch_outcomes`` (the
/risk page's box and the monthly report) walks a month's entries grouped by pupil, each joined to the pupil's
cases in ``ix_cases_pupil``; with this index the walk is in index order from the index alone (no sort or hash
of the county's 100 000 entries), the school filter of a township or school read in it too. A database made
by the baseline since the index joined the models already has it: made only if missing.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_risk"
down_revision: str | Sequence[str] | None = "0017_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX, TABLE, COLUMNS = "ix_watch_pupil_month", "watch_entries", ["pupil_id", "since", "until", "school_id"]


def upgrade() -> None:
    if INDEX not in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes(TABLE)}:
        op.create_index(INDEX, TABLE, COLUMNS)


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
