"""The set-based advance and the per-case machine path agree on random populations; replay holds."""
from __future__ import annotations

import random
import threading
from datetime import date, datetime, time, timedelta

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select, update

from store.cases.advance import advance
from store.calendars import calendars
from store.cases.actions import act
from store.cases.per_case import advance_per_case
from store.cases.context import CaseContext
from store.db import transaction
from store.cases.intake import open_cases_bulk
from store.models import Case, CaseEvent, DocumentRequest, Duty, Pupil, School
from store.cases.replay import replay
from demo.synthetic import Size, generate_county
from tests.engine_helpers import THREE_HELPERS, setup_store

CAL = calendars()["default"]
SCHOOL_DAYS = CAL.school_days(date(2026, 9, 1), date(2026, 11, 27))
MOMENTS = [datetime.combine(d, t) for d in SCHOOL_DAYS[-25:] + [date(2026, 11, 28)]
           for t in (time(8, 30), time(9, 30), time(17, 30), time(18, 30))]


def snapshot(session) -> dict:
    return {
        "cases": sorted(session.execute(select(Case.id, Case.state, Case.version, Case.closed_on)).all()),
        "events": sorted(session.execute(select(
            CaseEvent.case_id, CaseEvent.seq, CaseEvent.event, CaseEvent.from_state, CaseEvent.to_state,
            CaseEvent.actor, CaseEvent.at, CaseEvent.recorded_at, CaseEvent.reason, CaseEvent.payload)).all(),
            key=lambda r: (r[0], r[1])),
        "duties": sorted(session.execute(select(
            Duty.case_id, Duty.step, Duty.action, Duty.role, Duty.owner_id, Duty.due_at, Duty.status,
            Duty.overdue_at, Duty.done_at, Duty.done_seq, Duty.done_late)).all()),
        "documents": sorted(session.execute(select(
            DocumentRequest.case_id, DocumentRequest.kind, DocumentRequest.event_seq, DocumentRequest.status)).all()),
    }


EARLY_ACTS = ["record_phone_call", "record_home_visit", "assign_helpers"]  # the acts allowed before their step
HELPERS = [{"name": "帮扶甲", "role": "head_teacher"}, {"name": "帮扶乙", "role": "subject_teacher"},
           {"name": "帮扶丙", "role": "village_committee"}]  # 三帮一 with the roles every shipped policy accepts


def populate(session, rng: random.Random, n: int, *, persuade: bool = False, early_acts: bool = False) -> None:
    """``n`` cases over three schools (three policies), opened on random school days; with ``persuade``,
    some get zero to three home visits (劝返) at random times, before or after the sweeps' moments — the
    persuasions wutaishan's step to the education centre requires (seed 000 §二.5); with ``early_acts``
    some acted on the day they open, before the sweep raises the duty (which is then created done)."""
    ctx = CaseContext(session)
    schools = session.scalars(select(School).order_by(School.id)).all()
    pupils = session.scalars(select(Pupil).order_by(Pupil.id)).all()
    for pupil in rng.sample(pupils, n):
        school = next(s for s in schools if s.id == pupil.school_id)
        day = rng.choice(SCHOOL_DAYS[-30:])
        opened = open_cases_bulk(session, ctx, school, day, [(pupil, "unknown")], actor="t",
                                 now=datetime.combine(day, time(8, rng.randrange(0, 60))))
        if early_acts and rng.random() < 0.5:
            event, at = rng.choice(EARLY_ACTS), datetime.combine(day, time(13, 45))
            act(session, ctx, opened[0], event, actor="t", at=at, now=at,
                payload={"helpers": HELPERS} if event == "assign_helpers" else None)
        if persuade:
            case = session.get(Case, opened[0])
            later = [d for d in SCHOOL_DAYS + [date(2026, 11, 28)] if d >= day]
            for _ in range(rng.choice([0, 1, 2, 2, 3])):
                at = datetime.combine(rng.choice(later[:12]), time(rng.choice([8, 10, 16]), 15))
                act(session, ctx, case.id, "record_home_visit", actor="t", at=at, now=at)
    session.flush()


