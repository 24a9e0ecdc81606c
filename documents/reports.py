"""The data of the periodic reports, as the store computed them (DOMAIN.md §4, §5).

- ``monthly_report``: a school (rows: classes), a township (rows: schools) or a county (rows:
  townships) for one month: the figures of ``store.reporting.reports`` (the one read model — what the filing
  stored if the month was filed, else the ledger at the month's end), laid out for the 月报表, and
  the day-by-day figures for the chart.
- ``spot_check_sheet``: the quarter's sealed sample (``store.reporting.reports.spot_check``), exactly the
  classes drawn, with what the ledger said for each when it was drawn.
- ``accountability_sheet``: every duty of every kind that went overdue or was done late in the period, with
  the named person and the seed ground it falls under (``store.reporting.accountability``, the one read model).

Nothing here counts cases: the documents render what the store computed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.states import LADDER, REASON_LABELS, STATE_LABELS
from machines.vocabulary import LEVEL_LABELS, REPORT_KIND_LABELS, REPORTED_GROUPS, WORK_EVENTS, event_label, special_group_label, state_label
from store.reporting import reports as rp
from store.models import Jurisdiction, School, SchoolClass, Staff
from store.policy_files import PolicyRegistry

# the 月报表's columns, from the vocabulary
STEP_COLUMNS = [{"state": s.value, "label": STATE_LABELS[s]} for s in LADDER]
SPECIAL = [{"key": g, "label": special_group_label(g)} for g in REPORTED_GROUPS]
WORK = [(e, event_label(e)) for e in WORK_EVENTS]

@dataclass(frozen=True)
class ScopeArg:
    """A report's scope as written on the command line: ``school:<code>``, ``township:<code>``, ``county:<code>``."""

    level: str  # school | township | county
    code: str

    @classmethod
    def parse(cls, text: str) -> "ScopeArg":
        level, _, code = text.partition(":")
        if level not in ("school", "township", "county") or not code:
            raise ValueError(f"scope must be school:<code>, township:<code> or county:<code>, got {text!r}")
        return cls(level, code)


def month_bounds(period: str) -> tuple[date, date]:
    y, m = (int(x) for x in period.split("-"))
    p = rp.month_period(y, m)
    return p.start, p.end


quarter_bounds = rp.quarter_bounds


def report_data(session: Session, kind: str, *, scope: str, period: str, now: datetime) -> dict[str, Any]:
    sc = ScopeArg.parse(scope)
    if kind == "monthly_report":
        return monthly_report(session, sc, period, now=now)
    if kind == "spot_check_sheet":
        return spot_check_sheet(session, sc, period)
    if kind == "accountability_sheet":
        return accountability_sheet(session, sc, period, as_of=now)
    if kind == "referral_ledger":  # followup: 台账 (documents/referral_ledger.py)
        from documents.referral_ledger import referral_ledger
        name, schools = _unit(session, sc)
        return referral_ledger(session, sc, name, schools, *month_bounds(period), now=now)
    raise KeyError(kind)


# -- scope helpers ----------------------------------------------------------------------------------
def _unit(session: Session, sc: ScopeArg) -> tuple[str, list[School]]:
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


# -- monthly report -----------------------------------------------------------------------------------
def _row(name: str, f: dict[str, Any]) -> dict[str, Any]:
    """One row of the 月报表 from the store's figures (names only: nothing is counted here)."""
    return {"name": name, "enrolled": f["enrolled"], "open_by_step": f["open_by_step"],
            "open_total": sum(f["open_by_step"].values()), "new_cases": f["opened"], "returned": f["returned"],
            "excused": f["excused"], "escalated": f["escalated"], "dropouts": f["dropouts"], "rate": f["dropout_rate"],
            "over_standard": f.get("over_standard", False), "special": f["special_groups"]}


TERM_PERIOD_PREFIX = {"term_start": "ts", "term_end": "te"}  # a term report's document period: "ts:20260901"


def term_doc_period(kind: str, label: str) -> str:
    """The document period of a term report (≤ 16 characters, as ``documents.period`` holds)."""
    return f"{TERM_PERIOD_PREFIX[kind]}:{label}"


