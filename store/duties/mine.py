"""The duties a person owns, of every kind (case ladder, census, prevention, watch list, calendar), for
their home page: one query over :func:`store.duties.ledger.ledger` filtered by owner, soonest due first,
each with its overdue mark (issue 18: a head teacher's home page said 没有待办事项 while the stuck lists
named her 8.6 days overdue on a watch-list duty)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.access.scope import EVERYTHING, Scope
from store.duties.ledger import UNDONE, _rule_labels, ledger, row_dict
from store.models import School, Staff

LIMIT = 200  # a home page, not a work queue: the stuck lists page through the rest


def owned_duties(session: Session, as_of: datetime, *, owner_id: int | None, scope: Scope = EVERYTHING,
                 masked: bool = False, limit: int = LIMIT) -> list[dict[str, Any]]:
    """Open and overdue duties of every kind owned by staff ``owner_id`` in ``scope`` (None: every owner's in
    ``scope`` — a head teacher's account without a staff record sees their classes'), soonest due first;
    ``overdue`` is set once the deadline has passed, whether or not the sweep has marked it yet."""
    u = ledger(statuses=UNDONE)
    q = (select(u, School.name.label("school"), School.policy_name.label("policy_name"), Staff.name.label("owner"))
         .outerjoin(School, School.id == u.c.school_id).outerjoin(Staff, Staff.id == u.c.owner_id)
         .order_by(u.c.due_at, u.c.kind, u.c.id).limit(limit))
    if owner_id is not None:
        q = q.where(u.c.owner_id == owner_id)
    q = scope.apply(q, school_col=u.c.school_id, class_col=u.c.class_id)
    rows = session.execute(q).mappings().all()
    labels = _rule_labels(session, {r["policy_name"] for r in rows if r["kind"] == "watch"})
    out = []
    for r in rows:
        d = row_dict(r, as_of, masked=masked, rule_labels=labels.get(r["policy_name"]))
        d["overdue"] = d["status"] == "overdue" or d["due_at"] <= as_of
        d["hours_overdue"] = max(0.0, d["hours_overdue"])
        out.append(d)
    return out
