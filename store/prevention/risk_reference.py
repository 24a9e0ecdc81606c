"""The watch-list refresh as it was written first (issue 20 kept it as the reference): every enrolled pupil's
roster groups read into Python, every pupil with an input evaluated one by one, every open entry loaded as an
ORM object. ``store.prevention.risk.refresh_watch_list`` does the same set-wise and slice by slice; a test
runs both on copies of one county and compares what they wrote. Not used by the product.
"""
from __future__ import annotations

from datetime import datetime
from datetime import date
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from machines.risk import evaluate

from store.cases.context import OwnerResolver
from store.duties.ledger import UNDONE
from store.models import Pupil
from store.models.risk import PupilFlag, WatchDuty, WatchEntry, WatchEvent
from store.prevention.risk import ROSTER, ROSTER_FLAGS, SYSTEM, _duty_rows, _event, _policies, _rule_json, read_inputs


def sync_roster_flags(session: Session, *, today: date) -> dict[str, int]:
    """``pupil_flags`` with source ``roster`` = the enrolled pupils' roster special groups."""
    wanted = set()
    for pid, groups in session.execute(select(Pupil.id, Pupil.special_groups).where(Pupil.enrolled.is_(True))):
        for g in groups or []:
            if g in ROSTER_FLAGS:
                wanted.add((pid, g))
    have = {(pid, flag): (fid, src) for fid, pid, flag, src in
            session.execute(select(PupilFlag.id, PupilFlag.pupil_id, PupilFlag.flag, PupilFlag.source))}
    new = [{"pupil_id": p, "flag": f, "source": ROSTER, "since": today} for p, f in sorted(wanted - set(have))]
    if new:
        session.execute(insert(PupilFlag), new)
    gone = [fid for key, (fid, src) in have.items() if src == ROSTER and key not in wanted]
    for i in range(0, len(gone), 5000):
        session.execute(PupilFlag.__table__.delete().where(PupilFlag.id.in_(gone[i:i + 5000])))
    return {"added": len(new), "removed": len(gone)}



def refresh_watch_list(session: Session, *, as_of: datetime, actor: str = SYSTEM) -> dict[str, Any]:
    """Bring the watch list in line with the rules on ``as_of``'s day (idempotent)."""
    today = as_of.date()
    flags = sync_roster_flags(session, today=today)
    policies = _policies(session)
    weeks = max((p.risk.max_weeks for p in policies.values()), default=0)
    relapse_days = max((p.risk.max_relapse_days for p in policies.values()), default=0)
    inputs, who = read_inputs(session, today, weeks=weeks, relapse_days=relapse_days)
    fired = {}
    for pid, x in inputs.items():
        hits = evaluate(policies[who[pid].school_id].risk, x)
        if hits:
            fired[pid] = hits
    open_entries = {e.pupil_id: e for e in session.scalars(select(WatchEntry).where(WatchEntry.until.is_(None)))}
    owners = OwnerResolver(session)
    added, changed, left = [], [], []

    # new entries
    new_rows = []
    for pid in sorted(set(fired) - set(open_entries)):
        w, policy = who[pid], policies[who[pid].school_id]
        new_rows.append({"pupil_id": pid, "school_id": w.school_id, "class_id": w.class_id, "since": today, "until": None,
                         "rules": [_rule_json(f) for f in fired[pid]],
                         "helper_id": owners.resolve(w.school_id, w.class_id, policy.risk.helper_role),
                         "policy": policy.key, "updated_at": as_of})
    events, duties = [], []
    if new_rows:
        ids = list(session.scalars(insert(WatchEntry).returning(WatchEntry.id, sort_by_parameter_order=True), new_rows))
        for entry_id, row in zip(ids, new_rows):
            hits = fired[row["pupil_id"]]
            events.append(_event(entry_id, "added", actor, as_of, "；".join(f"{f.label}（{f.why}）" for f in hits),
                                 {"rules": [f.rule_id for f in hits], "helper_id": row["helper_id"]}))
            duties += _duty_rows(owners, policies[row["school_id"]], entry_id, row, {f.rule_id for f in hits}, set(), today, as_of)
            added.append(row["pupil_id"])

    # changed rule sets, and entries whose rules no longer fire
    for pid, entry in open_entries.items():
        policy = policies.get(entry.school_id)
        now_ids = [f.rule_id for f in fired.get(pid, [])]
        was_ids = [r["rule"] for r in entry.rules]
        if now_ids and set(now_ids) != set(was_ids):
            before = {r["rule"] for r in entry.rules}
            entry.rules = [_rule_json(f) for f in fired[pid]]
            entry.updated_at = as_of
            gained = set(now_ids) - before
            events.append(_event(entry.id, "rules_changed", actor, as_of,
                                 "；".join(f"{f.label}（{f.why}）" for f in fired[pid] if f.rule_id in gained) or "部分规则不再满足",
                                 {"rules": now_ids, "before": sorted(before)}))
            existing = set(session.execute(select(WatchDuty.rule_id, WatchDuty.action).where(WatchDuty.entry_id == entry.id)).all())
            row = {"school_id": entry.school_id, "class_id": entry.class_id, "helper_id": entry.helper_id}
            duties += _duty_rows(owners, policy, entry.id, row, gained, existing, today, as_of)
            changed.append(pid)
        elif not now_ids:
            min_days = policy.risk.min_days if policy else 0
            if (today - entry.since).days < min_days:
                continue
            entry.until, entry.updated_at = today, as_of
            events.append(_event(entry.id, "left", actor, as_of,
                                 f"规则均不再满足（{'、'.join(r['label'] for r in entry.rules)}），观察{(today - entry.since).days}天后移出",
                                 {"rules_before": was_ids}))
            left.append(entry.id)
    if left:
        session.execute(update(WatchDuty).where(WatchDuty.entry_id.in_(left), WatchDuty.status.in_(UNDONE))
                        .values(status="cancelled").execution_options(synchronize_session=False))
    if events:
        session.execute(insert(WatchEvent), events)
    if duties:
        session.execute(insert(WatchDuty), duties)
    session.flush()
    on_watch = session.scalar(select(func.count()).select_from(WatchEntry).where(WatchEntry.until.is_(None))) or 0
    return {"day": today.isoformat(), "flags": flags, "evaluated": len(inputs), "on_watch": on_watch,
            "added": len(added), "changed": len(changed), "left": len(left), "duties": len(duties)}
