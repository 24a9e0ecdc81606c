"""sweep: a system event (no idempotency key) writes no entry in the key's unique index.

Revision ID: 0016_sweep
Revises: 0015_queues
Create Date: 2026-12-02

``UNIQUE(case_id, idempotency_key)`` on the history held one index entry per event, NULL keys
included: every escalation of the sweep wrote one (a random leaf per case, by case id) that protects
nothing, NULLs being distinct. It becomes a partial unique index on the rows that have a key, which
keeps the guarantee (a submission's key, once per case). A database made by the baseline since the
models changed already has the index (0001 creates the models' schema): nothing to do then.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_sweep"
down_revision: str | Sequence[str] | None = "0015_queues"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX, WHERE = "uq_case_events_idempotency", "idempotency_key IS NOT NULL"
OLD = ["case_id", "idempotency_key"]
NAMES = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def _old_constraint(inspector) -> str | None:
    """The name of the old UNIQUE(case_id, idempotency_key) (SQLite's may have none)."""
    for u in inspector.get_unique_constraints("case_events"):
        if u["column_names"] == OLD:
            return u["name"] or ""
    return None


def upgrade() -> None:
    bind = op.get_bind()
    old = _old_constraint(sa.inspect(bind))
    if old is not None:
        if bind.dialect.name == "sqlite":  # unnamed in the table's DDL: named here, and the table rebuilt without it
            with op.batch_alter_table("case_events", naming_convention=NAMES) as batch:
                batch.drop_constraint("uq_case_events_case_id_idempotency_key", type_="unique")
        else:
            op.drop_constraint(old, "case_events", type_="unique")
    if INDEX not in {i["name"] for i in sa.inspect(bind).get_indexes("case_events")}:
        op.create_index(INDEX, "case_events", OLD, unique=True,
                        sqlite_where=sa.text(WHERE), postgresql_where=sa.text(WHERE))


def downgrade() -> None:
    op.drop_index(INDEX, table_name="case_events")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("case_events") as batch:
            batch.create_unique_constraint("uq_case_events_case_id_idempotency_key", OLD)
    else:
        op.create_unique_constraint("uq_case_events_case_id_idempotency_key", "case_events", OLD)
