"""Periodic reports and spot checks, read off the ledger (DOMAIN.md §4).

- Monthly reports: each school to its township by the 23rd, each township's totals to the county
  by the 25th, the county's at month end (policy ``reports``); term-start and term-end reports.
- Quarterly spot checks (季查): a seeded random sample of schools and classes, sealed.

Every figure comes from the case ledger with one query per question, so a report and the ledger
can be compared number by number. A filing is written once per (kind, level, scope, period):
filing again returns the first one.
"""
from __future__ import annotations

import calendar as _calendar
import hashlib
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Text, and_, case, cast, func, select
from sqlalchemy.orm import Session

from machines.identity import mask_name
from machines.policy import Policy
from machines.states import LADDER, REASON_LABELS, STATE_LABELS, CaseState, OPEN_STATES

from .models import Case, CaseEvent, Jurisdiction, Pupil, School, SchoolClass, Staff
from .notifications import record_late_report
from .report_models import ReportFiling, SpotCheck

OPEN = [s.value for s in OPEN_STATES]
OUT_OF_SCHOOL = OPEN + [CaseState.escalated.value]  # not back, no leave
# 辍学 in the statistics: three or more school days without reason (collective visit and later
# steps) or handed outside the school — the same rule the documents' 月报表 uses.
DROPOUT_STATES = [CaseState.collective_visit.value, CaseState.township_notice.value, CaseState.judicial_notice.value,
                  CaseState.escalated.value]
LEVELS = ("school", "township", "county")
LEVEL_LABELS = {"school": "学校", "township": "乡镇", "county": "县"}
KIND_LABELS = {"monthly": "月报", "term_start": "学期初报告", "term_end": "学期末报告"}
WORK_EVENTS = ("record_phone_call", "record_home_visit", "record_collective_visit", "serve_township_notice",
               "serve_legal_notice", "assign_helpers")
SPECIAL = ("orphan", "left_behind", "disabled")
LEVEL_ROLE = {"school": "principal", "township": "township", "county": "education_bureau"}


# -- periods and due dates -------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    kind: str      # monthly | term_start | term_end
    label: str     # "2026-11"
    start: date
    end: date


def month_period(year: int, month: int) -> Period:
    last = _calendar.monthrange(year, month)[1]
    return Period("monthly", f"{year:04d}-{month:02d}", date(year, month, 1), date(year, month, last))


def previous_month(day: date) -> Period:
    first = day.replace(day=1) - timedelta(days=1)
    return month_period(first.year, first.month)


def due_on(policy: Policy, level: str, period: Period) -> date:
    """School: the policy's day (23rd) of the month; township: its day (25th); county: month end.
    Term reports are due on the period's last day."""
    if period.kind != "monthly":
        return period.end
    if level == "school":
        return period.start.replace(day=policy.reports.school_due_day)
    if level == "township":
        return period.start.replace(day=policy.reports.township_due_day)
    return period.end


# -- figures ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scope:
    level: str
    code: str
    name: str
    school_ids: tuple[int, ...]


def scopes(session: Session, level: str) -> list[Scope]:
    schools = session.execute(select(School.id, School.code, School.name, School.township_id).order_by(School.code)).all()
    if level == "school":
        return [Scope("school", code, name, (sid,)) for sid, code, name, _ in schools]
    by_township: dict[int, list[int]] = defaultdict(list)
    for sid, _, _, tid in schools:
        by_township[tid].append(sid)
    towns = {j.id: j for j in session.scalars(select(Jurisdiction).where(Jurisdiction.level.in_(("township", "county"))))}
    if level == "township":
        return [Scope("township", towns[t].code, towns[t].name, tuple(ids))
                for t, ids in sorted(by_township.items(), key=lambda kv: towns[kv[0]].code)]
    counties: dict[int, list[int]] = defaultdict(list)
    for t, ids in by_township.items():
        counties[towns[t].parent_id] += ids
    return [Scope("county", towns[c].code, towns[c].name, tuple(sorted(ids))) for c, ids in counties.items()]


