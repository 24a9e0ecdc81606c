"""责任追究 evidence, 评优一票否决 and the township ranking: the one read model (seed 001, seed 003 二, 三.4, 五).

:func:`evidence` is what the evidence sheet (documents ``accountability_sheet``: PDF, XLSX), the
/accountability page, its CSV and ``GET /api/accountability`` all show: every duty of **every kind** of the
duty ledger (:mod:`store.duties.ledger` — case ladder, census, gate/truancy, watch list, calendar, 约谈
follow-up, 责任书 signature, and any kind added later) that fell due in the period and was not done by its
deadline, plus the case duties done late and those left overdue on cases since closed, plus the
reconciliation differences (:func:`store.reporting.reconcile.evidence`). Each row names the person, their
role and unit, and the seed ground (``machines.vocabulary.ACCOUNTABILITY_GROUNDS``: per kind/action, as data).

:func:`veto_list` derives the year's 评优一票否决 list from the figures read model
(:func:`store.reporting.reports.ledger_figures_many`): schools and classes whose dropout rate is over their
policy's ``standard_dropout_rate``, and schools whose submitted figures hid dropouts (上报少于台账).
:func:`township_ranking` ranks the townships of the policies that ask for one (``accountability.ranking``) by
dropout rate, then by the share of their duties not done on time.

The system records facts; whether and how anyone is held to account is the authorities' decision.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.identity import mask_name
from machines.vocabulary import RECONCILIATION_GROUND, VETO_REASON_LABELS, accountability_ground

from store.access.accounts import school_ids_in
from store.access.scope import EVERYTHING, Scope
from store.duties import ledger as dl
from store.models import Case, Duty, Jurisdiction, Pupil, School, SchoolClass, Staff
from store.policy_files import PolicyRegistry
from store.reporting import reports as rp

ALL_STATUSES = ("open", "overdue", "done")


def _whole(scope: Scope) -> bool:
    return scope.school_ids is None and scope.township_ids is None and scope.class_ids is None


class _Roles:
    """Role labels by policy name (the policy's own words), the first loaded policy for county-wide duties."""

    def __init__(self, session: Session):
        self.registry, self.cache = PolicyRegistry(session), {}

    def label(self, policy_name: str | None, role: str | None) -> str:
        if not role:
            return ""
        name = policy_name or "default"
        if name not in self.cache:
            try:
                self.cache[name] = dict(self.registry.get(name).roles)
            except Exception:  # no such policy loaded
                self.cache[name] = {}
        return self.cache[name].get(role, role)


def _row(kind: str, *, duty_id, ref_id, person, owner_id, role, role_label, unit, school_id, pupil, action, action_label,
         context, due_at: datetime, done_at: datetime | None, cutoff: datetime) -> dict[str, Any]:
    seed, ground = accountability_ground(kind, action)
    late = ((done_at or cutoff) - due_at).total_seconds() / 3600
    return {"kind": kind, "kind_label": dl.KIND_LABELS.get(kind, kind), "key": dl.DutyRef(kind, duty_id).key,
            "duty_id": duty_id, "ref_id": ref_id, "href": dl.href(kind, ref_id), "case_id": ref_id if kind == "case" else None,
            "person": person, "owner_id": owner_id, "role": role, "role_label": role_label, "unit": unit,
            "school_id": school_id, "pupil": pupil, "action": action, "duty_label": action_label, "context": context,
            "due_at": due_at, "done_at": done_at, "status": "done_late" if done_at else "not_done",
            "hours_late": round(max(late, 0.0), 1), "ground": ground, "ground_seed": seed}


def overdue_rows(session: Session, scope: Scope, start: date, end: date, as_of: datetime, *,
                 masked: bool = False) -> list[dict[str, Any]]:
    """Every duty of every ledger kind due in [start, end] (and by ``as_of``) not done by its deadline, and those
    due before ``start`` still not done (carried over: ``carried_over``)."""
    p_start = datetime.combine(start, time.min)
    cutoff = min(as_of, datetime.combine(end + timedelta(days=1), time.min))
    roles = _Roles(session)
    u = dl.ledger(statuses=ALL_STATUSES, due_by=cutoff)
    q = (select(u, School.name.label("school"), School.policy_name.label("policy_name"), Staff.name.label("owner"))
         .outerjoin(School, School.id == u.c.school_id).outerjoin(Staff, Staff.id == u.c.owner_id)
         .where(u.c.due_at < cutoff,
                ((u.c.due_at >= p_start) & ((u.c.status != "done") | (u.c.done_at > u.c.due_at)))
                | ((u.c.due_at < p_start) & (u.c.status != "done"))))  # still undone from before: carried over
    q = scope.apply(q, school_col=u.c.school_id, class_col=u.c.class_id)
    rows, seen = [], set()
    mapped = session.execute(q).mappings().all()
    rule_labels = dl._rule_labels(session, {r["policy_name"] for r in mapped if r["kind"] == "watch"})
    for r in mapped:
        done = r["done_at"] if r["status"] == "done" else None
        rows.append(_row(
            r["kind"], duty_id=r["id"], ref_id=r["ref_id"], person=r["owner"], owner_id=r["owner_id"], role=r["role"],
            role_label=roles.label(r["policy_name"], r["role"]), unit=r["school"] or "全县", school_id=r["school_id"],
            pupil=(mask_name(r["pupil_name"]) if masked and r["pupil_name"] else r["pupil_name"]), action=r["action"],
            action_label=dl.action_label(r["kind"], r["action"], r["label"]),
            context=dl.context_label(r["kind"], r["state"], rule_labels.get(r["policy_name"])),
            due_at=r["due_at"], done_at=done, cutoff=cutoff))
        seen.add(rows[-1]["key"])
    # case duties of cases closed since (the ledger lists open cases' duties): left overdue or done late
    q = (select(Duty, Case, Pupil.name, School.name, School.policy_name, Staff.name)
         .join(Case, Case.id == Duty.case_id).join(Pupil, Pupil.id == Case.pupil_id).join(School, School.id == Case.school_id)
         .outerjoin(Staff, Staff.id == Duty.owner_id)
         .where(Duty.due_at >= p_start, Duty.due_at < cutoff, Case.state.not_in(dl.OPEN_CASE),
                (Duty.status == "overdue") | Duty.done_late.is_(True)))
    for d, c, pupil, school, policy_name, owner in session.execute(scope.apply(q)):
        key = dl.DutyRef("case", d.id).key
        if key in seen:
            continue
        rows.append(_row(
            "case", duty_id=d.id, ref_id=c.id, person=owner, owner_id=d.owner_id, role=d.role,
            role_label=roles.label(policy_name, d.role), unit=school, school_id=c.school_id,
            pupil=mask_name(pupil) if masked else pupil, action=d.action, action_label=dl.action_label("case", d.action, None),
            context=dl.context_label("case", d.step), due_at=d.due_at, done_at=d.done_at if d.status == "done" else None,
            cutoff=cutoff))
    for r in rows:
        r["carried_over"] = r["due_at"] < p_start
    rows.sort(key=lambda r: (r["due_at"], r["kind"], r["duty_id"]))
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Missed duties per person (责任人), most first."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        s = out.setdefault((r["owner_id"], r["person"], r["role_label"], r["unit"]),
                           {"person": r["person"], "owner_id": r["owner_id"], "role": r["role"],
                            "role_label": r["role_label"], "unit": r["unit"], "count": 0, "open": 0, "done_late": 0,
                            "kinds": Counter()})
        s["count"] += 1
        s["open"] += r["done_at"] is None
        s["done_late"] += r["done_at"] is not None
        s["kinds"][r["kind_label"]] += 1
    for s in out.values():
        s["kinds"] = dict(s["kinds"])
    return sorted(out.values(), key=lambda s: (-s["count"], s["person"] or ""))


