"""pgwrites: an escalation on PostgreSQL writes narrower entries in the case list's indexes (issue 20).

Revision ID: 0019_pgwrites
Revises: 0018_risk
Create Date: 2026-12-02

On PostgreSQL a case's state change cannot be a HOT update (``state`` is a key of ``ix_cases_due``, the sweep's
own index, and of ``ix_cases_school_state``, and the predicate of ``uq_cases_one_open_per_pupil``): every
escalation writes one new entry in EVERY index of ``cases``, whatever its columns. What an index costs the sweep
is therefore its width and where its entries go. 0017_search's ``ix_cases_pupil_keys`` (pupil, state, dates,
school, ``INCLUDE id``) took an entry at a random place per escalation in an index twice as wide as 0015's
``ix_cases_pupil``; measured in docs/performance.md ``## pgwrites``, it was most of what 0017 added to the raw
escalation UPDATE. So:

- ``ix_cases_pupil`` (pupil_id, state, opened_on, closed_on) — 0015_queues' index, what the watch list's
  month outcomes read from the index alone — replaces ``ix_cases_pupil_keys``; the case list searched by
  name reads the school and id of the few cases it finds from their rows;
- ``ix_cases_opened_keys`` keeps ``INCLUDE (pupil_id, school_id)`` on PostgreSQL, without ``state``: the
  search's walk tests the pupil (and school) in the index and re-checks the state on the rows it keeps.

SQLite: the same ``ix_cases_pupil`` (its ``ix_cases_opened_keys`` has no INCLUDE and does not change).
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_pgwrites"
down_revision: str | Sequence[str] | None = "0018_risk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PUPIL = ["pupil_id", "state", "opened_on", "closed_on"]


def _names() -> set[str]:
    return {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("cases")}


def _opened_keys_def() -> str:
    return op.get_bind().execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_cases_opened_keys'")
                                 ).scalar() or ""


def upgrade() -> None:
    if "ix_cases_pupil" not in _names():
        op.create_index("ix_cases_pupil", "cases", PUPIL)
    if "ix_cases_pupil_keys" in _names():
        op.drop_index("ix_cases_pupil_keys", table_name="cases")
    if op.get_bind().dialect.name == "postgresql" and "state" in _opened_keys_def():
        op.drop_index("ix_cases_opened_keys", table_name="cases")
        op.create_index("ix_cases_opened_keys", "cases", ["opened_on", "id"], postgresql_include=["pupil_id", "school_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_cases_opened_keys", table_name="cases")
        op.create_index("ix_cases_opened_keys", "cases", ["opened_on", "id"],
                        postgresql_include=["pupil_id", "state", "school_id"])
    op.create_index("ix_cases_pupil_keys", "cases", PUPIL + ["school_id"], postgresql_include=["id"])
    op.drop_index("ix_cases_pupil", table_name="cases")