def _report_period(period: str) -> rp.ReportPeriod:
    """"2026-11" (a month), or "ts:20260901" / "te:20260901" (the 学期初/学期末 report of the term starting then)."""
    if ":" in period:
        from store.reporting.people import report_period

        prefix, label = period.split(":", 1)
        kind = next((k for k, v in TERM_PERIOD_PREFIX.items() if v == prefix), prefix)
        return report_period(kind, label)
    start, _ = month_bounds(period)
    return rp.month_period(start.year, start.month)


def monthly_report(session: Session, sc: ScopeArg, period: str, *, now: datetime | None = None) -> dict[str, Any]:
    """The 月报表 of a month, or with a term period ("ts:20260901") the same sheet as the
    学期初/学期末报告 (issue 17: the term reports' official PDF)."""
    month = _report_period(period)
    start, end = month.start, month.end
    unit_name, schools = _unit(session, sc)
    policy = _policy_of(session, schools)
    standard = policy.standard_dropout_rate if policy else 0.006
    scope = rp.ReportScope(sc.level, sc.code, unit_name, tuple(s.id for s in schools))
    as_of = now or datetime.combine(end, datetime.max.time())
    levels = _LevelPlan(session, scope, schools)
    figures = rp.figures_for(session, scope, month, as_of, standard, extra=levels.scopes)
    level_figures = figures.pop("extra", None)
    if level_figures is None and levels.scopes:  # a filed month: the levels at the moment it was filed
        level_figures = rp.ledger_figures_many(session, levels.scopes, month,
                                               datetime.fromisoformat(figures.get("as_of") or as_of.isoformat(sep=" ")))
    if sc.level == "school":
        row_label, to = "班级", _township_name(session, schools[0]) + "人民政府"
    elif sc.level == "township":
        row_label, to = "学校", _county_name(session, sc) + "教育局"
    else:
        row_label, to = "乡镇", "上级教育行政部门"
    rows = [_row(r["name"], r) for r in figures["rows"]]
    total_reasons = sum(figures["reasons"].values())
    due_day = {"school": policy.reports.school_due_day if policy else 23,
               "township": policy.reports.township_due_day if policy else 25}.get(sc.level)
    return {
        "level": sc.level, "level_label": LEVEL_LABELS[sc.level],
        "unit": {"name": unit_name, "code": sc.code}, "to": to, "row_label": row_label,
        "period": period, "month_label": f"{start.year}年{start.month}月" if month.kind == "monthly" else
        f"{start.year}年{start.month}月{start.day}日至{end.year}年{end.month}月{end.day}日",
        "title": None if month.kind == "monthly" else f"控辍保学{REPORT_KIND_LABELS[month.kind]}",
        "period_start": start.isoformat(), "period_end": end.isoformat(),
        "due_on": (date(start.year, start.month, due_day) if due_day and month.kind == "monthly" else end).isoformat(),
        "figures_as_of": figures["as_of"], "filed_at": figures.get("filed_at"),
        "steps": STEP_COLUMNS, "special_labels": SPECIAL, "rows": rows, "totals": {**_row("合计", figures)},
        "reasons": [{"reason": r, "label": REASON_LABELS.get(r, r), "count": n, "share": round(n / total_reasons, 4)}
                    for r, n in sorted(figures["reasons"].items(), key=lambda kv: (-kv[1], kv[0]))],
        "work": [{"key": k, "label": label, "count": figures["work_done"].get(k, 0)} for k, label in WORK],
        "daily": rp.daily_figures(session, [s.id for s in schools], start, end, rp.cutoff_of(month, as_of)),
        "standard_rate": standard,
        "over_standard": [r["name"] for r in rows if r["over_standard"]],
        **_signed(session, sc, month.label, schools, month.kind),
        "watch_list": figures.get("watch_list") or _watch_list(session, scope.school_ids, start, end),
        "levels": levels.tables(level_figures or []),
    }


LEVEL_BELOW = {"county": ("school", "class"), "township": ("class",), "school": ()}


