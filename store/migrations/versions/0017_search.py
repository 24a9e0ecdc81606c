"""search: the case list searched by a one-character name at province scale (issue 18: ≤ 300 ms at 1 M cases).

Revision ID: 0017_search
Revises: 0016_sweep
Create Date: 2026-12-02

A one-character name prefix matches ~1 % of the pupils (10 000 of a province's million); the case list reads
their ids from the name index and their open cases' state, first absence, school and id from the pupil index,
then sorts those keys and reads the rows of one page only. Both indexes now hold what that needs:

- ``ix_pupils_name_id`` replaces ``ix_pupils_name``: the name (pattern ops on PostgreSQL) with the id
  (``INCLUDE`` on PostgreSQL; SQLite's index holds the rowid already);
- ``ix_cases_pupil_keys`` replaces ``ix_cases_pupil``: (pupil_id, state, opened_on, closed_on, school_id), with
  the id (``INCLUDE`` on PostgreSQL) — the watch list's month outcomes read it as before;
- ``ix_cases_opened_keys`` replaces ``ix_cases_opened``: (opened_on, id), with ``INCLUDE (pupil_id, state,
  school_id)`` on PostgreSQL — a search finding thousands of pupils walks the list's order on it, index-only.

And ``watch_duties.done_event_id``: the act (a ``duty_done`` watch event) that did a watch duty already
recorded when the duty was raised or fell due (store.prevention.watch_credit; issue 18 item 2), and
``report_duties.done_ref_id``: the weekly count already submitted when its duty was opened
(store.reporting.report_credit).
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_search"
down_revision: str | Sequence[str] | None = "0016_sweep"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _names(table: str) -> set[str]:
    return {i["name"] for i in sa.inspect(op.get_bind()).get_indexes(table)}


def upgrade() -> None:
    if "done_event_id" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("watch_duties")}:
        op.add_column("watch_duties", sa.Column("done_event_id", sa.Integer(), nullable=True))
    if "done_ref_id" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("report_duties")}:
        op.add_column("report_duties", sa.Column("done_ref_id", sa.Integer(), nullable=True))
    if "ix_pupils_name_id" not in _names("pupils"):
        op.create_index("ix_pupils_name_id", "pupils", ["name"], postgresql_ops={"name": "varchar_pattern_ops"},
                        postgresql_include=["id"])
    if "ix_pupils_name" in _names("pupils"):
        op.drop_index("ix_pupils_name", table_name="pupils")
    if "ix_cases_pupil_keys" not in _names("cases"):
        op.create_index("ix_cases_pupil_keys", "cases", ["pupil_id", "state", "opened_on", "closed_on", "school_id"],
                        postgresql_include=["id"])
    if "ix_cases_pupil" in _names("cases"):
        op.drop_index("ix_cases_pupil", table_name="cases")
    if "ix_cases_opened_keys" not in _names("cases"):
        op.create_index("ix_cases_opened_keys", "cases", ["opened_on", "id"],
                        postgresql_include=["pupil_id", "state", "school_id"])
    if "ix_cases_opened" in _names("cases"):
        op.drop_index("ix_cases_opened", table_name="cases")


def downgrade() -> None:
    op.create_index("ix_cases_opened", "cases", ["opened_on", "id"])
    op.drop_index("ix_cases_opened_keys", table_name="cases")
    with op.batch_alter_table("watch_duties") as batch:
        batch.drop_column("done_event_id")
    with op.batch_alter_table("report_duties") as batch:
        batch.drop_column("done_ref_id")
    op.create_index("ix_cases_pupil", "cases", ["pupil_id", "state", "opened_on", "closed_on"])
    op.drop_index("ix_cases_pupil_keys", table_name="cases")
    op.create_index("ix_pupils_name", "pupils", ["name"], postgresql_ops={"name": "varchar_pattern_ops"})
    op.drop_index("ix_pupils_name_id", table_name="pupils")
