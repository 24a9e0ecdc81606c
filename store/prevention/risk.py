"""The at-risk watch list (seed 000 §一.3): flags, inputs for every pupil in one pass, the refresh.

``refresh_watch_list`` is what the daily advance runs: roster flags are synced into
``pupil_flags``, the inputs of every pupil are read set-based (one query per kind of input),
``machines.risk.evaluate`` says which policy rules fire, and the watch list is brought in line:
new entries (with the named helper and the rules' preventive duties), changed rule sets, and
entries whose rules no longer fire (after the policy's minimum stay) are closed. Every change is
a ``watch_events`` row with who/when/why. Run twice for the same day, the second run changes nothing.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Date, String, Text, and_, bindparam, case, cast, delete, func, insert, literal, or_, select, true, union_all,
    update,
)
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
    """``pupil_flags`` with source ``roster`` = the enrolled pupils' roster special groups, set-based: the few
    distinct ``special_groups`` values are read (and parsed) once each, then one INSERT … SELECT adds the missing
    flags and one DELETE the roster flags no longer wanted, joining the pupils to the (value, flag) pairs (never a
    million pupil rows in Python)."""
    session.flush()
    groups = cast(Pupil.special_groups, Text)
    enrolled = Pupil.enrolled.is_(True)
    values = [v for v in session.scalars(select(groups).where(enrolled).group_by(groups)) if v]
    pairs = sorted({(v, flag) for v in values for flag in (json.loads(v) or ()) if flag in ROSTER_FLAGS})
    f = PupilFlag.__table__
    count = lambda: session.scalar(select(func.count()).select_from(f)) or 0  # noqa: E731
    before = count()
    gone = delete(f).where(f.c.source == ROSTER)
    if pairs:
        m = union_all(*(select(literal(v, Text).label("value"), literal(flag, String).label("flag"))
                        for v, flag in pairs)).subquery("roster_pairs")
        wanted = select(Pupil.id, m.c.flag).join(m, m.c.value == groups).where(enrolled)
        gone = gone.where(~wanted.where(Pupil.id == f.c.pupil_id, m.c.flag == f.c.flag).exists())
    removed = session.execute(gone).rowcount or 0
    if pairs:
        have = select(f.c.id).where(f.c.pupil_id == Pupil.id, f.c.flag == m.c.flag).exists()
        session.execute(insert(f).from_select(
            ["pupil_id", "flag", "source", "since"],
            select(Pupil.id, m.c.flag, literal(ROSTER, String), literal(today, Date))
            .join(m, m.c.value == groups).where(enrolled, ~have).order_by(Pupil.id, m.c.flag)))
    added = count() - before + removed  # (an INSERT … SELECT's rowcount is not reported on every driver)
    return {"added": added, "removed": removed}


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
    """School id → its policy (each policy looked up once, not once per school)."""
    registry, by_name = PolicyRegistry(session), {}
    out = {}
    for sid, name in session.execute(select(School.id, School.policy_name)):
        if name not in by_name:
            by_name[name] = registry.get(name)
        out[sid] = by_name[name]
    return out


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
_NONE: frozenset[str] = frozenset()
SLICE = 20_000  # pupil ids per slice of the refresh: the memory it holds is one slice's flags and entries


def refresh_watch_list(session: Session, *, as_of: datetime, actor: str = SYSTEM, slice_size: int = SLICE) -> dict[str, Any]:
    """Bring the watch list in line with the rules on ``as_of``'s day (idempotent).

    The rules are ``machines.risk.evaluate`` itself, asked once per distinct input (policy, flags, weekly
    absences, relapse days) rather than once per pupil: at a county's scale nearly every watched pupil is
    there for a roster flag, and pupils with the same flags get the same answer. The pupils are read slice
    by slice of ids (their flags and open entries, an entry's rules as stored text parsed once per distinct
    text), the few with absences or relapses once; what changed is written set-wise per slice. Same
    outcome as the row-by-row reference (``store.prevention.risk_reference``, compared by a test)."""
    today = as_of.date()
    flags = sync_roster_flags(session, today=today)
    policies = _policies(session)
    weeks = max((p.risk.max_weeks for p in policies.values()), default=0)
    relapse_days = max((p.risk.max_relapse_days for p in policies.values()), default=0)
    absences, relapses, who_sparse = _sparse_inputs(session, today, weeks=weeks, relapse_days=relapse_days)
    absences = {pid: tuple(v) for pid, v in absences.items()}
    relapses = {pid: tuple(sorted(v)) for pid, v in relapses.items()}
    owners = OwnerResolver(session)
    run = _Refresh(session, policies, owners, today, as_of, actor)
    lo, hi = session.execute(select(func.min(Pupil.id), func.max(Pupil.id))).one()
    sparse = sorted(who_sparse)
    conn = session.connection()
    k = 0
    for start in range(lo or 0, (hi or -1) + 1, slice_size):
        stop = start + slice_size
        flags_of: dict[int, set[str]] = defaultdict(set)
        who: dict[int, _Who] = {}
        for pid, sid, cid, flag in conn.execute(  # Core rows (no ORM loading): the bulk of the refresh's reads
                select(Pupil.id, Pupil.school_id, Pupil.class_id, PupilFlag.flag)
                .join(PupilFlag, PupilFlag.pupil_id == Pupil.id)
                .where(Pupil.enrolled.is_(True), PupilFlag.pupil_id >= start, PupilFlag.pupil_id < stop)):
            flags_of[pid].add(flag)
            who[pid] = _Who(sid, cid)
        while k < len(sparse) and sparse[k] < stop:
            who.setdefault(sparse[k], who_sparse[sparse[k]])
            k += 1
        entries = conn.execute(
            select(WatchEntry.id, WatchEntry.pupil_id, WatchEntry.school_id, WatchEntry.class_id, WatchEntry.since,
                   WatchEntry.helper_id, cast(WatchEntry.rules, Text))
            .where(WatchEntry.until.is_(None), WatchEntry.pupil_id >= start, WatchEntry.pupil_id < stop)).all()
        inputs = {pid: (frozenset(flags_of[pid]) if pid in flags_of else _NONE, absences.get(pid, ()), relapses.get(pid, ()))
                  for pid in who}
        run.slice(inputs, who, entries)
    run.finish()
    on_watch = session.scalar(select(func.count()).select_from(WatchEntry).where(WatchEntry.until.is_(None))) or 0
    return {"day": today.isoformat(), "flags": flags, "evaluated": run.evaluated, "on_watch": on_watch,
            "added": run.added, "changed": run.changed, "left": run.left, "duties": run.duties}


def _sparse_inputs(session: Session, day: date, *, weeks: int, relapse_days: int):
    """The inputs few pupils have, for all of them at once: unexcused absences per week in the window, and the
    opening days of relapse cases (enrolled pupils only, as :func:`read_inputs`)."""
    absences: dict[int, list[int]] = {}
    relapses: dict[int, list[date]] = defaultdict(list)
    who: dict[int, _Who] = {}
    enrolled = Pupil.enrolled.is_(True)
    if weeks:
        first = day - timedelta(days=7 * weeks - 1)
        for pid, sid, cid, d in session.execute(
                select(Pupil.id, Pupil.school_id, Pupil.class_id, AttendanceMark.day)
                .join(AttendanceMark, AttendanceMark.pupil_id == Pupil.id)
                .where(enrolled, AttendanceMark.status == "unexcused", AttendanceMark.day >= first, AttendanceMark.day <= day)):
            counts = absences.setdefault(pid, [0] * weeks)
            counts[weeks - 1 - (day - d).days // 7] += 1
            who[pid] = _Who(sid, cid)
    if relapse_days:
        for pid, sid, cid, opened in session.execute(
                select(Pupil.id, Pupil.school_id, Pupil.class_id, Case.opened_on)
                .join(Case, Case.pupil_id == Pupil.id)
                .where(enrolled, Case.relapse_of.is_not(None), Case.opened_on >= day - timedelta(days=relapse_days),
                       Case.opened_on <= day)):
            relapses[pid].append(opened)
            who[pid] = _Who(sid, cid)
    return absences, relapses, who


class _Refresh:
    """One refresh: the rules asked once per distinct input, the changes of each slice written together."""

    def __init__(self, session: Session, policies: dict[int, Policy], owners: OwnerResolver, today: date,
                 as_of: datetime, actor: str):
        self.s, self.policies, self.owners, self.today, self.as_of, self.actor = session, policies, owners, today, as_of, actor
        self._fired: dict[tuple, list] = {}
        self._stored: dict[str, list[dict]] = {}
        self.evaluated = self.added = self.changed = self.left = self.duties = 0

    def fired(self, pid: int, school_id: int, x: tuple) -> list:
        policy = self.policies[school_id]
        key = (policy.key, *x)
        if key not in self._fired:
            self._fired[key] = evaluate(policy.risk, PupilInputs(pupil_id=pid, day=self.today, flags=x[0],
                                                                 weekly_absences=x[1], relapse_opened=x[2]))
        return self._fired[key]

    def stored(self, text_value: str | None) -> list[dict]:
        if text_value not in self._stored:
            self._stored[text_value] = json.loads(text_value) if text_value else []
        return self._stored[text_value]

    def slice(self, inputs: dict[int, tuple], who: dict[int, _Who], entries) -> None:
        self.evaluated += len(inputs)
        fired = {}
        for pid, x in inputs.items():
            hits = self.fired(pid, who[pid].school_id, x)
            if hits:
                fired[pid] = hits
        open_by_pupil = {e.pupil_id: e for e in entries}
        events, duties = [], []
        new_rows = []
        for pid in sorted(set(fired) - set(open_by_pupil)):
            w, policy = who[pid], self.policies[who[pid].school_id]
            new_rows.append({"pupil_id": pid, "school_id": w.school_id, "class_id": w.class_id, "since": self.today,
                             "until": None, "rules": [_rule_json(f) for f in fired[pid]],
                             "helper_id": self.owners.resolve(w.school_id, w.class_id, policy.risk.helper_role),
                             "policy": policy.key, "updated_at": self.as_of})
        if new_rows:
            ids = list(self.s.scalars(insert(WatchEntry).returning(WatchEntry.id, sort_by_parameter_order=True), new_rows))
            for entry_id, row in zip(ids, new_rows):
                hits = fired[row["pupil_id"]]
                events.append(_event(entry_id, "added", self.actor, self.as_of, "；".join(f"{f.label}（{f.why}）" for f in hits),
                                     {"rules": [f.rule_id for f in hits], "helper_id": row["helper_id"]}))
                duties += _duty_rows(self.owners, self.policies[row["school_id"]], entry_id, row, {f.rule_id for f in hits},
                                     set(), self.today, self.as_of)
            self.added += len(new_rows)

        changed, left = [], []
        for pid, e in open_by_pupil.items():
            now_ids = [f.rule_id for f in fired.get(pid, [])]
            was = self.stored(e[6])
            if now_ids and set(now_ids) != {r["rule"] for r in was}:
                changed.append((e, was))
            elif not now_ids:
                policy = self.policies.get(e.school_id)
                if (self.today - e.since).days < (policy.risk.min_days if policy else 0):
                    continue
                left.append(e)
                events.append(_event(e.id, "left", self.actor, self.as_of,
                                     f"规则均不再满足（{'、'.join(r['label'] for r in was)}），观察{(self.today - e.since).days}天后移出",
                                     {"rules_before": [r["rule"] for r in was]}))
        if changed:
            existing: dict[int, set] = defaultdict(set)
            for entry_id, rule_id, action in self.s.execute(select(WatchDuty.entry_id, WatchDuty.rule_id, WatchDuty.action)
                                                           .where(WatchDuty.entry_id.in_([e.id for e, _ in changed]))):
                existing[entry_id].add((rule_id, action))
            updates = []
            for e, was in changed:
                hits = fired[e.pupil_id]
                before = {r["rule"] for r in was}
                gained = {f.rule_id for f in hits} - before
                updates.append({"eid": e.id, "rules": [_rule_json(f) for f in hits], "updated_at": self.as_of})
                events.append(_event(e.id, "rules_changed", self.actor, self.as_of,
                                     "；".join(f"{f.label}（{f.why}）" for f in hits if f.rule_id in gained) or "部分规则不再满足",
                                     {"rules": [f.rule_id for f in hits], "before": sorted(before)}))
                row = {"school_id": e.school_id, "class_id": e.class_id, "helper_id": e.helper_id}
                duties += _duty_rows(self.owners, self.policies.get(e.school_id), e.id, row, gained, existing[e.id],
                                     self.today, self.as_of)
            t = WatchEntry.__table__
            self.s.execute(update(t).where(t.c.id == bindparam("eid")).values(rules=bindparam("rules"),
                                                                              updated_at=bindparam("updated_at")), updates)
            self.changed += len(changed)
        if left:
            t = WatchEntry.__table__
            self.s.execute(update(t).where(t.c.id == bindparam("eid")).values(until=self.today, updated_at=self.as_of),
                           [{"eid": e.id} for e in left])
            ids = [e.id for e in left]
            for i in range(0, len(ids), 5000):
                self.s.execute(update(WatchDuty.__table__).where(WatchDuty.entry_id.in_(ids[i:i + 5000]),
                                                                 WatchDuty.status.in_(UNDONE)).values(status="cancelled"))
            self.left += len(left)
        if events:
            self.s.execute(insert(WatchEvent), events)
        if duties:
            self.s.execute(insert(WatchDuty), duties)
            from store.prevention.watch_credit import credit_watch_duties  # an act already recorded does it

            entries = sorted({d["entry_id"] for d in duties})
            for i in range(0, len(entries), 5000):
                credit_watch_duties(self.s, WatchDuty.entry_id.in_(entries[i:i + 5000]), WatchDuty.created_at == self.as_of)
        self.duties += len(duties)

    def finish(self) -> None:
        """Entries and duties this session had loaded are read again (the rows changed under them)."""
        self.s.flush()
        for obj in list(self.s.identity_map.values()):
            if isinstance(obj, (WatchEntry, WatchDuty)):
                self.s.expire(obj)


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

    Counted in the database in one pass over the month's entries in pupil order (``ix_watch_pupil_month``), each
    entry joined to its pupil's cases in ``ix_cases_pupil`` (one index seek per entry, not one per entry and per
    question) and grouped by pupil: whether the pupil is on watch at month end, was added, left, dropped out,
    returned; the outer sums count the pupils (a pupil watched twice in the month, or at two schools, once). A
    county's 100 000 entries are never read into Python."""
    e, c = WatchEntry, Case
    overlap = and_(e.since <= end, or_(e.until.is_(None), e.until >= start))
    if school_ids is not None:
        overlap = and_(e.school_id.in_(list(school_ids) or [-1]), overlap)
    on_watch = or_(e.until.is_(None), e.until > end)

    def any_of(cond):
        return func.max(case((cond, 1), else_=0))

    def per_pupil(lo: int | None = None, hi: int | None = None):
        """Each watched pupil's answers; with ``lo``/``hi``, the pupils of ids lo ≤ id < hi only (both tables)."""
        joined, where = c.pupil_id == e.pupil_id, overlap
        if lo is not None:
            joined = and_(joined, c.pupil_id >= lo, c.pupil_id < hi)
            where = and_(where, e.pupil_id >= lo, e.pupil_id < hi)
        return (select(
            any_of(on_watch).label("on_watch"), any_of(e.since >= start).label("added"),
            any_of(and_(e.until.is_not(None), e.until >= start, e.until <= end)).label("left"),
            any_of(and_(c.state.in_([s.value for s in _DROPOUT_STATES]), c.opened_on <= end)).label("dropped_out"),
            any_of(and_(c.state == "returned", c.closed_on >= start, c.closed_on <= end)).label("returned"))
            .select_from(e).outerjoin(c, joined).where(where).group_by(e.pupil_id))

    def totals(pupils):
        p = pupils.subquery("per_pupil").c
        return select(*(func.coalesce(func.sum(x), 0) for x in (p.on_watch, p.added, p.left)), func.count(),
                      *(func.coalesce(func.sum(x), 0) for x in (p.dropped_out, p.returned)))
    if school_ids is None and _merge_pays(session):
        row = _merged(session, per_pupil, totals)
    else:
        row = session.execute(totals(per_pupil())).one()
    out = {"on_watch": row[0], "added": row[1], "left": row[2], "watched": row[3], "dropped_out": row[4],
           "returned": row[5]}
    return out | {"by_rule": _rules_on_watch(session, and_(overlap, on_watch))} if by_rule else out


