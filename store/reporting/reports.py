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
import secrets
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import accumulate
from operator import add
from pathlib import Path
from typing import Any

from sqlalchemy import Date, Text, and_, case, cast, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.orm import Session

from machines.identity import mask_name
from machines.policy import Policy
from machines.states import LADDER, OPEN_STATES, REASON_LABELS, CaseState
from machines.vocabulary import (
    DROPOUT_STATES as _DROPOUT, LEVEL_LABELS, OUT_OF_SCHOOL_STATES, REPORT_KIND_LABELS, REPORTED_GROUPS, STATE_CHANGES,
    WORK_EVENTS, Event, event_label, special_group_label, state_label,
)

from store.models import Case, CaseEvent, Jurisdiction, Pupil, School, SchoolClass, Staff
from store.duties.notifications import record_late_report
from store.models.reports import ReportFiling, SpotCheck

OPEN = [s.value for s in LADDER if s in OPEN_STATES]
# what counts as a dropout and as out of school: machines.vocabulary (one definition)
DROPOUT_STATES = DROPOUT = [s.value for s in CaseState if s in _DROPOUT]
OUT_OF_SCHOOL = [s.value for s in CaseState if s in OUT_OF_SCHOOL_STATES]
CLOSES_LEDGER = (CaseState.returned.value, CaseState.excused.value)
LEVELS = ("school", "township", "county")
SPECIAL = REPORTED_GROUPS
LEVEL_ROLE = {"school": "principal", "township": "township", "county": "education_bureau"}


# -- periods and due dates -------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportPeriod:
    kind: str      # monthly | term_start | term_end
    label: str     # "2026-11"
    start: date
    end: date


def month_period(year: int, month: int) -> ReportPeriod:
    last = _calendar.monthrange(year, month)[1]
    return ReportPeriod("monthly", f"{year:04d}-{month:02d}", date(year, month, 1), date(year, month, last))


def previous_month(day: date) -> ReportPeriod:
    first = day.replace(day=1) - timedelta(days=1)
    return month_period(first.year, first.month)


def due_on(policy: Policy, level: str, period: ReportPeriod) -> date:
    """School: the policy's day (23rd) of the month; township: its day (25th); county: month end.
    Term reports are due on the period's last day."""
    if period.kind != "monthly":
        return period.end
    if level == "school":
        return period.start.replace(day=policy.reports.school_due_day)
    if level == "township":
        return period.start.replace(day=policy.reports.township_due_day)
    return period.end


STATES = [s.value for s in CaseState]
REASONS = list(REASON_LABELS)
EVENTS = (Event.escalate_outside.value,) + WORK_EVENTS
# a class's counts in ``ledger_figures_many``: where each part of its vector starts
_AT = dict(zip(("states", "opened", "relapses", "closed", "reasons", "special", "events", "enrolled"), accumulate(
    (0, len(STATES), 1, 1, len(CLOSES_LEDGER), len(REASONS), len(SPECIAL), len(EVENTS)))))
_WIDTH = _AT["enrolled"] + 1


class unindexed(FunctionElement):
    """A column as it is, but on SQLite written ``+column``: its planner then uses no index on it
    (a range over nearly every row is read faster from the table than through the index)."""

    type = Date()
    name = "unindexed"
    inherit_cache = True


@compiles(unindexed)
def _unindexed(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element, compiler, **kw):
    return "+" + compiler.process(element.clauses, **kw)


# -- figures ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportScope:
    """The schools (or, with ``class_ids``, the classes) one report counts."""

    level: str
    code: str
    name: str
    school_ids: tuple[int, ...]
    class_ids: tuple[int, ...] = ()


def scopes(session: Session, level: str) -> list[ReportScope]:
    schools = session.execute(select(School.id, School.code, School.name, School.township_id).order_by(School.code)).all()
    if level == "school":
        return [ReportScope("school", code, name, (sid,)) for sid, code, name, _ in schools]
    by_township: dict[int, list[int]] = defaultdict(list)
    for sid, _, _, tid in schools:
        by_township[tid].append(sid)
    towns = {j.id: j for j in session.scalars(select(Jurisdiction).where(Jurisdiction.level.in_(("township", "county"))))}
    if level == "township":
        return [ReportScope("township", towns[t].code, towns[t].name, tuple(ids))
                for t, ids in sorted(by_township.items(), key=lambda kv: towns[kv[0]].code)]
    counties: dict[int, list[int]] = defaultdict(list)
    for t, ids in by_township.items():
        counties[towns[t].parent_id] += ids
    return [ReportScope("county", towns[c].code, towns[c].name, tuple(sorted(ids))) for c, ids in counties.items()]


