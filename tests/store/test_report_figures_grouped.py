"""``store.reporting.reports.ledger_figures`` counts in SQL (grouped passes, the cases changed since the
cut-off read from their history) exactly what a per-case reading of the history counts.

The reference below reads every case's history in Python: its state after the last event before
the cut-off (the month's end, or ``as_of`` while the month runs), on a random ledger: random
paths up the ladder and out of it, reasons, opening days in and around the month, staff actions
between, relapses, special groups (including a duplicated one and none), pupils who moved school
(and changed groups) since their case opened — for every school, township and county scope.
"""
from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select

from machines.states import LADDER, CaseState
from store.reporting import reports as rp
from store.models import Case, CaseEvent, Pupil, School, SchoolClass
from tests.engine_helpers import setup_store

FINAL_EVENT = {"returned": "mark_returned", "excused": "excuse", "escalated": "escalate_outside"}


def reference_figures(session, scope: rp.ReportScope, period: rp.ReportPeriod, as_of: datetime) -> dict:
    """Every case's state at the cut-off read from its whole history, one case at a time."""
    month_end = datetime.combine(period.end + timedelta(days=1), time.min)
    start = datetime.combine(period.start, time.min)
    ids = list(scope.school_ids)
    enrolled = session.scalar(select(func.count()).select_from(Pupil).where(Pupil.school_id.in_(ids), Pupil.enrolled)) or 0
    cases = session.execute(
        select(Case.id, Case.opened_on, Case.relapse_of, Case.reason, Case.special_groups, SchoolClass.grade, School.code)
        .join(SchoolClass, SchoolClass.id == Case.class_id).join(School, School.id == Case.school_id)
        .where(Case.school_id.in_(ids))).all()
    by_state, reasons, grades, special, per_school, work = Counter(), Counter(), Counter(), Counter(), Counter(), Counter()
    opened = relapses = returned = excused = escalated = 0
    for cid, opened_on, relapse_of, reason, groups, grade, school_code in cases:
        history = session.execute(select(CaseEvent.event, CaseEvent.to_state, CaseEvent.at)
                                  .where(CaseEvent.case_id == cid).order_by(CaseEvent.seq)).all()
        before = [h for h in history if h.at <= as_of and h.at < month_end]
        for event, _, at in before:
            if at >= start:
                work[event] += 1
        if not before:
            continue  # not in the ledger yet
        state = before[-1].to_state
        by_state[state] += 1
        if period.start <= opened_on <= period.end:
            opened += 1
            relapses += relapse_of is not None
        closing = next((h.at.date() for h in before if h.to_state == state), None)
        if state in ("returned", "excused") and period.start <= closing <= period.end:
            returned += state == "returned"
            excused += state == "excused"
        if state in rp.DROPOUT_STATES:
            reasons[reason] += 1
            grades[grade] += 1
            per_school[school_code] += 1
            for g in groups or []:
                if g in rp.SPECIAL:
                    special[g] += 1
    escalated = work.pop("escalate_outside", 0)
    dropouts = sum(by_state[s] for s in rp.DROPOUT_STATES)
    out = {
        "enrolled": enrolled, "dropouts": dropouts,
        "dropout_rate": round(dropouts / enrolled, 6) if enrolled else 0.0,
        "out_of_school": sum(by_state.get(st, 0) for st in rp.OUT_OF_SCHOOL), "opened": opened, "relapses": relapses,
        "returned": returned, "excused": excused, "escalated": escalated,
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


def project(got: dict, want: dict) -> dict:
    """``got`` cut to the reference's keys (its per-school rows to code, name and dropouts)."""
    out = {k: got[k] for k in want}
    if "schools" in want:
        out["schools"] = [{k: row[k] for k in ("code", "name", "dropouts")} for row in got["schools"]]
    return out


def random_ledger(session, rng: random.Random) -> None:
    """Cases straight into the tables, each with a consistent history: opened, up the ladder to a
    random step or out of it, staff actions between, at increasing times around the month."""
    setup_store(session, pupils_per_class=5, grades=(1, 4, 8), schools=3, seed=rng.randrange(100))
    groups = [[], ["orphan"], ["left_behind", "disabled"], ["disabled", "disabled"], ["poor"], None]
    pupils = session.scalars(select(Pupil).order_by(Pupil.id)).all()
    for p in pupils:
        p.special_groups = rng.choice(groups)
    days = [date(2026, 10, 20) + timedelta(days=i) for i in range(50)]  # late October to early December
    states = [s.value for s in CaseState]
    reasons = ["family", "study", "poverty", "unknown", "illness"]
    previous = None
    for p in rng.sample(pupils, k=len(pupils) * 3 // 4):
        target, opened_on = rng.choice(states), rng.choice(days)
        at = datetime.combine(opened_on, time(8, rng.randrange(60)))
        history, state = [("open", "absent", at)], "absent"
        top = LADDER.index(CaseState(target)) if target in LADDER else rng.randrange(len(LADDER))
        for step in LADDER[1:top + 1]:
            for _ in range(rng.randrange(3)):  # staff actions on the step
                at += timedelta(hours=rng.randrange(1, 30))
                history.append((rng.choice(rp.WORK_EVENTS), state, at))
            at += timedelta(hours=rng.randrange(4, 60))
            state = step.value
            history.append(("escalate", state, at))
        if target in FINAL_EVENT:
            at += timedelta(hours=rng.randrange(4, 60))
            history.append((FINAL_EVENT[target], target, at))
        closed_on = at.date() if target in ("returned", "excused") else None
        case = Case(pupil_id=p.id, school_id=p.school_id, class_id=p.class_id, state=target, version=len(history),
                    policy_name="default", policy_version=1, calendar_key="default", opened_on=opened_on, opened_seq=1,
                    closed_on=closed_on, reason=rng.choice(reasons), special_groups=p.special_groups,
                    relapse_of=previous if previous and rng.random() < 0.3 else None,
                    created_at=datetime.combine(opened_on, time(8)), updated_at=at)
        session.add(case)
        session.flush()
        previous = case.id
        for seq, (event, to_state, when) in enumerate(history, 1):
            session.add(CaseEvent(case_id=case.id, seq=seq, event=event, from_state=None, to_state=to_state,
                                  actor="t", at=when, recorded_at=when, reason="", payload={}))
    school_ids = sorted({p.school_id for p in pupils})
    for p in rng.sample(pupils, k=len(pupils) // 5):  # moved school since: their cases stay with the old one
        p.school_id = rng.choice([s for s in school_ids if s != p.school_id])
        p.special_groups = ["orphan", "disabled"]  # changed on the pupil only: the cases count their own copy
    session.flush()


def test_grouped_report_figures_equal_the_per_question_counts_on_a_random_ledger(session):
    rng = random.Random(20261123)
    random_ledger(session, rng)
    period = rp.month_period(2026, 11)
    checked = 0
    for as_of in (datetime(2026, 11, 20, 17), datetime(2026, 12, 15, 9)):  # while the month runs, and after
        for level in rp.LEVELS:
            for scope in rp.scopes(session, level):
                got = rp.ledger_figures(session, scope, period, as_of)
                want = reference_figures(session, scope, period, as_of)
                assert project(got, want) == want, (as_of, level, scope.code)
                checked += 1
    assert checked >= 10  # three schools, a township, a county, twice
    as_of = datetime(2026, 11, 30, 17)
    # the random ledger really exercises every figure
    county = rp.ledger_figures(session, rp.scopes(session, "county")[0], period, as_of)
    assert county["dropouts"] and county["opened"] and county["relapses"] and county["returned"]
    assert county["escalated"] and sum(county["work_done"].values()) and county["special_groups"]["disabled"]


def test_many_scope_figures_equal_each_scope_alone_on_a_random_ledger(session):
    """``ledger_figures_many`` (one set of grouped passes for every scope, the monthly report's and
    the bench's path) gives every scope the figures of ``ledger_figures`` for that scope alone and
    of the per-question reference: scopes of mixed levels covering every school (no school filter),
    and a subset of the schools (filtered), and through ``file_level`` as filed."""
    from store.cases.context import CaseContext

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
            want = reference_figures(session, scope, period, as_of)
            assert project(got, want) == want, (scope.level, scope.code)
            assert got == rp.ledger_figures(session, scope, period, as_of)
    policy = CaseContext(session).policies.get("default")
    filed = rp.file_level(session, policy=policy, level="school", period=period, as_of=as_of, actor="t")
    assert [f.scope_code for f, created in filed if created] == [sc.code for sc in rp.scopes(session, "school")]
    for f, _ in filed:
        want = reference_figures(session, rp.scope_of(session, "school", f.scope_code), period, as_of)
        assert project(f.figures, want) == want
    again = rp.file_level(session, policy=policy, level="school", period=period, as_of=as_of, actor="t")
    assert [f.id for f, _ in again] == [f.id for f, _ in filed] and not any(created for _, created in again)
