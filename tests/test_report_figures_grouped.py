"""``store.reports.ledger_figures`` counts in SQL (grouped passes) exactly what the per-question
version counted with one query per figure and the dropout rows loaded into Python.

The reference below is that earlier version, kept in its logic (the special groups read from the
case, where they are kept since), run on a random ledger: random states, reasons, opening and
closing days in and around the month, relapses, special groups (including a duplicated one and
none), and events of every counted kind in, before and after the month, pupils who moved school
(and changed groups) since their case opened — for every school, township and county scope.
"""
from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select

from machines.states import LADDER, CaseState
from store import reports as rp
from store.models import Case, CaseEvent, Pupil, School, SchoolClass
from tests.engine_helpers import setup_store


def reference_figures(session, scope: rp.Scope, period: rp.Period) -> dict:
    """The per-question computation the grouped passes replaced (same keys, same values)."""
    ids = list(scope.school_ids)
    in_scope = Case.school_id.in_(ids)
    start = datetime.combine(period.start, time.min)
    end = datetime.combine(period.end + timedelta(days=1), time.min)
    enrolled = session.scalar(select(func.count()).select_from(Pupil).where(Pupil.school_id.in_(ids), Pupil.enrolled)) or 0
    by_state = dict(session.execute(select(Case.state, func.count()).where(in_scope).group_by(Case.state)).all())
    opened = session.scalar(select(func.count()).select_from(Case).where(
        in_scope, Case.opened_on.between(period.start, period.end))) or 0
    relapses = session.scalar(select(func.count()).select_from(Case).where(
        in_scope, Case.opened_on.between(period.start, period.end), Case.relapse_of.is_not(None))) or 0

    def closed(state: CaseState) -> int:
        return session.scalar(select(func.count()).select_from(Case).where(
            in_scope, Case.state == state.value, Case.closed_on.between(period.start, period.end))) or 0

    def events(kinds) -> dict:
        return dict(session.execute(
            select(CaseEvent.event, func.count()).join(Case, Case.id == CaseEvent.case_id).where(
                in_scope, CaseEvent.event.in_(kinds), CaseEvent.at >= start, CaseEvent.at < end)
            .group_by(CaseEvent.event)).all())

    escalated, work = events(["escalate_outside"]).get("escalate_outside", 0), events(rp.WORK_EVENTS)
    rows = session.execute(
        select(Case.reason, SchoolClass.grade, Case.special_groups, School.code)
        .join(SchoolClass, SchoolClass.id == Case.class_id)
        .join(School, School.id == Case.school_id).where(in_scope, Case.state.in_(rp.DROPOUT_STATES))).all()
    reasons, grades, special, per_school = Counter(), Counter(), Counter(), Counter()
    for reason, grade, groups, school_code in rows:
        reasons[reason] += 1
        grades[grade] += 1
        per_school[school_code] += 1
        for g in groups or []:
            if g in rp.SPECIAL:
                special[g] += 1
    out = {
        "enrolled": enrolled, "dropouts": len(rows),
        "dropout_rate": round(len(rows) / enrolled, 6) if enrolled else 0.0,
        "out_of_school": sum(by_state.get(st, 0) for st in rp.OUT_OF_SCHOOL), "opened": opened, "relapses": relapses,
        "returned": closed(CaseState.returned), "excused": closed(CaseState.excused), "escalated": escalated,
        "open_by_step": {s.value: by_state.get(s.value, 0) for s in LADDER},
        "cases_by_state": {s.value: by_state.get(s.value, 0) for s in CaseState},
        "reasons": dict(sorted(reasons.items())), "by_grade": {str(g): n for g, n in sorted(grades.items())},
        "special_groups": {g: special.get(g, 0) for g in rp.SPECIAL},
        "work_done": {e: work.get(e, 0) for e in rp.WORK_EVENTS},
    }
    if scope.level != "school":
        schools = session.execute(select(School.code, School.name).where(School.id.in_(ids)).order_by(School.code)).all()
        out["schools"] = [{"code": c, "name": n, "dropouts": per_school.get(c, 0)} for c, n in schools]
    return out