def scope_of(session: Session, level: str, code: str) -> Scope:
    for s in scopes(session, level):
        if s.code == code:
            return s
    raise LookupError(f"no {level} with code {code} (报告范围不存在)")


def ledger_figures(session: Session, scope: Scope, period: Period, as_of: datetime) -> dict[str, Any]:
    """The report's figures for ``scope`` over ``period``, read at ``as_of`` (current ledger state):
    ``ledger_figures_many`` for one scope."""
    return ledger_figures_many(session, [scope], period, as_of)[0]


def ledger_figures_many(session: Session, scope_list: list[Scope], period: Period,
                        as_of: datetime) -> list[dict[str, Any]]:
    """The figures of every scope in ``scope_list`` (any levels), in its order, from a constant
    number of grouped passes — not one set of passes per scope.

    Set-based, counted in SQL per school: one grouped pass over the cases (school × state × reason,
    with the period's openings, relapses and closings as conditional counts), one over the period's
    events (index ``ix_case_events_event_at``), one over the dropouts for their grades and special
    groups (kept on the case), one for the enrolment; each scope's figures are its schools' sums.
    A county's cases lie on nearly every page of ``cases``, so a pass per scope reads the whole
    table once per county; here every page is read once for all scopes. When the scopes cover
    every school there is no school filter at all (a sequential pass); otherwise
    ``school_id IN (the scopes' schools)``."""
    wanted = sorted({sid for sc in scope_list for sid in sc.school_ids})
    every = set(session.scalars(select(School.id))) <= set(wanted)

    def only(col):  # the scopes' schools, or no filter when they are all the schools
        return [] if every else [col.in_(wanted)]

    start = datetime.combine(period.start, datetime.min.time())
    end = datetime.combine(period.end + timedelta(days=1), datetime.min.time())
    enrolled = dict(session.execute(select(Pupil.school_id, func.count()).where(Pupil.enrolled, *only(Pupil.school_id))
                                    .group_by(Pupil.school_id)).all())
    opened_in = Case.opened_on.between(period.start, period.end)
    by_state, closed_in, reasons = defaultdict(Counter), defaultdict(Counter), defaultdict(Counter)
    opened, relapses, dropouts = Counter(), Counter(), Counter()
    for school_id, state, reason, n, n_opened, n_relapses, n_closed in session.execute(
            select(Case.school_id, Case.state, Case.reason, func.count(),
                   func.count(case((opened_in, 1))),
                   func.count(case((and_(opened_in, Case.relapse_of.is_not(None)), 1))),
                   func.count(case((Case.closed_on.between(period.start, period.end), 1))))
            .where(*only(Case.school_id)).group_by(Case.school_id, Case.state, Case.reason)):
        by_state[school_id][state] += n
        opened[school_id] += n_opened
        relapses[school_id] += n_relapses
        closed_in[school_id][state] += n_closed
        if state in DROPOUT_STATES:
            reasons[school_id][reason] += n
            dropouts[school_id] += n
    events = defaultdict(Counter)
    for school_id, event, n in session.execute(
            select(Case.school_id, CaseEvent.event, func.count()).join(Case, Case.id == CaseEvent.case_id).where(
                *only(Case.school_id), CaseEvent.event.in_(("escalate_outside",) + WORK_EVENTS),
                CaseEvent.at >= start, CaseEvent.at < end)
            .group_by(Case.school_id, CaseEvent.event)):
        events[school_id][event] += n
    # each dropout's grade and special groups: the groups are kept on the case (store.models.Case),
    # so one pass over the dropouts, counted per class first, then the classes' grades joined to
    # the (much fewer) counts
    groups = cast(Case.special_groups, Text).label("groups")
    per_class = (select(Case.school_id, Case.class_id, groups, func.count().label("n"))
                 .where(*only(Case.school_id), Case.state.in_(DROPOUT_STATES))
                 .group_by(Case.school_id, Case.class_id, groups).subquery("per_class"))
    grades, special = defaultdict(Counter), defaultdict(Counter)
    for school_id, grade, text_value, n in session.execute(
            select(per_class.c.school_id, SchoolClass.grade, per_class.c.groups, func.sum(per_class.c.n))
            .join(SchoolClass, SchoolClass.id == per_class.c.class_id)
            .group_by(per_class.c.school_id, SchoolClass.grade, per_class.c.groups)):
        n = int(n)
        grades[school_id][grade] += n
        for g in (json.loads(text_value) or []) if text_value else ():
            if g in SPECIAL:
                special[school_id][g] += n
    names = {sid: (code, name) for sid, code, name in session.execute(
        select(School.id, School.code, School.name).where(*only(School.id)))}
    out = []
    for scope in scope_list:
        ids = scope.school_ids

        def total(per_school: dict) -> Counter:
            c = Counter()
            for sid in ids:
                c.update(per_school.get(sid, {}))
            return c
        st, cl, rs, ev, gr, sp = (total(d) for d in (by_state, closed_in, reasons, events, grades, special))
        n_enrolled = sum(enrolled.get(sid, 0) for sid in ids)
        n_dropouts = sum(dropouts[sid] for sid in ids)
        figures = {
            "scope": {"level": scope.level, "code": scope.code, "name": scope.name},
            "period": {"kind": period.kind, "label": period.label, "start": period.start.isoformat(), "end": period.end.isoformat()},
            "as_of": as_of.isoformat(sep=" "),
            "enrolled": n_enrolled,
            "dropouts": n_dropouts,
            "dropout_rate": round(n_dropouts / n_enrolled, 6) if n_enrolled else 0.0,
            "out_of_school": sum(st.get(s, 0) for s in OUT_OF_SCHOOL),
            "opened": sum(opened[sid] for sid in ids),
            "relapses": sum(relapses[sid] for sid in ids),
            "returned": cl[CaseState.returned.value],
            "excused": cl[CaseState.excused.value],
            "escalated": ev.get("escalate_outside", 0),
            "open_by_step": {s.value: st.get(s.value, 0) for s in LADDER},
            "cases_by_state": {s.value: st.get(s.value, 0) for s in CaseState},
            "reasons": dict(sorted(rs.items())),
            "by_grade": {str(g): n for g, n in sorted(gr.items())},
            "special_groups": {g: sp.get(g, 0) for g in SPECIAL},
            "work_done": {e: ev.get(e, 0) for e in WORK_EVENTS},
        }
        if scope.level != "school":
            figures["schools"] = [{"code": names[sid][0], "name": names[sid][1], "dropouts": dropouts[sid]}
                                  for sid in sorted((s for s in ids if s in names), key=lambda s: names[s][0])]
        out.append(figures)
    return out