def refer_some(factory, rng: random.Random, at: datetime) -> int:
    """Advance to ``at`` and hand about half the cases the policy allows outside (移交跟踪), with mixed reasons,
    so that the sweeps after it raise follow-up rounds (store.cases.follow_up) on both paths."""
    from machines.states import OPEN_STATES, OutsideReason
    advance(factory, at)
    referred = 0
    with transaction(factory) as s:
        ctx = CaseContext(s)
        for case in s.scalars(select(Case).where(Case.state.in_([x.value for x in OPEN_STATES]),
                                                 Case.opened_on <= at.date()).order_by(Case.id)):
            policy = ctx.policy(case.policy_name, case.policy_version)
            reasons = [r.value for r in OutsideReason if policy.outside_allowed(case.state, r)]
            if reasons and rng.random() < 0.5:
                act(s, ctx, case.id, "escalate_outside", actor="t", at=at, now=at, reason=rng.choice(reasons))
                referred += 1
    return referred


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), n=st.integers(1, 30), moments=st.lists(st.sampled_from(MOMENTS), min_size=1, max_size=3))
def test_bulk_advance_equals_the_per_case_machine_path(_outer_connection, factory, seed, n, moments):
    rng = random.Random(seed)
    if "three_policies" not in _outer_connection.info:  # once per test: the examples share the county
        with factory() as s:
            setup_store(s, policy="default", pupils_per_class=6, seed=11)
            for i, policy in enumerate(("jingbian", "wutaishan"), start=1):
                generate_county(s, seed=11 + i, size=Size(townships=1, schools_per_township=1, pupils_per_class=6,
                                                         grades=(3, 7)), policy_name=policy, code_prefix=f"P{i}")
            s.commit()
        _outer_connection.info["three_policies"] = True
    outer = _outer_connection.begin_nested()
    try:
        with factory() as s:
            populate(s, rng, n, persuade=True, early_acts=True)
            s.commit()
        refer_some(factory, rng, MOMENTS[0])
        results = {}
        for path in ("bulk", "per_case", "per_case_seq"):
            trial = _outer_connection.begin_nested()
            try:
                for moment in sorted(moments):
                    if path == "bulk":
                        advance(factory, moment, batch_size=rng.choice([1, 7, 5000]))
                    else:
                        with transaction(factory) as s:
                            advance_per_case(s, CaseContext(s), moment,
                                             streaks="opened_seq" if path == "per_case_seq" else "calendar")
                with factory() as s:
                    results[path] = snapshot(s)
            finally:
                trial.rollback()
        assert results["bulk"] == results["per_case"] == results["per_case_seq"]
        assert results["bulk"]["events"], "the population produced history"
    finally:
        outer.rollback()


def test_referred_cases_follow_up_rounds_are_the_same_on_both_paths(_outer_connection, factory):
    """A fixed population with referred cases of every reason, swept over three weeks: the set-based
    renewal of follow-up rounds equals the per-case one, and later rounds (2, 3…) are raised."""
    rng = random.Random(7)
    outer = _outer_connection.begin_nested()
    try:
        with factory() as s:
            setup_store(s, policy="wutaishan", pupils_per_class=8, grades=(3, 4, 7, 8), seed=31)
            populate(s, rng, 24)
            s.commit()
        assert refer_some(factory, rng, datetime(2026, 11, 4, 17, 30)) >= 3
        results = {}
        for path in ("bulk", "per_case", "per_case_seq"):
            trial = _outer_connection.begin_nested()
            try:
                for moment in (datetime(2026, 11, 11, 9, 30), datetime(2026, 11, 18, 18, 30), datetime(2026, 11, 27, 9, 30)):
                    if path == "bulk":
                        advance(factory, moment, batch_size=5)
                    else:
                        with transaction(factory) as s:
                            advance_per_case(s, CaseContext(s), moment,
                                             streaks="opened_seq" if path == "per_case_seq" else "calendar")
                with factory() as s:
                    results[path] = snapshot(s)
            finally:
                trial.rollback()
        assert results["bulk"] == results["per_case"] == results["per_case_seq"]
        steps = {d[1] for d in results["bulk"]["duties"]}
        assert {"escalated:1", "escalated:2", "escalated:3"} <= steps, steps
    finally:
        outer.rollback()