def scope_of(session: Session, level: str, code: str) -> ReportScope:
    for s in scopes(session, level):
        if s.code == code:
            return s
    raise LookupError(f"no {level} with code {code} (报告范围不存在)")


def row_scopes(session: Session, scope: ReportScope) -> list[ReportScope]:
    """The rows of a report of ``scope``: a school's classes, a township's schools, a county's townships."""
    if scope.level == "school":
        return [ReportScope("class", str(cid), name, scope.school_ids, (cid,)) for cid, name in session.execute(
            select(SchoolClass.id, SchoolClass.name).where(SchoolClass.school_id.in_(scope.school_ids or (-1,)))
            .order_by(SchoolClass.grade, SchoolClass.name, SchoolClass.id))]
    below = "school" if scope.level == "township" else "township"
    mine = set(scope.school_ids)
    return [s for s in scopes(session, below) if set(s.school_ids) <= mine and s.school_ids]


def cutoff_of(period: ReportPeriod, as_of: datetime) -> datetime:
    """The moment a period's figures describe, as an exclusive bound: its end, or while the period
    runs ``as_of`` (what happened at ``as_of`` itself included)."""
    return min(as_of + timedelta(microseconds=1), datetime.combine(period.end + timedelta(days=1), datetime.min.time()))


def _late_cases(cutoff: datetime):
    """The cases whose state changed at or after ``cutoff`` (their state then is read from the history)."""
    return (select(CaseEvent.case_id).where(CaseEvent.event.in_(STATE_CHANGES), CaseEvent.at >= cutoff)
            .distinct().scalar_subquery())


def states_at(session: Session, case_ids: list[int], cutoff: datetime) -> dict[int, tuple[str, date | None]]:
    """case id → (state, ledger closing day) after its last state change before ``cutoff``; a case
    with no event before ``cutoff`` was not in the ledger yet and is left out."""
    out: dict[int, tuple[str, date | None]] = {}
    for i in range(0, len(case_ids), 5000):
        for cid, to_state, at in session.execute(
                select(CaseEvent.case_id, CaseEvent.to_state, CaseEvent.at)
                .where(CaseEvent.case_id.in_(case_ids[i:i + 5000]), CaseEvent.event.in_(STATE_CHANGES),
                       CaseEvent.at < cutoff).order_by(CaseEvent.case_id, CaseEvent.seq)):
            was = out.get(cid)
            closed = was[1] if was and was[1] else (at.date() if to_state in CLOSES_LEDGER else None)
            out[cid] = (to_state, closed)
    return out


def ledger_at(session: Session, cases: list[tuple[int, str, date | None]],
              cutoff: datetime) -> dict[int, tuple[str, date | None]]:
    """Each case's (state, ledger closing day) at ``cutoff``, from ``cases`` (id, state, closed_on):
    the row's own unless its state changed since, then from its history (``states_at``) — the rule
    ``ledger_figures_many`` counts by, for the callers that need the cases themselves."""
    ids = [c[0] for c in cases]
    late: set[int] = set()
    for i in range(0, len(ids), 5000):
        late |= set(session.scalars(select(CaseEvent.case_id).where(
            CaseEvent.case_id.in_(ids[i:i + 5000]), CaseEvent.event.in_(STATE_CHANGES), CaseEvent.at >= cutoff).distinct()))
    out = {cid: (state, closed) for cid, state, closed in cases if cid not in late}
    out.update(states_at(session, sorted(late), cutoff))
    return out


def ledger_figures(session: Session, scope: ReportScope, period: ReportPeriod, as_of: datetime) -> dict[str, Any]:
    """The report's figures for ``scope`` over ``period`` as the ledger stood at the period's end
    (or at ``as_of`` if earlier): ``ledger_figures_many`` for one scope."""
    return ledger_figures_many(session, [scope], period, as_of)[0]