def by_kind(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """How many missed duties of each kind: the sheet's count of every kind."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        k = out.setdefault(r["kind"], {"kind": r["kind"], "label": r["kind_label"], "count": 0, "open": 0})
        k["count"] += 1
        k["open"] += r["done_at"] is None
    return sorted(out.values(), key=lambda k: (-k["count"], k["kind"]))


def reconciliation(session: Session, school_ids: list[int], start: date, end: date) -> list[dict[str, Any]]:
    from store.reporting.reconcile import evidence as differences

    seed, ground = RECONCILIATION_GROUND
    return [{**r, "ground_seed": seed if r["hides"] else "003 二(2)", "seed_words": ground}
            for r in differences(session, school_ids, start, end)]


def evidence(session: Session, scope: Scope, start: date, end: date, as_of: datetime, *,
             masked: bool = False) -> dict[str, Any]:
    """The accountability evidence of ``scope`` for [start, end] as of ``as_of`` (see the module doc)."""
    rows = overdue_rows(session, scope, start, end, as_of, masked=masked)
    return {"start": start, "end": end, "as_of": min(as_of, datetime.combine(end + timedelta(days=1), time.min)),
            "rows": rows, "owners": summary(rows), "kinds": by_kind(rows),
            "reconciliation": reconciliation(session, school_ids_in(session, scope), start, end)}


# -- 评优一票否决 -------------------------------------------------------------------------------------
def year_period(year: int) -> rp.ReportPeriod:
    return rp.ReportPeriod("yearly", str(year), date(year, 1, 1), date(year, 12, 31))


def veto_list(session: Session, year: int, as_of: datetime, scope: Scope = EVERYTHING) -> dict[str, Any]:
    """The year's 评优一票否决 list: schools and classes over their policy's standard dropout rate (one
    ``ledger_figures_many`` call for all of them) and schools that hid dropouts in a submitted report."""
    ids = set(school_ids_in(session, scope))
    schools = [s for s in rp.scopes(session, "school") if s.school_ids[0] in ids]
    classes = [c for s in schools for c in rp.row_scopes(session, s)]
    if scope.class_ids is not None:
        classes = [c for c in classes if c.class_ids[0] in scope.class_ids]
    figures = rp.ledger_figures_many(session, schools + classes, year_period(year), as_of)
    info = {sid: (name, policy, town) for sid, name, policy, town in session.execute(
        select(School.id, School.name, School.policy_name, Jurisdiction.name)
        .join(Jurisdiction, Jurisdiction.id == School.township_id))}
    registry = PolicyRegistry(session)
    standard = {p: registry.get(p).standard_dropout_rate for p in {v[1] for v in info.values()}}
    head = dict(session.execute(select(SchoolClass.id, Staff.name).join(Staff, Staff.id == SchoolClass.head_teacher_id)).all())
    hidden: dict[int, list[dict]] = defaultdict(list)
    rules_of = {p: registry.get(p).accountability for p in standard}
    for r in reconciliation(session, sorted(ids), date(year, 1, 1), date(year, 12, 31)):
        if r["hides"]:
            hidden[r["school"]].append(r)
    out = []
    for sc, f in zip(schools + classes, figures):
        sid = sc.school_ids[0]
        name, policy, town = info[sid]
        reasons = []
        if f["dropout_rate"] > standard[policy]:
            reasons.append("over_standard")
        if sc.level == "school" and rules_of[policy].veto_hidden_dropouts and hidden.get(name):
            reasons.append("hidden_dropouts")
        if not reasons:
            continue
        out.append({"level": sc.level, "level_label": "班级" if sc.level == "class" else "学校", "township": town,
                    "school": name, "name": name if sc.level == "school" else f"{name} {sc.name}",
                    "class_id": sc.class_ids[0] if sc.class_ids else None,
                    "head_teacher": head.get(sc.class_ids[0]) if sc.class_ids else None,
                    "enrolled": f["enrolled"], "dropouts": f["dropouts"], "dropout_rate": f["dropout_rate"],
                    "standard_rate": standard[policy], "reasons": reasons,
                    "reason_labels": [VETO_REASON_LABELS[x] for x in reasons],
                    "hidden": [{"period": h["period"], "label": h["label"], "submitted": h["submitted"], "ledger": h["ledger"]}
                               for h in hidden.get(name, [])] if sc.level == "school" else [],
                    "ground_seed": "003 三.4, 五; 001 三.6"})
    out.sort(key=lambda v: (v["level"] != "school", v["township"], v["name"]))
    return {"year": year, "as_of": figures[0]["as_of"] if figures else None, "rows": out}


# -- township ranking ---------------------------------------------------------------------------------
def township_ranking(session: Session, period: rp.ReportPeriod, as_of: datetime, scope: Scope = EVERYTHING) -> dict[str, Any]:
    """The townships whose schools' policy asks for a ranking, best first: by dropout rate (the figures read
    model), then by the share of duties due in the period not done on time (the duty ledger, every kind).
    The policy's bottom places (``ranking_bottom``) are marked, and those also over the standard rate are
    the ones the seed says are 约谈'd (seed 001 毕节 二)."""
    registry = PolicyRegistry(session)
    policy_of = dict(session.execute(select(School.id, School.policy_name)).all())
    asking = {p for p in set(policy_of.values()) if registry.get(p).accountability.ranking}
    towns = [t for t in rp.scopes(session, "township") if any(policy_of[s] in asking for s in t.school_ids)]
    if not towns:
        return {"period": period.label, "rows": [], "asked": False}
    figures = rp.ledger_figures_many(session, towns, period, as_of)
    town_of = dict(session.execute(select(School.id, School.township_id)).all())
    cutoff = rp.cutoff_of(period, as_of)
    u = dl.ledger(statuses=ALL_STATUSES, due_by=cutoff)
    due, late = Counter(), Counter()
    for school_id, status, done_at, due_at in session.execute(
            select(u.c.school_id, u.c.status, u.c.done_at, u.c.due_at)
            .where(u.c.school_id.is_not(None), u.c.due_at >= datetime.combine(period.start, time.min))):
        t = town_of.get(school_id)
        due[t] += 1
        late[t] += status != "done" or (done_at is not None and done_at > due_at)
    tid = {j.code: j.id for j in session.scalars(select(Jurisdiction).where(Jurisdiction.level == "township"))}
    rows = []
    for t, f in zip(towns, figures):
        policies = {policy_of[s] for s in t.school_ids}
        std = min(registry.get(p).standard_dropout_rate for p in policies)
        n, k = due[tid.get(t.code)], late[tid.get(t.code)]
        rows.append({"code": t.code, "township": t.name, "township_id": tid.get(t.code), "enrolled": f["enrolled"],
                     "dropouts": f["dropouts"], "dropout_rate": f["dropout_rate"], "standard_rate": std,
                     "over_standard": f["dropout_rate"] > std, "duties_due": n, "duties_late": k,
                     "late_share": round(k / n, 4) if n else 0.0,
                     "bottom_n": max(registry.get(p).accountability.ranking_bottom for p in policies)})
    rows.sort(key=lambda r: (r["dropout_rate"], r["late_share"], r["code"]))
    for i, r in enumerate(rows, start=1):
        r["rank"] = i
        r["bottom"] = i > len(rows) - r["bottom_n"]
        r["talk_due"] = r["bottom"] and r["over_standard"]
    if scope.township_ids is not None:
        rows = [r for r in rows if r["township_id"] in scope.township_ids]
    return {"period": period.label, "rows": rows, "asked": True, "as_of": figures[0]["as_of"] if figures else None}
