"""An explicit, logged move of open cases from older versions of a policy to a newer one.

Editing a policy file never rewrites what cases already did: a case keeps the version it started
under until an administrator migrates it. The migration is one row in ``policy_migrations`` and
one ``migrate_policy`` event in each moved case's history.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from machines.states import OPEN_STATES

from store.db import is_postgres
from store.cases.effects import event_row
from store.models import Case, CaseEvent, PolicyMigration
from store.policy_files import PolicyRegistry


def migrate_open_cases(
    session: Session, policy_name: str, to_version: int, *, actor: str, reason: str, now: datetime
) -> int:
    if not reason.strip():
        raise ValueError("a policy migration needs a reason (请填写迁移原因)")
    PolicyRegistry(session).get(policy_name, to_version)  # must be loaded
    q = (select(Case.id, Case.version, Case.state, Case.policy_version)
         .where(Case.policy_name == policy_name, Case.policy_version != to_version,
                Case.state.in_([s.value for s in OPEN_STATES])).order_by(Case.id))
    if is_postgres(session.bind):
        q = q.with_for_update()
    rows = session.execute(q).all()
    if not rows:
        return 0
    session.execute(update(Case).where(Case.id.in_([r.id for r in rows]))
                    .values(policy_version=to_version, version=Case.version + 1, updated_at=now))
    session.execute(insert(CaseEvent), [event_row(
        case_id=r.id, seq=r.version + 1, event="migrate_policy", from_state=r.state, to_state=r.state, actor=actor,
        at=now, now=now, reason=reason, payload={"policy": policy_name, "from_version": r.policy_version,
                                                 "to_version": to_version},
    ) for r in rows])
    session.add(PolicyMigration(policy_name=policy_name, from_version=min(r.policy_version for r in rows),
                                to_version=to_version, cases_moved=len(rows), actor=actor, reason=reason, at=now))
    return len(rows)
