"""The data of the periodic reports, read from the store (DOMAIN.md §4, §5).

- ``monthly_report``: a school (rows: classes), a township (rows: schools) or a county (rows:
  townships) for one month: open cases by step at month end, new/returned/excused/escalated in
  the month, dropouts and the dropout rate against the policy's standard, special groups,
  reasons, the work done (actions recorded) and the day-by-day figures for the chart.
- ``spot_check_sheet``: the quarter's random sample of classes (seeded by county and quarter, so
  the draw can be checked), with what the ledger says for each.
- ``accountability_sheet``: every duty that went overdue or was done late in the period, with the
  named person, the case and the ground of seed 001 it falls under.

States at a past date are read from the case history (the last event before the date), so a
report for last month says what was true then, not now.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from machines.states import ACTION_LABELS, LADDER, REASON_LABELS, STATE_LABELS, Action, CaseState
from store.models import Case, CaseEvent, Duty, Jurisdiction, Pupil, School, SchoolClass, SchoolDay, Staff
from store.policy_files import PolicyRegistry

from .facts import SPECIAL_GROUP_LABELS
from .samples import SPECIAL, STEP_COLUMNS, WORK, sum_rows

DROPOUT_STEPS = {CaseState.collective_visit.value, CaseState.township_notice.value, CaseState.judicial_notice.value}
OPEN = {s.value for s in LADDER}

# seed 001 grounds (责任追究) for a missed duty of each action.
GROUNDS = {
    "record_phone_call": "发现学生缺勤未及时联系家长、报告教务处（对学生辍学不采取必要措施）",
    "record_home_visit": "对学生不到校没有及时家访做动员说服工作，贻误劝返时机",
    "record_collective_visit": "未按期组织集体家访，贻误劝返时机",
    "assign_helpers": "未按期落实三帮一帮扶责任人",
    "serve_township_notice": "未按期送达辍学学生返校通知书",
    "serve_legal_notice": "未按期送达督促送子女入学通知书",
}


@dataclass(frozen=True)
class Scope:
    level: str  # school | township | county
    code: str

    @classmethod
    def parse(cls, text: str) -> "Scope":
        level, _, code = text.partition(":")
        if level not in ("school", "township", "county") or not code:
            raise ValueError(f"scope must be school:<code>, township:<code> or county:<code>, got {text!r}")
        return cls(level, code)


def month_bounds(period: str) -> tuple[date, date]:
    y, m = (int(x) for x in period.split("-"))
    start = date(y, m, 1)
    return start, date(y + m // 12, m % 12 + 1, 1) - timedelta(days=1)


def quarter_bounds(period: str) -> tuple[date, date]:
    y, q = period.upper().split("Q")
    y, q = int(y), int(q)
    start = date(y, 3 * (q - 1) + 1, 1)
    end = date(y + (3 * q) // 12, (3 * q) % 12 + 1, 1) - timedelta(days=1)
    return start, end


def report_data(session: Session, kind: str, *, scope: str, period: str, now: datetime) -> dict[str, Any]:
    sc = Scope.parse(scope)
    if kind == "monthly_report":
        return monthly_report(session, sc, period)
    if kind == "spot_check_sheet":
        return spot_check_sheet(session, sc, period)
    if kind == "accountability_sheet":
        return accountability_sheet(session, sc, period, as_of=now)
    raise KeyError(kind)


# -- scope helpers ----------------------------------------------------------------------------------
def _unit(session: Session, sc: Scope) -> tuple[str, list[School]]:
    if sc.level == "school":
        school = session.scalar(select(School).where(School.code == sc.code))
        if school is None:
            raise LookupError(f"unknown school {sc.code}")
        return school.name, [school]
    j = session.scalar(select(Jurisdiction).where(Jurisdiction.code == sc.code, Jurisdiction.level == sc.level))
    if j is None:
        raise LookupError(f"unknown {sc.level} {sc.code}")
    townships = [j.id] if sc.level == "township" else list(
        session.scalars(select(Jurisdiction.id).where(Jurisdiction.parent_id == j.id, Jurisdiction.level == "township")))
    schools = list(session.scalars(select(School).where(School.township_id.in_(townships or [-1])).order_by(School.code)))
    return j.name, schools


def _policy_of(session: Session, schools: list[School]):
    name = schools[0].policy_name if schools else "default"
    try:
        return PolicyRegistry(session).get(name)
    except Exception:  # no policy loaded (a bare test database): the report still renders
        return None


def _state_at(events: list[tuple], cutoff: datetime) -> str | None:
    """The state after the last event before ``cutoff`` (events: (seq, event, to_state, at), in order)."""
    state = None
    for _, _, to_state, at in events:
        if at >= cutoff:
            break
        state = to_state
    return state


# -- monthly report -----------------------------------------------------------------------------------
def monthly_report(session: Session, sc: Scope, period: str) -> dict[str, Any]:
    start, end = month_bounds(period)
    unit_name, schools = _unit(session, sc)
    school_ids = [s.id for s in schools]
    policy = _policy_of(session, schools)
    standard = policy.standard_dropout_rate if policy else 0.006
    after_end = datetime.combine(end + timedelta(days=1), datetime.min.time())
    month_start = datetime.combine(start, datetime.min.time())

    cases = session.execute(
        select(Case.id, Case.school_id, Case.class_id, Case.opened_on, Case.reason, Case.special_groups)
        .where(Case.school_id.in_(school_ids or [-1]), Case.opened_on <= end)
    ).all()
    case_ids = [c.id for c in cases]
    events: dict[int, list[tuple]] = defaultdict(list)
    for chunk in _chunks(case_ids, 5000):
        for cid, seq, ev, to_state, at in session.execute(
            select(CaseEvent.case_id, CaseEvent.seq, CaseEvent.event, CaseEvent.to_state, CaseEvent.at)
            .where(CaseEvent.case_id.in_(chunk)).order_by(CaseEvent.case_id, CaseEvent.seq)
        ):
            events[cid].append((seq, ev, to_state, at))

    # rows: classes of a school, schools of a township, townships of a county
    if sc.level == "school":
        classes = session.execute(
            select(SchoolClass.id, SchoolClass.name, func.count(Pupil.id))
            .outerjoin(Pupil, (Pupil.class_id == SchoolClass.id) & Pupil.enrolled.is_(True))
            .where(SchoolClass.school_id == schools[0].id).group_by(SchoolClass.id, SchoolClass.name)
            .order_by(SchoolClass.grade, SchoolClass.name)
        ).all()
        groups = [(name, n, lambda c, k=cid: c.class_id == k) for cid, name, n in classes]
        row_label, to = "班级", _township_name(session, schools[0]) + "人民政府"
    elif sc.level == "township":
        groups = [(s.name, s.enrolled, lambda c, k=s.id: c.school_id == k) for s in schools]
        row_label, to = "学校", _county_name(session, sc) + "教育局"
    else:
        by_township: dict[int, list[School]] = defaultdict(list)
        for s in schools:
            by_township[s.township_id].append(s)
        names = dict(session.execute(select(Jurisdiction.id, Jurisdiction.name).where(Jurisdiction.id.in_(list(by_township) or [-1]))).all())
        groups = [(names[t], sum(s.enrolled for s in ss), lambda c, ids=frozenset(s.id for s in ss): c.school_id in ids)
                  for t, ss in sorted(by_township.items(), key=lambda kv: names[kv[0]])]
        row_label, to = "乡镇", "上级教育行政部门"

    def figures(name: str, enrolled: int, member) -> dict:
        mine = [c for c in cases if member(c)]
        by_step = {s["state"]: 0 for s in STEP_COLUMNS}
        special = {g["key"]: 0 for g in SPECIAL}
        dropouts = new = 0
        moved = Counter()
        for c in mine:
            evs = events.get(c.id, [])
            state = _state_at(evs, after_end)
            if start <= c.opened_on <= end:
                new += 1
            for _, ev, to_state, at in evs:
                if month_start <= at < after_end and ev in ("mark_returned", "excuse", "escalate_outside"):
                    moved[ev] += 1
            if state in OPEN:
                by_step[state] += 1
                for g in c.special_groups or []:
                    if g in special:
                        special[g] += 1
            if state in DROPOUT_STEPS or state == CaseState.escalated.value:
                dropouts += 1
        rate = dropouts / enrolled if enrolled else 0.0
        return {"name": name, "enrolled": enrolled, "open_by_step": by_step, "open_total": sum(by_step.values()),
                "new_cases": new, "returned": moved["mark_returned"], "excused": moved["excuse"],
                "escalated": moved["escalate_outside"], "dropouts": dropouts, "rate": round(rate, 6),
                "over_standard": rate > standard, "special": special}

    rows = [figures(name, enrolled, member) for name, enrolled, member in groups]
    totals = sum_rows(rows, standard) if rows else sum_rows([figures(unit_name, 0, lambda c: False)], standard)

    active = [c for c in cases if _state_at(events.get(c.id, []), month_start) in OPEN | {None}
              and (_state_at(events.get(c.id, []), after_end) is not None)]
    reasons = Counter(c.reason for c in active)
    total_reasons = sum(reasons.values())
    work = Counter(ev for c in cases for _, ev, _, at in events.get(c.id, []) if month_start <= at < after_end)

    due_day = {"school": policy.reports.school_due_day if policy else 23,
               "township": policy.reports.township_due_day if policy else 25}.get(sc.level)
    return {
        "level": sc.level, "level_label": {"school": "学校", "township": "乡镇", "county": "县"}[sc.level],
        "unit": {"name": unit_name, "code": sc.code}, "to": to, "row_label": row_label,
        "period": period, "month_label": f"{start.year}年{start.month}月",
        "period_start": start.isoformat(), "period_end": end.isoformat(),
        "due_on": (date(start.year, start.month, due_day) if due_day else end).isoformat(),
        "steps": STEP_COLUMNS, "special_labels": SPECIAL, "rows": rows, "totals": totals,
        "reasons": [{"reason": r, "label": REASON_LABELS.get(r, r), "count": n, "share": round(n / total_reasons, 4)}
                    for r, n in reasons.most_common()],
        "work": [{"key": k, "label": label, "count": work[k]} for k, label in WORK],
        "daily": _daily(session, schools, cases, events, start, end),
        "standard_rate": standard,
        "over_standard": [r["name"] for r in rows if r["over_standard"]],
        "problems": None, "next_steps": None,
        "prepared_by": _staff_name(session, schools, "academic_office") if sc.level == "school" else None,
        "approved_by": _staff_name(session, schools, "principal") if sc.level == "school" else None,
        "watch_list": _watch_list(session, school_ids, start, end),
    }


def _watch_list(session: Session, school_ids: list[int], start: date, end: date) -> dict[str, Any]:
    """重点关注学生 (at-risk watch list) outcomes of the month, from store.risk."""
    from store.risk import watch_outcomes

    return watch_outcomes(session, school_ids, start, end)


def _daily(session, schools, cases, events, start: date, end: date) -> list[dict]:
    keys = sorted({s.calendar_key for s in schools}) or ["default"]
    days = sorted(set(session.scalars(
        select(SchoolDay.day).where(SchoolDay.calendar_key.in_(keys), SchoolDay.day >= start, SchoolDay.day <= end))))
    if not days:  # calendar not materialised: weekdays
        days = [start + timedelta(days=i) for i in range((end - start).days + 1) if (start + timedelta(days=i)).weekday() < 5]
    out = []
    for d in days:
        cutoff = datetime.combine(d + timedelta(days=1), datetime.min.time())
        day_start = datetime.combine(d, datetime.min.time())
        new = sum(1 for c in cases if c.opened_on == d)
        back = sum(1 for c in cases for _, ev, _, at in events.get(c.id, []) if ev == "mark_returned" and day_start <= at < cutoff)
        open_n = sum(1 for c in cases if _state_at(events.get(c.id, []), cutoff) in OPEN)
        out.append({"day": d.isoformat(), "new": new, "returned": back, "open": open_n})
    return out


def _township_name(session: Session, school: School) -> str:
    return session.scalar(select(Jurisdiction.name).where(Jurisdiction.id == school.township_id)) or ""


def _county_name(session: Session, sc: Scope) -> str:
    j = session.scalar(select(Jurisdiction).where(Jurisdiction.code == sc.code))
    parent = session.get(Jurisdiction, j.parent_id) if j is not None and j.parent_id else None
    return parent.name if parent else ""


def _staff_name(session: Session, schools: list[School], role: str) -> str | None:
    if not schools:
        return None
    return session.scalar(select(Staff.name).where(Staff.school_id == schools[0].id, Staff.role == role).order_by(Staff.id).limit(1))


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


# -- quarterly spot check --------------------------------------------------------------------------------
def spot_check_sheet(session: Session, sc: Scope, period: str) -> dict[str, Any]:
    start, end = quarter_bounds(period)
    unit_name, schools = _unit(session, sc)
    policy = _policy_of(session, schools)
    rate = policy.reports.spot_check_sample if policy else 0.2
    classes = session.execute(
        select(SchoolClass.id, SchoolClass.name, SchoolClass.grade, School.id, School.name, Jurisdiction.name, Staff.name)
        .join(School, School.id == SchoolClass.school_id).join(Jurisdiction, Jurisdiction.id == School.township_id)
        .outerjoin(Staff, Staff.id == SchoolClass.head_teacher_id)
        .where(School.id.in_([s.id for s in schools] or [-1])).order_by(School.code, SchoolClass.grade, SchoolClass.name)
    ).all()
    rng = random.Random(f"{sc.level}:{sc.code}:{period.upper()}")
    k = min(len(classes), max(1, round(len(classes) * rate))) if classes else 0
    sample = sorted(rng.sample(range(len(classes)), k))
    chosen = [classes[i] for i in sample]
    ids = [c[0] for c in chosen]
    enrolled = dict(session.execute(select(Pupil.class_id, func.count()).where(Pupil.class_id.in_(ids or [-1]), Pupil.enrolled.is_(True))
                                    .group_by(Pupil.class_id)).all())
    q_start = datetime.combine(start, datetime.min.time())
    q_end = datetime.combine(end + timedelta(days=1), datetime.min.time())
    open_n = dict(session.execute(select(Case.class_id, func.count()).where(Case.class_id.in_(ids or [-1]), Case.state.in_(OPEN))
                                  .group_by(Case.class_id)).all())
    new_n = dict(session.execute(select(Case.class_id, func.count()).where(Case.class_id.in_(ids or [-1]), Case.opened_on >= start,
                                                                           Case.opened_on <= end).group_by(Case.class_id)).all())
    back_n = dict(session.execute(
        select(Case.class_id, func.count()).join(CaseEvent, CaseEvent.case_id == Case.id)
        .where(Case.class_id.in_(ids or [-1]), CaseEvent.event == "mark_returned", CaseEvent.at >= q_start, CaseEvent.at < q_end)
        .group_by(Case.class_id)).all())
    q = int(period.upper().split("Q")[1])
    return {
        "level": sc.level, "unit": {"name": unit_name, "code": sc.code}, "period": period.upper(), "quarter": period.upper(),
        "quarter_label": f"{start.year}年第{'一二三四'[q - 1]}季度", "sample_rate": rate, "as_of": end.isoformat(),
        "rows": [{"township": t, "school": s, "class_name": name, "head_teacher": teacher, "enrolled": enrolled.get(cid, 0),
                  "ledger_open": open_n.get(cid, 0), "ledger_returned": back_n.get(cid, 0), "ledger_new": new_n.get(cid, 0)}
                 for cid, name, _, _, s, t, teacher in chosen],
    }


# -- accountability ---------------------------------------------------------------------------------------
def accountability_sheet(session: Session, sc: Scope, period: str, *, as_of: datetime) -> dict[str, Any]:
    start, end = month_bounds(period) if "Q" not in period.upper() else quarter_bounds(period)
    unit_name, schools = _unit(session, sc)
    p_start = datetime.combine(start, datetime.min.time())
    p_end = datetime.combine(end + timedelta(days=1), datetime.min.time())
    cutoff = min(as_of, p_end)
    rows_db = session.execute(
        select(Duty, Case, Pupil.name, School.name, Staff.name)
        .join(Case, Case.id == Duty.case_id).join(Pupil, Pupil.id == Case.pupil_id).join(School, School.id == Case.school_id)
        .outerjoin(Staff, Staff.id == Duty.owner_id)
        .where(Case.school_id.in_([s.id for s in schools] or [-1]), Duty.due_at >= p_start, Duty.due_at < p_end,
               (Duty.status == "overdue") | Duty.done_late.is_(True) | ((Duty.status == "open") & (Duty.due_at < cutoff)))
        .order_by(Duty.due_at, Duty.id)
    ).all()
    registry = PolicyRegistry(session)
    rows = []
    for duty, case, pupil, school, person in rows_db:
        try:
            role_label = registry.get(case.policy_name, case.policy_version).role_label(duty.role)
        except Exception:
            role_label = duty.role
        finished = duty.done_at
        late = ((finished or cutoff) - duty.due_at).total_seconds() / 3600
        rows.append({
            "person": person, "role": duty.role, "role_label": role_label, "unit": school, "case_id": case.id,
            "pupil": pupil, "duty": duty.action,
            "duty_label": ACTION_LABELS[Action(duty.action)] if duty.action in Action.__members__ else duty.action,
            "step_label": STATE_LABELS[CaseState(duty.step)] if duty.step in CaseState.__members__ else duty.step,
            "due_at": duty.due_at.strftime("%Y-%m-%d %H:%M"),
            "done_at": finished.strftime("%Y-%m-%d %H:%M") if finished else None,
            "status": duty.status, "hours_late": round(max(late, 0.0), 1),
            "ground": GROUNDS.get(duty.action, "未按期履行控辍保学职责"),
        })
    label = f"{start.year}年{start.month}月" if "Q" not in period.upper() else f"{start.year}年第{'一二三四'[(start.month - 1) // 3]}季度"
    return {"level": sc.level, "unit": {"name": unit_name, "code": sc.code}, "period": period, "period_label": label,
            "period_start": start.isoformat(), "period_end": end.isoformat(), "as_of": cutoff.strftime("%Y-%m-%d %H:%M"),
            "rows": rows, "summary": accountability_summary(rows),
            "reconciliation": _reconciliation(session, schools, start, end)}


def _reconciliation(session: Session, schools: list[School], start: date, end: date) -> list[dict[str, Any]]:
    """Submitted monthly figures that differ from the ledger (瞒报/数据不实), accepted or not (store.reconcile)."""
    from store.reconcile import evidence

    return evidence(session, [s.id for s in schools], start, end)


def accountability_summary(rows: list[dict]) -> list[dict]:
    """Missed duties per person (责任人), most first: the evidence sheet's summary table."""
    summary: dict[tuple, dict] = {}
    for r in rows:
        s = summary.setdefault((r["person"], r["role_label"], r["unit"]),
                               {"person": r["person"], "role_label": r["role_label"], "unit": r["unit"], "count": 0, "open": 0})
        s["count"] += 1
        s["open"] += r["done_at"] is None
    return sorted(summary.values(), key=lambda s: (-s["count"], s["person"] or ""))


__all__ = ["report_data", "monthly_report", "spot_check_sheet", "accountability_sheet", "Scope", "SPECIAL_GROUP_LABELS"]