# -- filing ----------------------------------------------------------------------------------------
def _responsible(session: Session, scope: Scope) -> int | None:
    role = LEVEL_ROLE[scope.level]
    if scope.level == "school":
        return session.scalar(select(Staff.id).where(Staff.school_id == scope.school_ids[0], Staff.role == role).order_by(Staff.id).limit(1))
    j = session.scalar(select(Jurisdiction.id).where(Jurisdiction.code == scope.code))
    return session.scalar(select(Staff.id).where(Staff.jurisdiction_id == j, Staff.role == role).order_by(Staff.id).limit(1))


def file_report(session: Session, *, policy: Policy, level: str, scope: Scope, period: Period, as_of: datetime,
                actor: str, figures: dict[str, Any] | None = None) -> tuple[ReportFiling, bool]:
    """Write the filing of ``scope`` for ``period`` once; returns (filing, created now).

    ``figures``: the scope's ``ledger_figures`` when the caller computed them already (``file_level``
    computes every scope's in one set of passes)."""
    seen = session.scalar(select(ReportFiling).where(
        ReportFiling.kind == period.kind, ReportFiling.level == level, ReportFiling.scope_code == scope.code,
        ReportFiling.period == period.label))
    if seen is not None:
        return seen, False
    due = due_on(policy, level, period)
    figures = dict(figures) if figures is not None else ledger_figures(session, scope, period, as_of)
    figures["watch_list"] = watch_list_figures(session, scope, period)
    late = as_of.date() > due
    if level != "school":  # which lower-level reports had not come in by this level's filing
        below = "school" if level == "township" else "township"
        wanted = {s.code for s in scopes(session, below) if set(s.school_ids) <= set(scope.school_ids)}
        filed = dict(session.execute(select(ReportFiling.scope_code, ReportFiling.late).where(
            ReportFiling.kind == period.kind, ReportFiling.level == below, ReportFiling.period == period.label,
            ReportFiling.scope_code.in_(wanted))).all())
        figures["lower_level"] = {"level": below, "missing": sorted(wanted - set(filed)),
                                  "late": sorted(c for c, was_late in filed.items() if was_late)}
    filing = ReportFiling(kind=period.kind, level=level, scope_code=scope.code, scope_name=scope.name,
                          period=period.label, period_start=period.start, period_end=period.end, due_on=due,
                          filed_at=as_of, late=late, figures=figures, files={}, actor=actor)
    session.add(filing)
    session.flush()
    if late:
        record_late_report(session, filing_id=filing.id, level=level, scope=scope.name, due_on=due, filed_at=as_of,
                           staff_id=_responsible(session, scope), role=LEVEL_ROLE[level])
    return filing, True