def ledger_figures_many(session: Session, scope_list: list[ReportScope], period: ReportPeriod,
                        as_of: datetime) -> list[dict[str, Any]]:
    """The figures of every scope in ``scope_list`` (any levels, classes too), in its order, from a
    constant number of grouped passes — not one set of passes per scope. The one read model of the
    monthly and term figures: the pages, the API, the filed report (PDF, XLSX, artifact) and the
    reconciliation all read these numbers.

    What the ledger said at the cut-off (``cutoff_of``: the period's end, or ``as_of`` while it
    runs): the cases whose state changed since (few, for a report filed on time) are read from their
    history; every other case is counted in SQL per class, at the granularity the report adds up:
    one grouped pass over the cases (two rows per class, its dropouts and its other cases, with the
    counts per state, the period's openings, relapses and closings, per reason and per special group
    as conditional counts), one over the period's events (index ``ix_case_events_event_at``), one
    for the enrolment; each school's figures are its classes' sums (once), each scope's its schools'
    (or classes') sums. When the scopes cover every school there is no school filter (a sequential
    pass over the table); otherwise ``school_id IN (the scopes' schools)``."""
    wanted = sorted({sid for sc in scope_list for sid in sc.school_ids})
    session.flush()  # what ``session.execute`` would flush; the passes then read rows, not ORM results
    conn = session.connection()
    every = set(conn.scalars(select(School.id))) <= set(wanted)

    def only(col):  # the scopes' schools, or no filter when they are all the schools
        return [] if every else [col.in_(wanted)]

    cutoff = cutoff_of(period, as_of)
    start = datetime.combine(period.start, datetime.min.time())
    # the cases whose state changed since the cut-off (few, for a report filed on time): their ids
    # off the index ``ix_case_events_event_at`` (no DISTINCT: SQLite would walk the (case_id, seq)
    # key for it); none → no NOT IN at all
    late_ids = sorted(set(conn.scalars(select(CaseEvent.case_id).where(
        CaseEvent.event.in_(STATE_CHANGES), CaseEvent.at >= cutoff))))
    not_late = [Case.id.not_in(_late_cases(cutoff))] if late_ids else []
    Unit = tuple  # (school id, class id)
    # each class's counts, one vector laid out as _AT says
    vec: dict[Unit, list[int]] = {}

    def vector(unit: Unit) -> list[int]:
        v = vec.get(unit)
        if v is None:
            v = vec[unit] = [0] * _WIDTH
        return v

    other: dict[Unit, Counter] = defaultdict(Counter)  # dropouts whose reason is none of the vocabulary's
    for sid, cid, n in conn.execute(
            select(Pupil.school_id, Pupil.class_id, func.count()).where(Pupil.enrolled, *only(Pupil.school_id))
            .group_by(Pupil.school_id, Pupil.class_id)):
        vector((sid, cid))[_AT["enrolled"]] += n
    opened_in = Case.opened_on.between(period.start, period.end)
    closed = Case.closed_on.between(period.start, period.end)
    dropout = Case.state.in_(DROPOUT)
    is_dropout = case((dropout, 1), else_=0)
    groups = cast(Case.special_groups, Text)

    def n_of(cond):
        return func.count(case((cond, 1)))

    def times(group: str):  # len('"group"') × how many times the groups (a JSON list of names) name it
        word = json.dumps(group)
        return func.coalesce(func.sum(case((groups.like(f"%{word}%"),
                                            func.length(groups) - func.length(func.replace(groups, word, ""))))), 0)

    columns = ([n_of(Case.state == s) for s in STATES] + [n_of(opened_in), n_of(and_(opened_in, Case.relapse_of.is_not(None)))]
               + [n_of(and_(closed, Case.state == s)) for s in CLOSES_LEDGER]
               + [n_of(Case.reason == r) for r in REASONS] + [times(g) for g in SPECIAL])
    # a pass over (nearly) every case reads the table, not an index and the row of each entry: on
    # SQLite ``unindexed`` keeps it off the index on opened_on, and grouping by class first (a class
    # is in one school: the same groups) off ix_cases_school_state's order
    ledger = [*only(Case.school_id), unindexed(Case.opened_on) <= period.end, *not_late]
    n_counted = _AT["special"] + len(SPECIAL)  # the columns above, in the vector's order
    n_kept = _AT["reasons"]                    # a row of other cases: no reasons or special groups
    word_len = [len(json.dumps(g)) for g in SPECIAL]
    other_reasons = False
    for school_id, class_id, dropouts, *n in conn.execute(
            select(Case.school_id, Case.class_id, is_dropout, *columns).where(*ledger)
            .group_by(Case.class_id, Case.school_id, is_dropout)):
        v = vector((school_id, class_id))
        if dropouts:
            for i in range(_AT["special"], n_counted):
                n[i] //= word_len[i - _AT["special"]]
            v[:n_counted] = map(add, v[:n_counted], n)
            other_reasons |= sum(n[_AT["reasons"]:_AT["special"]]) < sum(n[_AT["states"]:_AT["opened"]])
        else:
            v[:n_kept] = map(add, v[:n_kept], n[:n_kept])
    if other_reasons:
        for school_id, class_id, reason, k in conn.execute(
                select(Case.school_id, Case.class_id, Case.reason, func.count())
                .where(*ledger, dropout, or_(Case.reason.is_(None), Case.reason.not_in(REASONS)))
                .group_by(Case.class_id, Case.school_id, Case.reason)):
            other[(school_id, class_id)][reason] += k
    # the cases whose state changed since the cut-off: counted as they stood then
    changed = [row for i in range(0, len(late_ids), 5000) for row in conn.execute(
        select(Case.id, Case.school_id, Case.class_id, Case.reason, Case.opened_on, Case.relapse_of, Case.special_groups)
        .where(*only(Case.school_id), Case.opened_on <= period.end, Case.id.in_(late_ids[i:i + 5000])))]
    then = states_at(session, [c.id for c in changed], cutoff)
    for cid, school_id, class_id, reason, opened_on, relapse_of, case_groups in changed:
        if cid not in then:
            continue
        state, closed_on = then[cid]
        unit = (school_id, class_id)
        v = vector(unit)
        if state in STATES:
            v[_AT["states"] + STATES.index(state)] += 1
        if period.start <= opened_on <= period.end:
            v[_AT["opened"]] += 1
            v[_AT["relapses"]] += relapse_of is not None
        if closed_on is not None and period.start <= closed_on <= period.end and state in CLOSES_LEDGER:
            v[_AT["closed"] + CLOSES_LEDGER.index(state)] += 1
        if state in DROPOUT:
            if reason in REASONS:
                v[_AT["reasons"] + REASONS.index(reason)] += 1
            else:
                other[unit][reason] += 1
            for g in case_groups or []:
                if g in SPECIAL:
                    v[_AT["special"] + SPECIAL.index(g)] += 1
    for school_id, class_id, event, n in conn.execute(
            select(Case.school_id, Case.class_id, CaseEvent.event, func.count()).join(Case, Case.id == CaseEvent.case_id)
            .where(*only(Case.school_id), CaseEvent.event.in_(EVENTS), CaseEvent.at >= start, CaseEvent.at < cutoff)
            .group_by(Case.school_id, Case.class_id, CaseEvent.event)):
        vector((school_id, class_id))[_AT["events"] + EVENTS.index(event)] += n
    grade_of = dict(conn.execute(select(SchoolClass.id, SchoolClass.grade).where(*only(SchoolClass.school_id))).all())
    schools = {sid: (code, name, town) for sid, code, name, town in conn.execute(
        select(School.id, School.code, School.name, Jurisdiction.name).join(Jurisdiction, Jurisdiction.id == School.township_id)
        .where(*only(School.id)))}
    units_of: dict[int, list[Unit]] = defaultdict(list)
    for unit in sorted(vec):
        units_of[unit[0]].append(unit)
    drops = slice(_AT["states"], _AT["opened"])
    dropout_at = [i for i, s in enumerate(STATES) if s in DROPOUT]

    def tally(units: list[Unit]) -> tuple[list[int], Counter, Counter]:
        """The sums over ``units``: (the counts' vector, the other reasons, dropouts by grade)."""
        gr, rs = Counter(), Counter()
        for u in units:
            st = vec[u][drops]
            gr[grade_of.get(u[1])] += sum(st[i] for i in dropout_at)
            if u in other:
                rs.update(other[u])
        return [sum(c) for c in zip(*(vec[u] for u in units))] or [0] * _WIDTH, rs, gr

    school_tally: dict[int, tuple] = {}

    def tally_of_school(sid: int) -> tuple:  # once per school, however many scopes it is in
        if sid not in school_tally:
            school_tally[sid] = tally(units_of.get(sid, []))
        return school_tally[sid]

    def figures_of(parts: list[tuple]) -> dict[str, Any]:
        v = [sum(c) for c in zip(*(p[0] for p in parts))] or [0] * _WIDTH
        rs, gr = Counter(), Counter()
        for _, other_reasons_of, grades in parts:
            rs.update(other_reasons_of)
            gr.update(grades)
        st = dict(zip(STATES, v[drops]))
        cl = dict(zip(CLOSES_LEDGER, v[_AT["closed"]:_AT["reasons"]]))
        ev = dict(zip(EVENTS, v[_AT["events"]:_AT["enrolled"]]))
        rs.update({r: n for r, n in zip(REASONS, v[_AT["reasons"]:_AT["special"]]) if n})
        n_enrolled = v[_AT["enrolled"]]
        n_dropouts = sum(st.get(s, 0) for s in DROPOUT)
        return {
            "enrolled": n_enrolled,
            "dropouts": n_dropouts,
            "dropout_rate": round(n_dropouts / n_enrolled, 6) if n_enrolled else 0.0,
            "out_of_school": sum(st.get(s, 0) for s in OUT_OF_SCHOOL),
            "opened": v[_AT["opened"]],
            "relapses": v[_AT["relapses"]],
            "returned": cl[CaseState.returned.value],
            "excused": cl[CaseState.excused.value],
            "escalated": ev.get(Event.escalate_outside.value, 0),
            "open_by_step": {s.value: st.get(s.value, 0) for s in LADDER},
            "cases_by_state": {s.value: st.get(s.value, 0) for s in CaseState},
            "reasons": dict(sorted(rs.items())),
            "by_grade": {str(g): n for g, n in sorted(gr.items(), key=lambda kv: kv[0] or 0) if n},
            "special_groups": dict(zip(SPECIAL, v[_AT["special"]:_AT["events"]])),
            "work_done": {e: ev.get(e, 0) for e in WORK_EVENTS},
        }

    out = []
    for scope in scope_list:
        classes = set(scope.class_ids)
        parts = [tally([u for sid in scope.school_ids for u in units_of.get(sid, ()) if u[1] in classes])] \
            if classes else [tally_of_school(sid) for sid in scope.school_ids]
        figures = {
            "scope": {"level": scope.level, "code": scope.code, "name": scope.name},
            "period": {"kind": period.kind, "label": period.label, "start": period.start.isoformat(), "end": period.end.isoformat()},
            "as_of": cutoff.replace(microsecond=0).isoformat(sep=" "),
            **figures_of(parts),
        }
        if scope.level not in ("school", "class"):
            figures["schools"] = [
                {"code": schools[sid][0], "name": schools[sid][1], "township": schools[sid][2],
                 **{k: v for k, v in figures_of([tally_of_school(sid)]).items() if k in SCHOOL_ROW}}
                for sid in sorted((s for s in scope.school_ids if s in schools), key=lambda s: schools[s][0])]
        out.append(figures)
    return out