class _LevelPlan:
    """The levels under the 月报表's rows, down to the classes (a county's schools and classes, a
    township's classes; a school's 月报表 rows are its classes already): the scope itself then each
    level's units, in the order their sheets list them (township, school code, grade, class name), as
    report scopes counted with the report's own figures (``figures_for(extra=…)``: one
    ``ledger_figures_many`` call, the one read model) or, for a filed month, at the moment it was filed.
    The XLSX shows each level as a sheet; the PDF prints the first level only."""

    def __init__(self, session: Session, scope: rp.ReportScope, schools: list[School]) -> None:
        self.level, self.below = scope.level, LEVEL_BELOW[scope.level]
        self.units: dict[str, list[tuple[rp.ReportScope, list[str]]]] = {}
        self.scopes: list[rp.ReportScope] = []
        if not self.below:
            return
        towns = {j.id: j for j in session.scalars(select(Jurisdiction).where(
            Jurisdiction.id.in_({s.township_id for s in schools} or {-1})))}
        town = {s.id: towns[s.township_id].name if s.township_id in towns else "" for s in schools}
        ordered = sorted(schools, key=lambda s: (towns[s.township_id].code if s.township_id in towns else "", s.code))
        rank = {s.id: i for i, s in enumerate(ordered)}
        by_id = {s.id: s for s in schools}
        classes = sorted(session.execute(select(SchoolClass.id, SchoolClass.name, SchoolClass.school_id, SchoolClass.grade)
                                         .where(SchoolClass.school_id.in_(list(by_id) or [-1]))).all(),
                         key=lambda c: (rank[c.school_id], c.grade, c.name, c.id))
        self.units["school"] = [(rp.ReportScope("school", s.code, s.name, (s.id,)), [town[s.id]]) for s in ordered]
        self.units["class"] = [(rp.ReportScope("class", str(c.id), c.name, (c.school_id,), (c.id,)),
                                ([town[c.school_id]] if scope.level == "county" else []) + [by_id[c.school_id].name])
                               for c in classes]
        self.scopes = [scope] + [sc for key in self.below for sc, _ in self.units[key]]

    def tables(self, figures: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One table per level: each unit's 月报表 row with the units above it, and the scope's 合计."""
        if not self.below:
            return []
        total, rest = figures[0], iter(figures[1:])
        parents = {"school": ["乡镇"], "class": (["乡镇"] if self.level == "county" else []) + ["学校"]}
        return [{"key": key, "label": LEVEL_LABELS.get(key, "班级"), "parents": parents[key],
                 "rows": [{**_row(sc.name, next(rest)), "parents": up} for sc, up in self.units[key]],
                 "totals": _row("合计", total)} for key in self.below]


def _signed(session: Session, sc: ScopeArg, period: str, schools: list[School], kind: str = "monthly") -> dict[str, Any]:
    """存在问题, 下一步, 填表人, 负责人 as the unit submitted and signed them (the latest version,
    ``store.reporting.people``); before a submission: the draft's signers, the text left blank."""
    from store.reporting import people

    v = people.latest_submitted(session, kind=kind, level=sc.level, code=sc.code, period=period)
    if v is not None:
        return {"problems": v.problems, "next_steps": v.next_steps, "prepared_by": v.prepared_by,
                "approved_by": v.approved_by, "version": v.version,
                "submitted_at": v.submitted_at.isoformat(sep=" ", timespec="minutes"), "late": v.late}
    draft = next(iter(people.versions(session, kind=kind, level=sc.level, code=sc.code, period=period)), None)
    if draft is not None:
        return {"problems": None, "next_steps": None, "prepared_by": draft.prepared_by or None,
                "approved_by": draft.approved_by or None}
    return {"problems": None, "next_steps": None,
            "prepared_by": _staff_name(session, schools, "academic_office") if sc.level == "school" else None,
            "approved_by": _staff_name(session, schools, "principal") if sc.level == "school" else None}


def _watch_list(session: Session, school_ids, start: date, end: date) -> dict[str, Any]:
    """重点关注学生 (at-risk watch list) outcomes of the month, from store.prevention.risk."""
    from store.prevention.risk import watch_outcomes

    return watch_outcomes(session, list(school_ids), start, end)


def _township_name(session: Session, school: School) -> str:
    return session.scalar(select(Jurisdiction.name).where(Jurisdiction.id == school.township_id)) or ""


def _county_name(session: Session, sc: ScopeArg) -> str:
    j = session.scalar(select(Jurisdiction).where(Jurisdiction.code == sc.code))
    parent = session.get(Jurisdiction, j.parent_id) if j is not None and j.parent_id else None
    return parent.name if parent else ""


def _staff_name(session: Session, schools: list[School], role: str) -> str | None:
    if not schools:
        return None
    return session.scalar(select(Staff.name).where(Staff.school_id == schools[0].id, Staff.role == role).order_by(Staff.id).limit(1))


# -- quarterly spot check --------------------------------------------------------------------------------
def spot_check_sheet(session: Session, sc: ScopeArg, period: str) -> dict[str, Any]:
    """The sealed draw of the quarter (``store.reporting.reports.spot_check``), cut to the schools of ``sc``:
    exactly the classes drawn, with the ledger's figures recorded at the draw."""
    quarter = period.upper()
    start, end = quarter_bounds(quarter)
    unit_name, schools = _unit(session, sc)
    check = rp.sealed_check(session, quarter)
    if check is None:
        raise LookupError(f"{quarter} 尚未抽取季查样本 (no sealed spot-check draw for {quarter})")
    codes = {s.code for s in schools}
    q = int(quarter.split("Q")[1])
    from store.reporting.people import spot_results  # the inspectors' signed results (issue 17 item 3)

    results = {(r["school"], r["class"]): r["result"] for r in spot_results(session, quarter=quarter)}
    return {
        "level": sc.level, "unit": {"name": unit_name, "code": sc.code}, "period": quarter, "quarter": quarter,
        "quarter_label": f"{start.year}年第{'一二三四'[q - 1]}季度", "sample_rate": check.fraction,
        "as_of": f"{check.drawn_at:%Y-%m-%d}", "seed": check.seed, "seal": check.sample_sha256,
        "rows": [{"township": r.get("township", ""), "school": r["school"], "class_name": r["class"],
                  "head_teacher": r.get("head_teacher"), "enrolled": r["enrolled"], "ledger_open": r.get("ledger_open", 0),
                  "ledger_returned": r.get("ledger_returned", 0), "ledger_new": r.get("ledger_new", 0),
                  "result": results.get((r["school"], r["class"]))}
                 for r in check.figures.get("classes", []) if r["school_code"] in codes],
    }


# -- accountability ---------------------------------------------------------------------------------------
def accountability_sheet(session: Session, sc: ScopeArg, period: str, *, as_of: datetime) -> dict[str, Any]:
    """The evidence of ``sc`` for the month or quarter: :func:`store.reporting.accountability.evidence` (the one
    read model the page and the API show), every kind of duty, laid out for the sheet."""
    from store.access.scope import EVERYTHING, Scope
    from store.reporting.accountability import evidence

    start, end = month_bounds(period) if "Q" not in period.upper() else quarter_bounds(period)
    unit_name, schools = _unit(session, sc)
    scope = EVERYTHING if sc.level == "county" else Scope(school_ids=frozenset(s.id for s in schools))
    data = evidence(session, scope, start, end, as_of)
    rows = [{**r, "due_at": _stamp(r["due_at"]), "done_at": _stamp(r["done_at"])} for r in data["rows"]]
    label = f"{start.year}年{start.month}月" if "Q" not in period.upper() else f"{start.year}年第{'一二三四'[(start.month - 1) // 3]}季度"
    return {"level": sc.level, "unit": {"name": unit_name, "code": sc.code}, "period": period, "period_label": label,
            "period_start": start.isoformat(), "period_end": end.isoformat(), "as_of": _stamp(data["as_of"]),
            "rows": rows, "summary": accountability_summary(rows), "kinds": data["kinds"],
            "reconciliation": data["reconciliation"]}


def _stamp(at: datetime | None) -> str | None:
    return at.strftime("%Y-%m-%d %H:%M") if at else None


def accountability_summary(rows: list[dict]) -> list[dict]:
    """Missed duties per person (责任人), most first: the evidence sheet's summary table."""
    summary: dict[tuple, dict] = {}
    for r in rows:
        s = summary.setdefault((r["person"], r["role_label"], r["unit"]),
                               {"person": r["person"], "role_label": r["role_label"], "unit": r["unit"], "count": 0, "open": 0})
        s["count"] += 1
        s["open"] += r["done_at"] is None
    return sorted(summary.values(), key=lambda s: (-s["count"], s["person"] or ""))


__all__ = ["report_data", "monthly_report", "spot_check_sheet", "accountability_sheet", "ScopeArg"]