PROBE_COST = 30  # one watched pupil's index probe costs about as much as merging past 30 cases (PostgreSQL, measured)


def _merge_pays(session: Session) -> bool:
    """PostgreSQL, and entries enough that probing each pupil's cases costs more than reading every case once in
    pupil order (the planner's row estimates of the two tables, -1 when never analysed: then the planner decides)."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    from sqlalchemy import text

    entries, cases = session.execute(text("SELECT (SELECT reltuples FROM pg_class WHERE oid = 'watch_entries'::regclass), "
                                          "(SELECT reltuples FROM pg_class WHERE oid = 'cases'::regclass)")).one()
    return entries > 0 and cases > 0 and entries * PROBE_COST >= cases


def _merged(session: Session, per_pupil, totals):
    """Every school's month on PostgreSQL: the entries and the cases met in merge joins over the two indexes, in
    pupil order, not one index probe per watched pupil. A county's 100 000 probes touch ~290 000 index pages (three
    each: root, inner, leaf) in three processes (the planner's two parallel workers and the backend); the merge
    reads each of ix_cases_pupil_keys' ~10 300 pages once: 220–290 ms in one process, against 300–650 ms for the
    probes (docs/performance.md ``## pages``); a hash join of the 1.15 M cases was ~550 ms. The planner prices the
    probes as cached and picks them, so nested loops and hash joins are turned off for this statement only (the
    transaction's own settings put back after); a township's or school's few entries keep their probes.

    The pupils are cut into :func:`_parts` ranges of ids, one merge join each under a UNION ALL, which the planner
    runs as a Parallel Append: each range's join in its own process, each reading its own part of both indexes (a
    pupil's entries and cases fall in one range, so the sums add up). 1 M cases + 100 k entries, 2 cores: 150–185 ms
    with two ranges, 220–290 ms in one (docs/performance.md ``## outcomes``)."""
    from sqlalchemy import text

    lo, hi = session.execute(select(func.min(WatchEntry.pupil_id), func.max(WatchEntry.pupil_id))).one()
    if lo is None:
        return session.execute(totals(per_pupil())).one()
    parts = _parts(session)
    edges = sorted({lo + (hi + 1 - lo) * i // parts for i in range(parts)} | {hi + 1})
    pupils = union_all(*(per_pupil(a, b) for a, b in zip(edges, edges[1:])))
    knobs = ("enable_nestloop", "enable_hashjoin")
    before = session.execute(text("SELECT " + ", ".join(f"current_setting('{k}')" for k in knobs))).one()
    session.execute(text("SELECT " + ", ".join(f"set_config('{k}', 'off', true)" for k in knobs)))
    try:
        return session.execute(totals(pupils)).one()
    finally:
        session.execute(text("SELECT " + ", ".join(f"set_config('{k}', :v{i}, true)" for i, k in enumerate(knobs))),
                        {f"v{i}": v for i, v in enumerate(before)})


def _parts(session: Session) -> int:
    """How many id ranges a county's outcomes are cut into: the server's parallel workers per query (its
    ``max_parallel_workers_per_gather``, 2 by default; 0 = one range, no parallel work)."""
    from sqlalchemy import text

    return max(1, int(session.execute(text("SELECT current_setting('max_parallel_workers_per_gather')")).scalar_one()))


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