SCHOOL_ROW = ("enrolled", "dropouts", "dropout_rate", "opened", "returned", "excused", "escalated")
ROW_KEYS = ("enrolled", "dropouts", "dropout_rate", "out_of_school", "opened", "relapses", "returned", "excused",
            "escalated", "open_by_step", "special_groups")


def report_figures_many(session: Session, scope_list: list[ReportScope], period: ReportPeriod, as_of: datetime,
                        standard: float | None = None, extra: list[ReportScope] | None = None) -> list[dict[str, Any]]:
    """Each scope's figures with its report's rows (``row_scopes``), all in one ``ledger_figures_many``
    call: what a filing stores and the 月报表 prints. ``standard``: the policy's standard dropout
    rate (each row and the total say whether they are over it). ``extra``: more scopes counted in the
    same passes (the 月报 XLSX's schools and classes), their figures under the first result's "extra"."""
    rows_of = [row_scopes(session, sc) for sc in scope_list]
    flat = [r for rows in rows_of for r in rows]
    figures = ledger_figures_many(session, list(scope_list) + flat + list(extra or ()), period, as_of)
    if extra:
        figures, more = figures[:len(figures) - len(extra)], figures[len(figures) - len(extra):]
    totals, rest = figures[:len(scope_list)], iter(figures[len(scope_list):])
    out = []
    for total, rows in zip(totals, rows_of):
        total = dict(total)
        total["rows"] = [{"name": r.name, "code": r.code, **{k: f[k] for k in ROW_KEYS}}
                         for r, f in zip(rows, (next(rest) for _ in rows))]
        if standard is not None:
            total["standard_rate"] = standard
            for item in [total, *total["rows"]]:
                item["over_standard"] = item["dropout_rate"] > standard
        out.append(total)
    if extra and out:
        out[0]["extra"] = more
    return out


