"""Baseline: the whole schema as the models define it.

Revision ID: 0001
Revises:
Create Date: 2025-11-23

While the schema is still being designed, this revision creates whatever the models in
`store.schema.MODEL_MODULES` define (``create_all``), so the models can change without a
revision per change and tests/store/test_migrations.py stays green.

Later revisions are incremental (``op.add_column``, ``op.create_index`` …), written with
``alembic -c store/alembic.ini revision --autogenerate -m "…"`` against a database at head.
Because this baseline creates the models as they are *now*, a later revision must expect its
change to be there already (0002 looks for its column first). Before the first revision that
cannot check that (a changed type, a moved column), freeze this baseline: replace ``create_all``
with the explicit ``op.create_table`` calls autogenerate prints for an empty database.
"""
from __future__ import annotations

from typing import Sequence

from alembic import op

from store.schema import load_models

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    load_models().create_all(bind=op.get_bind())


def downgrade() -> None:
    load_models().drop_all(bind=op.get_bind())