def file_level(session: Session, *, policy: Policy, level: str, period: Period, as_of: datetime,
               actor: str) -> list[tuple[ReportFiling, bool]]:
    """File the report of every scope of ``level`` for ``period`` (each once); the figures of the
    scopes not filed yet come from one ``ledger_figures_many`` call."""
    all_scopes = scopes(session, level)
    filed = set(session.scalars(select(ReportFiling.scope_code).where(
        ReportFiling.kind == period.kind, ReportFiling.level == level, ReportFiling.period == period.label)))
    todo = [sc for sc in all_scopes if sc.code not in filed]
    figures = dict(zip((sc.code for sc in todo), ledger_figures_many(session, todo, period, as_of))) if todo else {}
    return [file_report(session, policy=policy, level=level, scope=sc, period=period, as_of=as_of, actor=actor,
                        figures=figures.get(sc.code)) for sc in all_scopes]


def filing_status(session: Session, *, kind: str, period: str) -> list[dict[str, Any]]:
    """Every level's filing for a period, late ones marked, for the artifact and the pages."""
    return [{"level": f.level, "scope": f.scope_name, "code": f.scope_code, "due_on": f.due_on.isoformat(),
             "filed_at": f.filed_at.isoformat(sep=" "), "late": f.late, "dropouts": f.figures.get("dropouts"),
             "dropout_rate": f.figures.get("dropout_rate")}
            for f in session.scalars(select(ReportFiling).where(ReportFiling.kind == kind, ReportFiling.period == period)
                                     .order_by(ReportFiling.level, ReportFiling.scope_code))]


def watch_list_figures(session: Session, scope: Scope, period: Period) -> dict[str, Any]:
    """The at-risk watch list's outcomes over the period (store.risk): on watch, newly added, left,
    and of the pupils watched how many dropped out or returned."""
    from .risk import watch_outcomes

    return watch_outcomes(session, scope.school_ids, period.start, period.end)


