"""accountability: 包保 chains, 约谈 records and their follow-up duties, yearly 责任书 and signature duties.

Revision ID: 0008_accountability
Revises: 0007_onboard
Create Date: 2026-12-02

A database made by the baseline since these tables joined the models already has them (0001 creates
the models' schema): nothing to do. An older one gets them.
"""
from __future__ import annotations

from typing import Sequence

from alembic import op

revision: str = "0008_accountability"
down_revision: str | Sequence[str] | None = "0007_onboard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("care_chains", "interviews", "talk_duties", "pledges", "pledge_duties")


def upgrade() -> None:
    from store.models.accountability import CareChainMember, Interview, Pledge, PledgeDuty, TalkDuty

    bind = op.get_bind()
    for model in (CareChainMember, Interview, TalkDuty, Pledge, PledgeDuty):
        model.__table__.create(bind=bind, checkfirst=True)


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