def filed_figures(session: Session, level: str, code: str, period: ReportPeriod) -> dict[str, Any] | None:
    """The figures a filed report stored when it was filed (frozen), or None if not filed."""
    filing = session.scalar(select(ReportFiling).where(
        ReportFiling.kind == period.kind, ReportFiling.level == level, ReportFiling.scope_code == code,
        ReportFiling.period == period.label))
    if filing is None:
        return None
    return {**filing.figures, "filed_at": filing.filed_at.isoformat(sep=" "), "late": filing.late,
            "filing_id": filing.id}


def figures_for(session: Session, scope: ReportScope, period: ReportPeriod, as_of: datetime,
                standard: float | None = None, extra: list[ReportScope] | None = None) -> dict[str, Any]:
    """A scope's month as everyone sees it: what was filed for it (frozen at filing), else the
    ledger's figures now (``report_figures_many``, with the ``extra`` scopes' figures under "extra"
    — a filed month has none: its figures were frozen, the caller counts those at the filed moment)."""
    filed = filed_figures(session, scope.level, scope.code, period) if scope.level in LEVELS else None
    if filed is not None and "rows" in filed:
        return filed
    return report_figures_many(session, [scope], period, as_of, standard, extra)[0]


def daily_figures(session: Session, school_ids: list[int], start: date, end: date,
                  cutoff: datetime) -> list[dict[str, Any]]:
    """The month's school days (each school's calendar) with the cases opened, returned and open
    at each day's end, read from the case history up to ``cutoff``: the 月报表's chart."""
    from store.models import SchoolDay

    keys = sorted(set(session.scalars(select(School.calendar_key).where(School.id.in_(school_ids or [-1]))))) or ["default"]
    days = sorted(set(session.scalars(
        select(SchoolDay.day).where(SchoolDay.calendar_key.in_(keys), SchoolDay.day >= start, SchoolDay.day <= end))))
    if not days:  # calendar not materialised: weekdays
        days = [start + timedelta(days=i) for i in range((end - start).days + 1) if (start + timedelta(days=i)).weekday() < 5]
    cases = session.execute(select(Case.id, Case.opened_on).where(Case.school_id.in_(school_ids or [-1]),
                                                                 Case.opened_on <= end)).all()
    history: dict[int, list[tuple[str, str, datetime]]] = defaultdict(list)
    ids = [c.id for c in cases]
    for i in range(0, len(ids), 5000):
        for cid, event, to_state, at in session.execute(
                select(CaseEvent.case_id, CaseEvent.event, CaseEvent.to_state, CaseEvent.at)
                .where(CaseEvent.case_id.in_(ids[i:i + 5000]), CaseEvent.event.in_(STATE_CHANGES), CaseEvent.at < cutoff)
                .order_by(CaseEvent.case_id, CaseEvent.seq)):
            history[cid].append((event, to_state, at))
    out = []
    for d in days:
        day_start = datetime.combine(d, datetime.min.time())
        day_end = min(day_start + timedelta(days=1), cutoff)
        state_then = {cid: next((to for _, to, at in reversed(evs) if at < day_end), None) for cid, evs in history.items()}
        out.append({"day": d.isoformat(), "new": sum(1 for c in cases if c.opened_on == d and c.id in history),
                    "returned": sum(1 for evs in history.values() for ev, _, at in evs
                                    if ev == Event.mark_returned.value and day_start <= at < day_end),
                    "open": sum(1 for st in state_then.values() if st in OPEN)})
    return out