def test_replaying_random_histories_reproduces_every_case(factory, session):
    setup_store(session, pupils_per_class=10, grades=(3, 4, 7, 8))
    rng = random.Random(5)
    populate(session, rng, 35)
    session.commit()
    actions = ["record_phone_call", "record_home_visit", "assign_helpers", "record_collective_visit",
               "serve_township_notice", "serve_legal_notice", "mark_returned", "excuse", "escalate_outside"]
    for moment in MOMENTS[::9]:
        advance(factory, moment)
        with transaction(factory) as s:
            ctx = CaseContext(s)
            for case in s.scalars(select(Case).where(Case.state.not_in(["returned", "escalated", "excused"]))):
                if rng.random() < 0.4:
                    event = rng.choice(actions)
                    try:
                        with s.begin_nested():
                            act(s, ctx, case.id, event, actor="t", at=moment, now=moment,
                                reason=rng.choice(["opened_in_error", "working_away", "whereabouts_unknown"]),
                                payload={"helpers": THREE_HELPERS} if event == "assign_helpers" else None)
                    except Exception as exc:  # forbidden here: nothing may have been written
                        assert type(exc).__name__ == "ForbiddenEvent", exc
    with factory() as s:
        ids = s.scalars(select(Case.id)).all()
        states = {replay(s, i).value for i in ids}
        assert len(ids) == 35 and len(states) >= 4


def test_two_concurrent_sweeps_never_apply_a_transition_twice(fresh_db):
    with transaction(fresh_db) as s:
        setup_store(s, pupils_per_class=25, grades=(1, 2, 3, 4, 5, 6))
        populate(s, random.Random(3), 140)
    as_of = datetime(2026, 11, 27, 18, 30)
    reports, errors = [], []

    def run():
        try:
            reports.append(advance(fresh_db, as_of, batch_size=20))
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors
    with fresh_db() as s:
        events = s.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.event == "escalate"))
        dupes = s.execute(select(CaseEvent.case_id, CaseEvent.seq).group_by(CaseEvent.case_id, CaseEvent.seq)
                          .having(func.count() > 1)).all()
        duties = s.scalar(select(func.count()).select_from(Duty))
        overdue = s.scalar(select(func.count()).select_from(Duty).where(Duty.status == "overdue"))
    assert sum(r.total_transitions for r in reports) == events > 0 and not dupes
    assert sum(r.overdue for r in reports) == overdue and duties >= overdue > 0
    assert advance(fresh_db, as_of).total_transitions == 0


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), event=st.sampled_from(["mark_returned", "excuse"]))
def test_closing_many_cases_at_once_equals_closing_them_one_by_one(_outer_connection, factory, seed, event):
    from store.cases.actions import apply_event, close_cases
    rng = random.Random(seed)
    outer = _outer_connection.begin_nested()
    try:
        with factory() as s:
            setup_store(s, pupils_per_class=6, seed=21)
            populate(s, rng, 10)
            s.commit()
        advance(factory, rng.choice(MOMENTS))
        at = datetime(2026, 11, 27, 8, 5)
        reason = "sick_leave" if event == "excuse" else None
        results = {}
        for path in ("set", "one_by_one"):
            trial = _outer_connection.begin_nested()
            try:
                with transaction(factory) as s:
                    ctx = CaseContext(s)
                    cases = s.scalars(select(Case).where(Case.state.not_in(["returned", "excused", "escalated"]))
                                      .order_by(Case.id)).all()
                    pick = random.Random(seed)  # both paths choose the same cases
                    chosen = [c for c in cases if pick.random() < 0.7] or cases[:1]
                    if path == "set":
                        close_cases(s, ctx, chosen, event, actor="t", at=at, now=at, note="n", reason=reason,
                                    idempotency_key="k")
                    else:
                        for c in chosen:
                            apply_event(s, ctx, c, event, actor="t", at=at, now=at, note="n", idempotency_key="k",
                                        **({"reason": reason} if reason else {}))
                with factory() as s:
                    results[path] = snapshot(s) | {"closed": sorted(s.execute(
                        select(Case.id, Case.closed_on, Case.outcome_reason)).all())}
            finally:
                trial.rollback()
        assert results["set"] == results["one_by_one"]
    finally:
        outer.rollback()