def figures_markdown(filing: ReportFiling) -> str:
    """The figures of one filing as Markdown (the Prefect artifact and the .md rendition)."""
    f = filing.figures
    status = "**逾期 late**" if filing.late else "按时 on time"
    lines = [
        f"# {filing.scope_name} 控辍保学{KIND_LABELS.get(filing.kind, filing.kind)} {filing.period}",
        "",
        f"- 层级 level: {LEVEL_LABELS[filing.level]} ({filing.level}); 截止 due: {filing.due_on}; "
        f"报送 filed: {filing.filed_at:%Y-%m-%d %H:%M} — {status}",
        f"- 在籍学生 enrolled: {f['enrolled']}; 辍学 dropouts: {f['dropouts']}; "
        f"辍学率 dropout rate: {f['dropout_rate'] * 100:.3f}%",
        f"- 本期新增 opened: {f['opened']} (复发 relapses {f['relapses']}); 复学 returned: {f['returned']}; "
        f"排除 excused: {f['excused']}; 移交 escalated: {f['escalated']}",
        "",
        "| 步骤 step | 在办 open |", "|---|---:|",
        *[f"| {STATE_LABELS[CaseState(s)]} {s} | {n} |" for s, n in f["open_by_step"].items()],
        "",
        "| 原因 reason | 人数 |", "|---|---:|",
        *[f"| {REASON_LABELS.get(r, r)} | {n} |" for r, n in f["reasons"].items()],
        "",
        "特殊群体 special groups: " + ", ".join(f"{g} {n}" for g, n in f["special_groups"].items()),
        "",
        "工作开展 work done: " + ", ".join(f"{e} {n}" for e, n in f["work_done"].items()),
    ]
    if "watch_list" in f:
        w = f["watch_list"]
        lines += ["", f"重点关注学生 watch list: 月末在册 {w['on_watch']}; 新增 {w['added']}; 移出 {w['left']}; "
                      f"本月关注 {w['watched']} 人中辍学 {w['dropped_out']}、复学 {w['returned']}"]
    if "schools" in f:
        lines += ["", "| 学校 school | 辍学 |", "|---|---:|", *[f"| {s['name']} | {s['dropouts']} |" for s in f["schools"]]]
    if f.get("lower_level", {}).get("missing") or f.get("lower_level", {}).get("late"):
        ll = f["lower_level"]
        lines += ["", f"下级未报 missing {ll['level']}: {', '.join(ll['missing']) or '—'}; "
                      f"逾期 late: {', '.join(ll['late']) or '—'}"]
    return "\n".join(lines) + "\n"


def write_report_files(filing: ReportFiling, archive_dir: Path) -> dict[str, str]:
    """The filing as Markdown and XLSX under ``archive_dir/reports/`` (paths relative to it).

    Used until the documents package renders the catalog's ``monthly_report`` kind; rewriting the
    same filing produces the same bytes' content, so a retry is harmless."""
    from openpyxl import Workbook

    rel = Path("reports") / filing.period / f"{filing.kind}-{filing.level}-{filing.scope_code}"
    base = archive_dir / rel
    base.parent.mkdir(parents=True, exist_ok=True)
    md = base.with_suffix(".md")
    md.write_text(figures_markdown(filing), encoding="utf-8")
    wb = Workbook()
    ws = wb.active
    ws.title = "月报"
    f = filing.figures
    ws.append([f"{filing.scope_name} 控辍保学{KIND_LABELS.get(filing.kind, filing.kind)} {filing.period}"])
    for label, key in (("在籍学生", "enrolled"), ("辍学人数", "dropouts"), ("辍学率", "dropout_rate"), ("本期新增", "opened"),
                       ("复发", "relapses"), ("复学", "returned"), ("排除", "excused"), ("移交", "escalated")):
        ws.append([label, f[key]])
    ws.append([])
    ws.append(["步骤", "在办"])
    for s, n in f["open_by_step"].items():
        ws.append([STATE_LABELS[CaseState(s)], n])
    if "schools" in f:
        ws.append([])
        ws.append(["学校", "辍学人数"])
        for s in f["schools"]:
            ws.append([s["name"], s["dropouts"]])
    xlsx = base.with_suffix(".xlsx")
    from .tabular import xlsx_safe

    xlsx_safe(wb)  # no school or unit name becomes a formula
    wb.save(xlsx)
    return {"md": str(rel.with_suffix(".md")), "xlsx": str(rel.with_suffix(".xlsx"))}