def reader_figures(session: Session, school_ids: list[int], name: str, period: ReportPeriod, as_of: datetime) -> dict[str, Any]:
    """The month of the schools a reader sees (the pages and the API): the report scope of exactly
    these schools — what its filing stored if it was filed, else the ledger (``figures_for``) — with
    a row per school. Schools that make no report scope of their own are counted live."""
    ids = set(school_ids)
    same = [sc for level in ("school", "township", "county") for sc in scopes(session, level)
            if set(sc.school_ids) == ids] if ids else []
    filed = next((f for f in (filed_figures(session, sc.level, sc.code, period) for sc in same) if f and "rows" in f), None)
    scope = same[0] if same else ReportScope("total", "", name, tuple(sorted(ids)))
    figures = filed or report_figures_many(session, [scope], period, as_of)[0]
    if "schools" not in figures:  # one school: its own row
        school = session.execute(select(School.code, School.name, Jurisdiction.name).join(
            Jurisdiction, Jurisdiction.id == School.township_id).where(School.id.in_(ids or {-1}))).all()
        figures["schools"] = [{"code": code, "name": n, "township": town, **{k: figures[k] for k in SCHOOL_ROW}}
                              for code, n, town in school]
    return figures

# -- filing ----------------------------------------------------------------------------------------
def _responsible(session: Session, scope: ReportScope) -> int | None:
    role = LEVEL_ROLE[scope.level]
    if scope.level == "school":
        return session.scalar(select(Staff.id).where(Staff.school_id == scope.school_ids[0], Staff.role == role).order_by(Staff.id).limit(1))
    j = session.scalar(select(Jurisdiction.id).where(Jurisdiction.code == scope.code))
    return session.scalar(select(Staff.id).where(Staff.jurisdiction_id == j, Staff.role == role).order_by(Staff.id).limit(1))


def file_report(session: Session, *, policy: Policy, level: str, scope: ReportScope, period: ReportPeriod, as_of: datetime,
                actor: str, figures: dict[str, Any] | None = None) -> tuple[ReportFiling, bool]:
    """Write the filing of ``scope`` for ``period`` once; returns (filing, created now).

    ``figures``: the scope's ``report_figures_many`` when the caller computed them already
    (``file_level`` computes every scope's in one set of passes). The filing keeps these figures
    with its rows: the filed month is frozen, every surface shows what was filed."""
    seen = session.scalar(select(ReportFiling).where(
        ReportFiling.kind == period.kind, ReportFiling.level == level, ReportFiling.scope_code == scope.code,
        ReportFiling.period == period.label))
    if seen is not None:
        return seen, False
    due = due_on(policy, level, period)
    figures = dict(figures) if figures is not None else report_figures_many(
        session, [scope], period, as_of, policy.standard_dropout_rate)[0]
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