def test_a_late_township_entry_holds_the_legal_notice_on_both_paths(_outer_connection, factory):
    """wutaishan: the step to the education centre waits for two persuasions (经学校2次劝返), so a case can enter
    township_notice after its day 6; the judicial step (day 11) then waits for the 返校通知书's period
    (``[notices] return_notice_days``) counted from that actual entry — on the per-case machine path and in the
    set-based sweep alike, whether the sweeps ran daily or one sweep catches up."""
    from machines.states import CaseState
    opened_on = date(2026, 11, 2)  # a Monday: day 6 = 11-09, day 11 = 11-16
    visits = {  # pupil → the two home visits (劝返)
        "on_time": [datetime(2026, 11, 3, 16, 15), datetime(2026, 11, 4, 16, 15)],
        "late": [datetime(2026, 11, 3, 16, 15), datetime(2026, 11, 12, 10, 15)],        # met on day 9
        "saturday": [datetime(2026, 11, 3, 16, 15), datetime(2026, 11, 14, 10, 0)],    # met on a Saturday
        "one_visit": [datetime(2026, 11, 3, 16, 15)],                                   # never met
    }
    outer = _outer_connection.begin_nested()
    try:
        with factory() as s:
            setup_store(s, policy="wutaishan", pupils_per_class=4, grades=(3,), seed=41)
            ctx = CaseContext(s)
            school = s.scalars(select(School).order_by(School.id)).first()
            pupils = s.scalars(select(Pupil).where(Pupil.school_id == school.id).order_by(Pupil.id)).all()
            ids = {}
            for pupil, (name, ats) in zip(pupils, visits.items()):
                ids[name] = open_cases_bulk(s, ctx, school, opened_on, [(pupil, "unknown")], actor="t",
                                            now=datetime.combine(opened_on, time(8, 5)))[0]
            s.commit()
        schedules = {
            "daily": [datetime.combine(opened_on + timedelta(days=i), time(9, 30)) for i in range(26)],
            "catch_up": [datetime(2026, 11, 27, 18, 30)],
            "mixed": [datetime(2026, 11, 10, 9, 30), datetime(2026, 11, 13, 9, 30), datetime(2026, 11, 25, 8, 30)],
        }
        cal = CAL
        for label, moments in schedules.items():
            results = {}
            for path in ("bulk", "per_case"):
                trial = _outer_connection.begin_nested()
                try:
                    pending = sorted((at, ids[name]) for name, ats in visits.items() for at in ats)
                    for moment in moments:  # each persuasion is recorded when it happened, between the sweeps
                        with transaction(factory) as s:
                            ctx = CaseContext(s)
                            while pending and pending[0][0] <= moment:
                                at, case_id = pending.pop(0)
                                act(s, ctx, case_id, "record_home_visit", actor="t", at=at, now=at)
                        if path == "bulk":
                            advance(factory, moment, batch_size=2)
                        else:
                            with transaction(factory) as s:
                                advance_per_case(s, CaseContext(s), moment)
                    with factory() as s:
                        results[path] = snapshot(s)
                        entered = {(e.case_id, e.to_state): e.at for e in s.scalars(
                            select(CaseEvent).where(CaseEvent.event == "escalate", CaseEvent.case_id.in_(ids.values())))}
                        states = {name: s.get(Case, i).state for name, i in ids.items()}
                        assert {name: replay(s, i).value for name, i in ids.items()} == states  # the history replays
                finally:
                    trial.rollback()
            assert results["bulk"] == results["per_case"], label
            period = 5  # deploy/policies/wutaishan.toml [notices] return_notice_days
            for name in ("on_time", "late", "saturday"):
                township = entered[(ids[name], CaseState.township_notice.value)]
                assert township >= visits[name][1] and township >= datetime(2026, 11, 9, 9), (label, name, township)
                legal = entered.get((ids[name], CaseState.judicial_notice.value))
                deadline = cal.add_school_days(township.date(), period)  # the 返校通知书's deadline
                assert legal is not None, (label, name)
                assert legal == max(datetime.combine(deadline, time(9)), datetime(2026, 11, 16, 9)), (label, name, legal)
            assert entered[(ids["late"], "judicial_notice")] == datetime(2026, 11, 19, 9)  # day 9 + 5 school days
            assert entered[(ids["saturday"], "judicial_notice")] == datetime(2026, 11, 23, 9)
            assert states["one_visit"] == CaseState.collective_visit.value
    finally:
        outer.rollback()
