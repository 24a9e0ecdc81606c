"""The at-risk watch list (seed 000 §一.3): flags, inputs for every pupil in one pass, the refresh.

``refresh_watch_list`` is what the daily advance runs: roster flags are synced into
``pupil_flags``, the inputs of every pupil are read set-based (one query per kind of input),
``machines.risk.evaluate`` says which policy rules fire, and the watch list is brought in line:
new entries (with the named helper and the rules' preventive duties), changed rule sets, and
entries whose rules no longer fire (after the policy's minimum stay) are closed. Every change is
a ``watch_events`` row with who/when/why. Run twice for the same day, the second run changes nothing.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, distinct, func, insert, or_, select, true, update
from sqlalchemy.orm import Session

from machines.identity import mask_name
from machines.policy import Policy
from machines.risk import DUTY_LABELS, FLAG_LABELS, PupilInputs, RiskDuty, evaluate, explain

from store.cases.context import OwnerResolver
from store.duties.ledger import UNDONE
from store.models import AttendanceMark, Case, Pupil, School, SchoolClass, Staff
from store.policy_files import PolicyRegistry
from store.access.scope import EVERYTHING, Scope
from machines.vocabulary import DROPOUT_STATES as _DROPOUT_STATES
from store.models.risk import PupilFlag, WatchDuty, WatchEntry, WatchEvent

SYSTEM = "system:risk"
ROSTER = "roster"
# special_groups values of the roster that are watch-list flags (store.ingest.roster.GROUPS maps the Chinese)
ROSTER_FLAGS = ("learning_difficulty", "poor", "left_behind", "orphan", "disabled")


# -- flags --------------------------------------------------------------------------------------------
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


def set_flag(session: Session, *, pupil_id: int, flag: str, source: str, today: date) -> bool:
    """A flag recorded by staff (not from the roster). Returns False if the pupil already had it."""
    if session.scalar(select(PupilFlag.id).where(PupilFlag.pupil_id == pupil_id, PupilFlag.flag == flag)):
        return False
    session.add(PupilFlag(pupil_id=pupil_id, flag=flag, source=source, since=today))
    session.flush()
    return True


# -- inputs, set-based ------------------------------------------------------------------------------------
@dataclass
class _Who:
    school_id: int
    class_id: int


def _policies(session: Session) -> dict[int, Policy]:
    registry = PolicyRegistry(session)
    return {sid: registry.get(name) for sid, name in session.execute(select(School.id, School.policy_name))}


def read_inputs(session: Session, day: date, *, weeks: int, relapse_days: int,
                pupil_ids: list[int] | None = None) -> tuple[dict[int, PupilInputs], dict[int, _Who]]:
    """Every enrolled pupil with any input (a flag, an unexcused absence in the window, a recent
    relapse case), read with one query per kind of input."""
    flags: dict[int, set[str]] = defaultdict(set)
    absences: dict[int, list[int]] = {}
    relapses: dict[int, list[date]] = defaultdict(list)
    who: dict[int, _Who] = {}
    limit = (lambda q: q.where(Pupil.id.in_(pupil_ids))) if pupil_ids is not None else (lambda q: q)
    enrolled = Pupil.enrolled.is_(True)
    for pid, sid, cid, flag in session.execute(limit(
            select(Pupil.id, Pupil.school_id, Pupil.class_id, PupilFlag.flag)
            .join(PupilFlag, PupilFlag.pupil_id == Pupil.id).where(enrolled))):
        flags[pid].add(flag)
        who[pid] = _Who(sid, cid)
    if weeks:
        first = day - timedelta(days=7 * weeks - 1)
        for pid, sid, cid, d in session.execute(limit(
                select(Pupil.id, Pupil.school_id, Pupil.class_id, AttendanceMark.day)
                .join(AttendanceMark, AttendanceMark.pupil_id == Pupil.id)
                .where(enrolled, AttendanceMark.status == "unexcused", AttendanceMark.day >= first,
                       AttendanceMark.day <= day))):
            counts = absences.setdefault(pid, [0] * weeks)
            counts[weeks - 1 - (day - d).days // 7] += 1
            who[pid] = _Who(sid, cid)
    if relapse_days:
        for pid, sid, cid, opened in session.execute(limit(
                select(Pupil.id, Pupil.school_id, Pupil.class_id, Case.opened_on)
                .join(Case, Case.pupil_id == Pupil.id)
                .where(enrolled, Case.relapse_of.is_not(None), Case.opened_on >= day - timedelta(days=relapse_days),
                       Case.opened_on <= day))):
            relapses[pid].append(opened)
            who[pid] = _Who(sid, cid)
    inputs = {pid: PupilInputs(pupil_id=pid, day=day, flags=frozenset(flags.get(pid, ())),
                               weekly_absences=tuple(absences.get(pid, ())), relapse_opened=tuple(sorted(relapses.get(pid, ()))))
              for pid in who}
    return inputs, who


# -- the refresh -------------------------------------------------------------------------------------------
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


def _rule_json(f) -> dict[str, Any]:
    return {"rule": f.rule_id, "label": f.label, "why": f.why, "numbers": f.numbers}


def _event(entry_id: int, event: str, actor: str, at: datetime, reason: str, payload: dict) -> dict[str, Any]:
    return {"entry_id": entry_id, "event": event, "actor": actor, "at": at, "reason": reason[:500], "payload": payload}


def _duty_rows(owners: OwnerResolver, policy: Policy, entry_id: int, row: dict, rule_ids: set[str], existing: set,
               today: date, now: datetime) -> list[dict[str, Any]]:
    out = []
    for rule in policy.risk.rules:
        if rule.id not in rule_ids:
            continue
        for d in rule.duties:
            if (rule.id, d.action.value) in existing:
                continue
            owner = row["helper_id"] if d.role == "helper" else owners.resolve(row["school_id"], row["class_id"], d.role)
            out.append({"entry_id": entry_id, "rule_id": rule.id, "action": d.action.value, "role": d.role,
                        "owner_id": owner, "due_on": today + timedelta(days=d.due_days), "status": "open",
                        "created_at": now, "done_at": None})
    return out


def complete_duty(session: Session, duty_id: int, *, actor: str, at: datetime, note: str = "") -> WatchDuty:
    duty = session.get(WatchDuty, duty_id)
    if duty is None:
        raise LookupError(f"watch duty {duty_id} not found (帮扶任务不存在)")
    if duty.status not in UNDONE:
        return duty
    duty.status, duty.done_at = "done", at
    session.add(WatchEvent(entry_id=duty.entry_id, event="duty_done", actor=actor, at=at,
                           reason=note or DUTY_LABELS[RiskDuty(duty.action)], payload={"duty_id": duty.id, "action": duty.action}))
    session.flush()
    return duty


def duty_in_scope(session: Session, duty_id: int, scope: Scope) -> bool:
    q = select(WatchDuty.id).join(WatchEntry, WatchEntry.id == WatchDuty.entry_id).where(WatchDuty.id == duty_id)
    return session.scalar(scope.apply(q, school_col=WatchEntry.school_id, class_col=WatchEntry.class_id)) is not None


# -- reading -----------------------------------------------------------------------------------------------
def watch_list(session: Session, *, scope: Scope = EVERYTHING, masked: bool = False, open_only: bool = True,
               limit: int = 1000) -> list[dict[str, Any]]:
    q = (select(WatchEntry, Pupil.name, Pupil.student_no, School.name, SchoolClass.name, Staff.name)
         .join(Pupil, Pupil.id == WatchEntry.pupil_id).join(School, School.id == WatchEntry.school_id)
         .join(SchoolClass, SchoolClass.id == WatchEntry.class_id).outerjoin(Staff, Staff.id == WatchEntry.helper_id))
    if open_only:
        q = q.where(WatchEntry.until.is_(None))
    q = scope.apply(q, school_col=WatchEntry.school_id, class_col=WatchEntry.class_id)
    rows = session.execute(q.order_by(School.code, SchoolClass.grade, SchoolClass.name, WatchEntry.id).limit(limit)).all()
    ids = [r[0].id for r in rows]
    duties: dict[int, list[dict]] = defaultdict(list)
    for d, owner in session.execute(select(WatchDuty, Staff.name).outerjoin(Staff, Staff.id == WatchDuty.owner_id)
                                    .where(WatchDuty.entry_id.in_(ids or [-1])).order_by(WatchDuty.id)):
        duties[d.entry_id].append({"id": d.id, "action": d.action, "label": DUTY_LABELS[RiskDuty(d.action)],
                                   "owner": owner, "due_on": d.due_on.isoformat(),
                                   "status": "open" if d.status in UNDONE else d.status, "overdue": d.status == "overdue"})
    return [{"entry_id": e.id, "pupil_id": e.pupil_id, "pupil": mask_name(name) if masked else name, "student_no": no,
             "school": school, "class": klass, "helper": helper, "since": e.since.isoformat(),
             "until": e.until.isoformat() if e.until else None, "rules": e.rules, "duties": duties[e.id]}
            for e, name, no, school, klass, helper in rows]


def find_pupil(session: Session, key: str) -> Pupil | None:
    """A pupil by 学籍号 or 身份证号 (the CLI's PUPIL argument)."""
    return session.scalar(select(Pupil).where(or_(Pupil.student_no == key, Pupil.id_number == key.upper())))


def explain_pupil(session: Session, pupil: Pupil, *, day: date) -> dict[str, Any]:
    """Every rule of the pupil's policy, fired or not, with the numbers; and their watch history."""
    policy = PolicyRegistry(session).get(session.get(School, pupil.school_id).policy_name)
    inputs, _ = read_inputs(session, day, weeks=policy.risk.max_weeks, relapse_days=policy.risk.max_relapse_days,
                            pupil_ids=[pupil.id])
    x = inputs.get(pupil.id) or PupilInputs(pupil_id=pupil.id, day=day)
    entries = session.scalars(select(WatchEntry).where(WatchEntry.pupil_id == pupil.id).order_by(WatchEntry.id)).all()
    events = session.execute(select(WatchEvent).where(WatchEvent.entry_id.in_([e.id for e in entries] or [-1]))
                             .order_by(WatchEvent.id)).scalars().all()
    return {"student_no": pupil.student_no, "policy": policy.key, "day": day.isoformat(),
            "inputs": {"flags": sorted(x.flags), "flag_labels": [FLAG_LABELS.get(f, f) for f in sorted(x.flags)],
                       "weekly_absences": list(x.weekly_absences), "relapse_opened": [d.isoformat() for d in x.relapse_opened]},
            "rules": explain(policy.risk, x),
            "entries": [{"id": e.id, "since": e.since.isoformat(), "until": e.until.isoformat() if e.until else None,
                         "rules": [r["rule"] for r in e.rules]} for e in entries],
            "events": [{"entry_id": ev.entry_id, "event": ev.event, "actor": ev.actor, "at": ev.at.isoformat(sep=" "),
                        "reason": ev.reason} for ev in events]}


# -- the month's outcomes (monthly report) --------------------------------------------------------------------
def watch_outcomes(session: Session, school_ids: list[int] | tuple[int, ...] | None, start: date, end: date, *,
                   by_rule: bool = True) -> dict[str, Any]:
    """The watch list over a month: on watch at month end, newly added, left; of the pupils watched
    in the month, how many dropped out (a case at the collective visit or beyond, or handed
    outside) and how many returned (a case closed as returned in the month). ``school_ids`` None: every school;
    ``by_rule`` False: without the count per rule (the watch list page does not show it).

    Counted in the database (one aggregate over the month's entries, one over their rules): a county's
    100 000 entries are never read into Python."""
    e = WatchEntry
    overlap = and_(e.since <= end, or_(e.until.is_(None), e.until >= start))
    if school_ids is not None:
        overlap = and_(e.school_id.in_(list(school_ids) or [-1]), overlap)
    on_watch = or_(e.until.is_(None), e.until > end)

    def pupils_where(cond):
        return func.count(distinct(case((cond, e.pupil_id))))

    def has_case(*where):
        return select(Case.id).where(Case.pupil_id == e.pupil_id, *where).exists()

    row = session.execute(select(
        pupils_where(on_watch), pupils_where(e.since >= start),
        pupils_where(and_(e.until.is_not(None), e.until >= start, e.until <= end)), func.count(distinct(e.pupil_id)),
        pupils_where(has_case(Case.state.in_([s.value for s in _DROPOUT_STATES]), Case.opened_on <= end)),
        pupils_where(has_case(Case.state == "returned", Case.closed_on >= start, Case.closed_on <= end)),
    ).where(overlap)).one()
    out = {"on_watch": row[0], "added": row[1], "left": row[2], "watched": row[3], "dropped_out": row[4],
           "returned": row[5]}
    return out | {"by_rule": _rules_on_watch(session, and_(overlap, on_watch))} if by_rule else out


def _rules_on_watch(session: Session, where) -> dict[str, int]:
    """rule id → the entries (matching ``where``) that name it, read from each entry's ``rules`` JSON in SQL."""
    e = WatchEntry
    if session.get_bind().dialect.name == "postgresql":
        item = func.json_array_elements(e.rules).table_valued("value").render_derived(with_types=False).alias("r")
        rule = item.c.value.op("->>")("rule")
        q = select(rule, func.count()).select_from(e).join(item, true()).where(where).group_by(rule)
    else:
        item = func.json_each(e.rules).table_valued("value").alias("r")
        rule = func.json_extract(item.c.value, "$.rule")
        q = select(rule, func.count()).select_from(e).join(item, true()).where(where).group_by(rule)
    return dict(sorted((str(k), n) for k, n in session.execute(q) if k is not None))