def file_level(session: Session, *, policy: Policy, level: str, period: ReportPeriod, as_of: datetime,
               actor: str) -> list[tuple[ReportFiling, bool]]:
    """File the report of every scope of ``level`` for ``period`` (each once); the figures of the
    scopes not filed yet come from one ``report_figures_many`` call."""
    all_scopes = scopes(session, level)
    filed = set(session.scalars(select(ReportFiling.scope_code).where(
        ReportFiling.kind == period.kind, ReportFiling.level == level, ReportFiling.period == period.label)))
    todo = [sc for sc in all_scopes if sc.code not in filed]
    figures = dict(zip((sc.code for sc in todo), report_figures_many(
        session, todo, period, as_of, policy.standard_dropout_rate))) if todo else {}
    return [file_report(session, policy=policy, level=level, scope=sc, period=period, as_of=as_of, actor=actor,
                        figures=figures.get(sc.code)) for sc in all_scopes]


def filing_status(session: Session, *, kind: str, period: str) -> list[dict[str, Any]]:
    """Every level's filing for a period, late ones marked, for the artifact and the pages."""
    return [{"level": f.level, "scope": f.scope_name, "code": f.scope_code, "due_on": f.due_on.isoformat(),
             "filed_at": f.filed_at.isoformat(sep=" "), "late": f.late, "dropouts": f.figures.get("dropouts"),
             "dropout_rate": f.figures.get("dropout_rate")}
            for f in session.scalars(select(ReportFiling).where(ReportFiling.kind == kind, ReportFiling.period == period)
                                     .order_by(ReportFiling.level, ReportFiling.scope_code))]


def watch_list_figures(session: Session, scope: ReportScope, period: ReportPeriod) -> dict[str, Any]:
    """The at-risk watch list's outcomes over the period (store.prevention.risk): on watch, newly added, left,
    and of the pupils watched how many dropped out or returned."""
    from store.prevention.risk import watch_outcomes

    return watch_outcomes(session, scope.school_ids, period.start, period.end)