def random_ledger(session, rng: random.Random) -> None:
    """Cases straight into the tables: any state, reason, day, relapse link, and their events."""
    setup_store(session, pupils_per_class=5, grades=(1, 4, 8), schools=3, seed=rng.randrange(100))
    groups = [[], ["orphan"], ["left_behind", "disabled"], ["disabled", "disabled"], ["poor"], None]
    pupils = session.scalars(select(Pupil).order_by(Pupil.id)).all()
    for p in pupils:
        p.special_groups = rng.choice(groups)
    days = [date(2026, 10, 20) + timedelta(days=i) for i in range(50)]  # late October to early December
    states = [s.value for s in CaseState]
    reasons = ["family", "study", "poverty", "unknown", "illness"]
    kinds = ["escalate_outside", "escalate", "open", *rp.WORK_EVENTS]
    previous = None
    for p in rng.sample(pupils, k=len(pupils) * 3 // 4):
        state, opened_on = rng.choice(states), rng.choice(days)
        closed_on = rng.choice([None, rng.choice(days)]) if state in ("returned", "excused", "escalated") else None
        case = Case(pupil_id=p.id, school_id=p.school_id, class_id=p.class_id, state=state, version=1,
                    policy_name="default", policy_version=1, calendar_key="default", opened_on=opened_on, opened_seq=1,
                    closed_on=closed_on, reason=rng.choice(reasons), special_groups=p.special_groups,
                    relapse_of=previous if previous and rng.random() < 0.3 else None,
                    created_at=datetime.combine(opened_on, time(8)), updated_at=datetime.combine(opened_on, time(8)))
        session.add(case)
        session.flush()
        previous = case.id
        for seq in range(1, rng.randrange(1, 6)):
            at = datetime.combine(rng.choice(days), time(rng.randrange(24), rng.randrange(60)))
            session.add(CaseEvent(case_id=case.id, seq=seq, event=rng.choice(kinds), from_state=None, to_state=state,
                                  actor="t", at=at, recorded_at=at, reason="", payload={}))
    school_ids = sorted({p.school_id for p in pupils})
    for p in rng.sample(pupils, k=len(pupils) // 5):  # moved school since: their cases stay with the old one
        p.school_id = rng.choice([s for s in school_ids if s != p.school_id])
        p.special_groups = ["orphan", "disabled"]  # changed on the pupil only: the cases count their own copy
    session.flush()


def test_grouped_report_figures_equal_the_per_question_counts_on_a_random_ledger(session):
    rng = random.Random(20261123)
    random_ledger(session, rng)
    period, as_of = rp.month_period(2026, 11), datetime(2026, 11, 30, 17)
    checked = 0
    for level in rp.LEVELS:
        for scope in rp.scopes(session, level):
            got = rp.ledger_figures(session, scope, period, as_of)
            want = reference_figures(session, scope, period)
            assert {k: got[k] for k in want} == want, (level, scope.code)
            checked += 1
    assert checked >= 5  # three schools, a township, a county
    # the random ledger really exercises every figure
    county = rp.ledger_figures(session, rp.scopes(session, "county")[0], period, as_of)
    assert county["dropouts"] and county["opened"] and county["relapses"] and county["returned"]
    assert county["escalated"] and sum(county["work_done"].values()) and county["special_groups"]["disabled"]


def test_many_scope_figures_equal_each_scope_alone_on_a_random_ledger(session):
    """``ledger_figures_many`` (one set of grouped passes for every scope, the monthly report's and
    the bench's path) gives every scope the figures of ``ledger_figures`` for that scope alone and
    of the per-question reference: scopes of mixed levels covering every school (no school filter),
    and a subset of the schools (filtered), and through ``file_level`` as filed."""
    from store.context import CaseContext

    rng = random.Random(7)
    random_ledger(session, rng)
    period, as_of = rp.month_period(2026, 11), datetime(2026, 11, 30, 17)
    every = [sc for level in rp.LEVELS for sc in rp.scopes(session, level)]
    subset = rp.scopes(session, "school")[::2]
    assert len(every) >= 5 and 1 < len(subset) < len(rp.scopes(session, "school"))
    for scope_list in (every, subset, list(reversed(every))):
        many = rp.ledger_figures_many(session, scope_list, period, as_of)
        assert len(many) == len(scope_list)
        for scope, got in zip(scope_list, many):
            assert got["scope"]["code"] == scope.code
            want = reference_figures(session, scope, period)
            assert {k: got[k] for k in want} == want, (scope.level, scope.code)
            assert got == rp.ledger_figures(session, scope, period, as_of)
    policy = CaseContext(session).policies.get("default")
    filed = rp.file_level(session, policy=policy, level="school", period=period, as_of=as_of, actor="t")
    assert [f.scope_code for f, created in filed if created] == [sc.code for sc in rp.scopes(session, "school")]
    for f, _ in filed:
        want = reference_figures(session, rp.scope_of(session, "school", f.scope_code), period)
        assert {k: f.figures[k] for k in want} == want
    again = rp.file_level(session, policy=policy, level="school", period=period, as_of=as_of, actor="t")
    assert [f.id for f, _ in again] == [f.id for f, _ in filed] and not any(created for _, created in again)