# -- quarterly spot check ----------------------------------------------------------------------------
def quarter_of(day: date) -> str:
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def roster(session: Session) -> dict[str, list[str]]:
    """school code → its class names, in a fixed order: the population a draw is made from."""
    out: dict[str, list[str]] = defaultdict(list)
    for code, klass in session.execute(select(School.code, SchoolClass.name).join(SchoolClass, SchoolClass.school_id == School.id)
                                       .order_by(School.code, SchoolClass.grade, SchoolClass.name)):
        out[code].append(klass)
    return dict(out)


def draw_sample(population: dict[str, list[str]], seed: int, fraction: float, classes_per_school: int = 2) -> dict[str, Any]:
    """Deterministic from (population, seed): the same seed and roster give the same sample."""
    rng = random.Random(seed)
    schools = sorted(population)
    k = max(1, round(len(schools) * fraction))
    picked = sorted(rng.sample(schools, k))
    classes = {s: sorted(rng.sample(population[s], min(classes_per_school, len(population[s])))) for s in picked}
    return {"schools": picked, "classes": classes}


def seal(sample: dict[str, Any], seed: int) -> str:
    return hashlib.sha256(json.dumps([sample, seed], ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def spot_check(session: Session, *, quarter: str, seed: int, fraction: float, as_of: datetime, actor: str,
               county_code: str = "") -> tuple[SpotCheck, bool]:
    """Draw (once per quarter) and record the sample with the ledger's figures for each class."""
    seen = session.scalar(select(SpotCheck).where(SpotCheck.quarter == quarter))
    if seen is not None:
        return seen, False
    population = roster(session)
    sample = draw_sample(population, seed, fraction)
    sheet = []
    for code, class_names in sample["classes"].items():
        for klass in class_names:
            row = session.execute(select(SchoolClass.id, School.name).join(School, School.id == SchoolClass.school_id)
                                  .where(School.code == code, SchoolClass.name == klass)).one()
            states = dict(session.execute(select(Case.state, func.count()).where(Case.class_id == row.id)
                                          .group_by(Case.state)).all())
            enrolled = session.scalar(select(func.count()).select_from(Pupil).where(Pupil.class_id == row.id, Pupil.enrolled))
            out = session.execute(select(Pupil.name, Case.state).join(Case, Case.pupil_id == Pupil.id)
                                  .where(Case.class_id == row.id, Case.state.in_(OUT_OF_SCHOOL)).order_by(Case.id)).all()
            sheet.append({"school_code": code, "school": row.name, "class": klass, "enrolled": enrolled,
                          "ledger_by_state": states, "out_of_school": [{"pupil": mask_name(n), "state": s} for n, s in out],
                          "to_verify": "核对花名册、晨检记录与台账是否一致"})
    check = SpotCheck(quarter=quarter, county_code=county_code, drawn_at=as_of, seed=seed,
                      sample_sha256=seal(sample, seed), fraction=fraction, sample=sample,
                      figures={"classes": sheet}, files={}, actor=actor)
    session.add(check)
    session.flush()
    return check, True


def spot_check_markdown(check: SpotCheck) -> str:
    lines = [f"# 控辍保学季度随机抽查记录表 {check.quarter}", "",
             f"- 抽取时间 drawn: {check.drawn_at:%Y-%m-%d %H:%M}; 随机种子 seed (抽取后记录): {check.seed}; "
             f"封存摘要 seal: `{check.sample_sha256[:16]}…`", "",
             "| 学校 school | 班级 class | 在籍 | 台账未返校 | 核对 |", "|---|---|---:|---:|---|"]
    for row in check.figures.get("classes", []):
        lines.append(f"| {row['school']} | {row['class']} | {row['enrolled']} | {len(row['out_of_school'])} | ☐ |")
    return "\n".join(lines) + "\n"


def write_spot_check_files(check: SpotCheck, archive_dir: Path) -> dict[str, str]:
    rel = Path("reports") / check.quarter / "spot_check_sheet.md"
    (archive_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    (archive_dir / rel).write_text(spot_check_markdown(check), encoding="utf-8")
    return {"md": str(rel)}