def figures_markdown(filing: ReportFiling) -> str:
    """The figures of one filing as Markdown (the Prefect artifact and the .md rendition)."""
    f = filing.figures
    status = "**逾期 late**" if filing.late else "按时 on time"
    lines = [
        f"# {filing.scope_name} 控辍保学{REPORT_KIND_LABELS.get(filing.kind, filing.kind)} {filing.period}",
        "",
        f"- 层级 level: {LEVEL_LABELS[filing.level]}; 截止 due: {filing.due_on}; "
        f"报送 filed: {filing.filed_at:%Y-%m-%d %H:%M} — {status}",
        f"- 在籍学生 enrolled: {f['enrolled']}; 辍学 dropouts: {f['dropouts']}; "
        f"辍学率 dropout rate: {f['dropout_rate'] * 100:.3f}%",
        f"- 本期新增 opened: {f['opened']} (复发 relapses {f['relapses']}); 复学 returned: {f['returned']}; "
        f"排除 excused: {f['excused']}; 移交 escalated: {f['escalated']}",
        "",
        "| 步骤 step | 在办 open |", "|---|---:|",
        *[f"| {state_label(s)} | {n} |" for s, n in f["open_by_step"].items()],
        "",
        "| 原因 reason | 人数 |", "|---|---:|",
        *[f"| {REASON_LABELS.get(r, r)} | {n} |" for r, n in f["reasons"].items()],
        "",
        "特殊群体 special groups: " + "，".join(f"{special_group_label(g)} {n}" for g, n in f["special_groups"].items()),
        "",
        "工作开展 work done: " + "，".join(f"{event_label(e)} {n}" for e, n in f["work_done"].items()),
    ]
    if "watch_list" in f:
        w = f["watch_list"]
        lines += ["", f"重点关注学生 watch list: 月末在册 {w['on_watch']}; 新增 {w['added']}; 移出 {w['left']}; "
                      f"本月关注 {w['watched']} 人中辍学 {w['dropped_out']}、复学 {w['returned']}"]
    if "schools" in f:
        lines += ["", "| 学校 school | 辍学 |", "|---|---:|", *[f"| {s['name']} | {s['dropouts']} |" for s in f["schools"]]]
    if f.get("lower_level", {}).get("missing") or f.get("lower_level", {}).get("late"):
        ll = f["lower_level"]
        lines += ["", f"下级未报 missing（{LEVEL_LABELS.get(ll['level'], ll['level'])}）: {', '.join(ll['missing']) or '—'}; "
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
    ws.append([f"{filing.scope_name} 控辍保学{REPORT_KIND_LABELS.get(filing.kind, filing.kind)} {filing.period}"])
    for label, key in (("在籍学生", "enrolled"), ("辍学人数", "dropouts"), ("辍学率", "dropout_rate"), ("本期新增", "opened"),
                       ("复发", "relapses"), ("复学", "returned"), ("排除", "excused"), ("移交", "escalated")):
        ws.append([label, f[key]])
    ws.append([])
    ws.append(["步骤", "在办"])
    for s, n in f["open_by_step"].items():
        ws.append([state_label(s), n])
    if "schools" in f:
        ws.append([])
        ws.append(["学校", "辍学人数"])
        for s in f["schools"]:
            ws.append([s["name"], s["dropouts"]])
    xlsx = base.with_suffix(".xlsx")
    from store.ingest.tabular import xlsx_safe

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
    """Deterministic from (population, seed): the same seed and roster give the same sample, so the
    sealed draw can be checked; the seed itself is unpredictable (``new_seed``)."""
    rng = random.Random(seed)
    schools = sorted(population)
    k = max(1, round(len(schools) * fraction))
    picked = sorted(rng.sample(schools, k))
    classes = {s: sorted(rng.sample(population[s], min(classes_per_school, len(population[s])))) for s in picked}
    return {"schools": picked, "classes": classes}


def new_seed() -> int:
    """A seed nobody can predict from the county or the quarter (recorded with the sealed sample)."""
    return secrets.randbelow(2**31)


def seal(sample: dict[str, Any], seed: int) -> str:
    return hashlib.sha256(json.dumps([sample, seed], ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def spot_check(session: Session, *, quarter: str, seed: int | None = None, fraction: float, as_of: datetime, actor: str,
               county_code: str = "") -> tuple[SpotCheck, bool]:
    """Draw (once per quarter, from ``seed`` or an unpredictable one) and seal the sample with the
    ledger's figures for each class: the 季查 sheet prints exactly these rows."""
    seen = session.scalar(select(SpotCheck).where(SpotCheck.quarter == quarter))
    if seen is not None:
        return seen, False
    seed = new_seed() if seed is None else seed
    start, end = quarter_bounds(quarter)
    q_start = datetime.combine(start, datetime.min.time())
    q_end = datetime.combine(end + timedelta(days=1), datetime.min.time())
    population = roster(session)
    sample = draw_sample(population, seed, fraction)
    sheet = []
    for code, class_names in sample["classes"].items():
        for klass in class_names:
            row = session.execute(
                select(SchoolClass.id, School.name, Jurisdiction.name.label("township"), Staff.name.label("teacher"))
                .join(School, School.id == SchoolClass.school_id).join(Jurisdiction, Jurisdiction.id == School.township_id)
                .outerjoin(Staff, Staff.id == SchoolClass.head_teacher_id)
                .where(School.code == code, SchoolClass.name == klass)).one()
            states = dict(session.execute(select(Case.state, func.count()).where(Case.class_id == row.id)
                                          .group_by(Case.state)).all())
            enrolled = session.scalar(select(func.count()).select_from(Pupil).where(Pupil.class_id == row.id, Pupil.enrolled))
            out = session.execute(select(Pupil.name, Case.state).join(Case, Case.pupil_id == Pupil.id)
                                  .where(Case.class_id == row.id, Case.state.in_(OUT_OF_SCHOOL)).order_by(Case.id)).all()
            new = session.scalar(select(func.count()).select_from(Case).where(
                Case.class_id == row.id, Case.opened_on.between(start, end)))
            back = session.scalar(select(func.count()).select_from(CaseEvent).join(Case, Case.id == CaseEvent.case_id).where(
                Case.class_id == row.id, CaseEvent.event == Event.mark_returned.value, CaseEvent.at >= q_start,
                CaseEvent.at < q_end))
            sheet.append({"school_code": code, "school": row.name, "township": row.township, "class": klass,
                          "head_teacher": row.teacher, "enrolled": enrolled, "ledger_by_state": states,
                          "ledger_open": sum(n for st, n in states.items() if st in OPEN),
                          "ledger_new": new, "ledger_returned": back,
                          "out_of_school": [{"pupil": mask_name(n), "state": s} for n, s in out],
                          "to_verify": "核对花名册、晨检记录与台账是否一致"})
    check = SpotCheck(quarter=quarter, county_code=county_code, drawn_at=as_of, seed=seed,
                      sample_sha256=seal(sample, seed), fraction=fraction, sample=sample,
                      figures={"classes": sheet}, files={}, actor=actor)
    session.add(check)
    session.flush()
    return check, True


def quarter_bounds(quarter: str) -> tuple[date, date]:
    y, q = (int(x) for x in quarter.upper().split("Q"))
    start = date(y, 3 * (q - 1) + 1, 1)
    return start, date(y + (3 * q) // 12, (3 * q) % 12 + 1, 1) - timedelta(days=1)


def sealed_check(session: Session, quarter: str) -> SpotCheck | None:
    return session.scalar(select(SpotCheck).where(SpotCheck.quarter == quarter.upper()))


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
