"""旷课分级 (seed 001 第六条), set-based: every pupil's truancies of the school year → tier duties.

One query reads the unexcused marks of the school year with their school-day ordinals; the pure
rule (:mod:`machines.truancy`) turns each pupil's days into truancies (one per episode of
consecutive days, or one per day if the policy says so) and says which occurrences call for an
action. Rows not yet in ``truancy_tiers`` are written with their duty and history in the same
transaction. UNIQUE(pupil_id, school_year, occurrence) and UNIQUE(source, kind, ref_id) on the
duties are the backstop: a second run at the same instant, or a retried one, writes nothing.

The tiers of a pupil's school's policy (latest version) apply; a policy with other thresholds
gives other tiers.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from machines.identity import mask_name
from machines.truancy import TruancyRules, count_truancies

from store.cases.context import CaseContext
from store.models import AttendanceMark, Pupil, School, SchoolClass, SchoolDay
from store.prevention.common import event_row
from store.models.prevention import PreventionDuty, PreventionEvent, TruancyTierRecord
from store.access.scope import EVERYTHING, Scope


def _schools_by_policy(session: Session, ctx: CaseContext) -> dict[str, tuple[str, TruancyRules, list[int]]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for sid, name in session.execute(select(School.id, School.policy_name)):
        groups[name].append(sid)
    out = {}
    for name, ids in groups.items():
        policy = ctx.policies.get(name)
        out[name] = (policy.key, policy.truancy, ids)
    return out


def truancies(session: Session, rules: TruancyRules, school_ids: list[int], school_year: int,
              until: date) -> dict[int, list[tuple[date, int, int, int, str]]]:
    """pupil id → [(first day, school id, class id, calendar)] of each truancy of the year up to ``until``."""
    q = (select(AttendanceMark.pupil_id, SchoolDay.seq, AttendanceMark.day, AttendanceMark.school_id, Pupil.class_id,
                School.calendar_key)
         .join(School, School.id == AttendanceMark.school_id)
         .join(SchoolDay, (SchoolDay.calendar_key == School.calendar_key) & (SchoolDay.day == AttendanceMark.day))
         .join(Pupil, Pupil.id == AttendanceMark.pupil_id)
         .where(AttendanceMark.status == "unexcused", AttendanceMark.school_id.in_(school_ids),
                AttendanceMark.day >= rules.year_start(school_year), AttendanceMark.day <= until)
         .order_by(AttendanceMark.pupil_id, SchoolDay.seq))
    days: dict[int, dict[int, tuple]] = defaultdict(dict)
    for pid, seq, day, sid, cid, cal in session.execute(q):
        days[pid][seq] = (day, sid, cid, seq, cal)
    return {pid: [by_seq[s] for s in count_truancies(list(by_seq), mode=rules.count)] for pid, by_seq in days.items()}


def apply_tiers(session: Session, ctx: CaseContext, as_of: datetime, *, actor: str = "system") -> dict:
    """Write every tier action due at ``as_of`` that is not written yet. Returns what was new."""
    by_tier: Counter = Counter()
    new_ids: list[int] = []
    for _name, (policy_key, rules, school_ids) in _schools_by_policy(session, ctx).items():
        if not rules.enabled:
            continue
        year = rules.school_year(as_of.date())
        found = truancies(session, rules, school_ids, year, as_of.date())
        if not found:
            continue
        done = set(session.execute(select(TruancyTierRecord.pupil_id, TruancyTierRecord.occurrence)
                                   .where(TruancyTierRecord.school_year == year)).all())
        rows, specs = [], []
        for pid, episodes in found.items():
            for occurrence, tier in rules.actions_due(len(episodes)):
                if (pid, occurrence) in done:
                    continue
                first_day, sid, cid, _seq, cal = episodes[occurrence - 1]
                rows.append({"pupil_id": pid, "school_id": sid, "school_year": year, "occurrence": occurrence,
                             "tier": tier.tier, "first_day": first_day, "policy": policy_key, "created_at": as_of})
                specs.append((tier, sid, cid, cal))
        if not rows:
            continue
        ids = list(session.scalars(insert(TruancyTierRecord).returning(TruancyTierRecord.id, sort_by_parameter_order=True),
                                   rows))
        duties, events = [], []
        for rid, row, (tier, sid, cid, cal) in zip(ids, rows, specs):
            duties.append({
                "pupil_id": row["pupil_id"], "school_id": sid, "class_id": cid, "source": "truancy", "kind": "tier",
                "ref_id": rid, "action": tier.action, "label": tier.label, "role": tier.role,
                "owner_id": ctx.owners.resolve(sid, cid, tier.role),
                "due_at": ctx.due_at(cal, as_of.date(), tier.due_school_days, tier.due_time),
                "status": "open", "created_at": as_of, "overdue_at": None, "done_at": None, "done_by": None, "note": "",
            })
            events.append(event_row(
                pupil_id=row["pupil_id"], subject="truancy", ref_id=rid, event="tier_reached", actor=actor, at=as_of,
                now=as_of, reason=f"本学年第{row['occurrence']}次旷课（{row['first_day'].isoformat()}起）：{tier.label}",
                payload={"tier": tier.tier, "occurrence": row["occurrence"], "school_year": year, "policy": policy_key,
                         "count": rules.count, "documents": tier.documents}))
            by_tier[tier.tier] += 1
        session.execute(insert(PreventionDuty), duties)
        session.execute(insert(PreventionEvent), events)
        new_ids += ids
    session.flush()
    return {"new": len(new_ids), "by_tier": {f"tier_{k}": v for k, v in sorted(by_tier.items())}, "ids": new_ids}


def pupil_tiers(session: Session, *, scope: Scope = EVERYTHING, school_year: int, masked: bool = False) -> list[dict]:
    """Pupils with truancies this school year: how many, the tier reached, the open duty if any."""
    agg = (select(TruancyTierRecord.pupil_id, func.max(TruancyTierRecord.occurrence).label("n"),
                  func.max(TruancyTierRecord.tier).label("tier"), func.max(TruancyTierRecord.first_day).label("last"))
           .where(TruancyTierRecord.school_year == school_year).group_by(TruancyTierRecord.pupil_id).subquery())
    q = (select(Pupil, SchoolClass.name, agg.c.n, agg.c.tier, agg.c.last).join(agg, agg.c.pupil_id == Pupil.id)
         .join(SchoolClass, SchoolClass.id == Pupil.class_id))
    q = scope.apply(q, school_col=Pupil.school_id, class_col=Pupil.class_id)
    return [{"pupil_id": p.id, "pupil": mask_name(p.name) if masked else p.name, "student_no": p.student_no,
             "class": k, "truancies": n, "tier": tier, "last": last}
            for p, k, n, tier, last in session.execute(q.order_by(agg.c.tier.desc(), agg.c.n.desc(), Pupil.id))]


def history(session: Session, pupil_id: int, school_year: int) -> list[dict]:
    """A pupil's tier rows of the year with their duties (oldest first)."""
    q = (select(TruancyTierRecord, PreventionDuty)
         .outerjoin(PreventionDuty, (PreventionDuty.source == "truancy") & (PreventionDuty.ref_id == TruancyTierRecord.id))
         .where(TruancyTierRecord.pupil_id == pupil_id, TruancyTierRecord.school_year == school_year)
         .order_by(TruancyTierRecord.occurrence))
    return [{"tier_id": t.id, "document_id": None, "occurrence": t.occurrence, "tier": t.tier, "first_day": t.first_day, "policy": t.policy,
             "action": d.label if d else "", "status": d.status if d else "", "due_at": d.due_at if d else None,
             "duty_id": d.id if d else None} for t, d in session.execute(q)]
