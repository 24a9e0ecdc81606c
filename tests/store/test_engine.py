"""The case engine on a real store (SQLite and PostgreSQL): the seed scenarios, timers, actions."""
from __future__ import annotations

from datetime import date, datetime, time

import pytest
from sqlalchemy import func, select

from machines.case_machine import ForbiddenEvent
from store.cases.actions import act
from store.cases.context import CaseContext
from store.cases.leave import decide
from store.models.leave import LeaveRequest
from store.db import transaction
from store.cases.intake import IntakeError
from store.models import Case, CaseEvent, DocumentRequest, Duty, PolicyMigration, SchoolClass, Staff
from store.reporting.queries import list_cases, overdue_duties
from store.cases.replay import replay
from tests.engine_helpers import case_of, duties, history, morning, setup_store, sweep

MON, TUE, WED, THU, FRI = (date(2026, 11, d) for d in (16, 17, 18, 19, 20))
WEEK = [MON, TUE, WED, THU, FRI]


def walk(factory, school, pupil, days, sweep_days=None):
    states = []
    for d in days:
        morning(factory, school, d, [pupil])
        sweep(factory, d)
        with factory() as s:
            states.append(case_of(s, pupil).state)
    return states


def test_absent_monday_to_friday_walks_days_1_2_3_5_with_roles_and_duties(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    pupil = pupils[0]
    assert walk(factory, school, pupil, WEEK) == [
        "family_contacted", "visited", "collective_visit", "township_notice", "judicial_notice"]
    with factory() as s:
        case = case_of(s, pupil)
        h = history(s, case.id)
        assert [(e[1], e[3]) for e in h] == [("open", "absent"), ("escalate", "family_contacted"), ("escalate", "visited"),
                                            ("escalate", "collective_visit"), ("escalate", "township_notice"),
                                            ("escalate", "judicial_notice")]
        assert [e[4] for e in h[1:]] == [datetime.combine(d, time(9, 0)) for d in WEEK]
        due = {(d[1], d[2]): d[3] for d in duties(s, case.id)}
        assert due[("record_phone_call", "head_teacher")] == datetime(2026, 11, 16, 17, 0)   # 当日
        assert due[("record_home_visit", "academic_office")] == datetime(2026, 11, 17, 18, 0)
        assert due[("record_collective_visit", "principal")] == datetime(2026, 11, 18, 18, 0)
        # the day it is issued: its deadline is the next school day's 晨检 ([notices] return_notice_days = 1)
        assert due[("serve_township_notice", "township")] == datetime(2026, 11, 19, 17, 0)
        assert due[("serve_legal_notice", "judicial_office")] == datetime(2026, 11, 24, 17, 0)  # 2 school days
        phone = s.scalar(select(Duty).where(Duty.case_id == case.id, Duty.action == "record_phone_call"))
        head_teacher = s.scalar(select(SchoolClass.head_teacher_id).where(SchoolClass.id == case.class_id))
        assert phone.owner_id == head_teacher and phone.status == "overdue"
        kinds = set(s.scalars(select(DocumentRequest.kind).where(DocumentRequest.case_id == case.id)))
        assert {"absence_register", "report_to_township", "dropout_report_form", "return_notice",
                "report_to_bureau", "legal_notice"} <= kinds
        assert "control_plan" not in kinds  # issued with the 三帮一 helpers, and nobody assigned them here
        assert "parent_notice" not in kinds  # issued once the school fills it in (record_class_record)
        assert due[("assign_helpers", "principal")] == datetime(2026, 11, 18, 18, 0)  # 三帮一: with the 控辍方案, day 3
        assert due[("record_class_record", "head_teacher")] == datetime(2026, 11, 20, 17, 0)
        assert replay(s, case.id).value == "judicial_notice"


def test_a_pupil_back_on_day_4_is_returned_and_the_ledger_closed(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    walk(factory, school, pupils[0], WEEK[:3])
    result = morning(factory, school, THU, [])
    sweep(factory, THU)
    with factory() as s:
        case = case_of(s, pupils[0])
        assert result.returned == [case.id]
        assert case.state == "returned" and case.closed_on == THU
        assert s.scalar(select(func.count()).select_from(Duty).where(Duty.case_id == case.id, Duty.status == "open")) == 0
        assert "return_register" in set(s.scalars(select(DocumentRequest.kind).where(DocumentRequest.case_id == case.id)))


def test_a_pupil_absent_across_national_day_is_not_escalated_for_the_holiday(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    p = pupils[1]
    assert walk(factory, school, p, [date(2026, 9, 29), date(2026, 9, 30)]) == ["family_contacted", "visited"]
    for holiday in (date(2026, 10, 1), date(2026, 10, 5), date(2026, 10, 7)):
        assert sweep(factory, holiday).total_transitions == 0
    assert walk(factory, school, p, [date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 10)]) == [
        "collective_visit", "township_notice", "judicial_notice"]  # 10-10 is a 调休 Saturday: it counts


def test_a_weekend_does_not_advance_the_ladder(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    walk(factory, school, pupils[0], [FRI])
    for d in (date(2026, 11, 21), date(2026, 11, 22)):
        assert sweep(factory, d, time(17, 0)).total_transitions == 0
    assert walk(factory, school, pupils[0], [date(2026, 11, 23)]) == ["visited"]


@pytest.mark.parametrize("policy, expected", [
    ("jingbian", ["family_contacted", "visited", "collective_visit", "township_notice", "township_notice",
                  "township_notice"]),
    # wutaishan: day 6 alone is not enough, two persuasions must be on record (seed 000 §二.5): none here
    ("wutaishan", ["family_contacted", "visited", "collective_visit", "collective_visit", "collective_visit",
                   "collective_visit"]),
])
def test_other_jurisdictions_walk_their_own_ladders(factory, session, policy, expected):
    school, pupils = setup_store(session, policy=policy)
    session.commit()
    assert walk(factory, school, pupils[0], WEEK + [date(2026, 11, 23)]) == expected
    with factory() as s:
        case = case_of(s, pupils[0])
        assert case.policy_name == policy
        roles = {d[2] for d in duties(s, case.id)}
    assert ("grade_director" in roles) == (policy == "jingbian")


def test_advancing_twice_for_the_same_moment_changes_nothing(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    morning(factory, school, MON, pupils[:3])
    morning(factory, school, TUE, pupils[:3])
    first = sweep(factory, TUE, time(18, 30))
    with factory() as s:
        before = s.scalar(select(func.count()).select_from(CaseEvent)), s.scalar(select(func.count()).select_from(Duty))
    second = sweep(factory, TUE, time(18, 30))
    with factory() as s:
        after = s.scalar(select(func.count()).select_from(CaseEvent)), s.scalar(select(func.count()).select_from(Duty))
    assert first.total_transitions == 6 and first.overdue == 6  # phone (17:00) and visit (18:00) of 3 cases
    assert second.total_transitions == 0 and second.overdue == 0 and before == after


def test_the_same_morning_check_submitted_twice_opens_nothing_twice(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    first = morning(factory, school, MON, pupils[:2])
    again = morning(factory, school, MON, pupils[:2])
    assert len(first.opened) == 2 and again.duplicate and again.opened == []
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 2


def test_recorded_actions_complete_duties_and_a_retry_applies_nothing_twice(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    walk(factory, school, pupils[0], [MON])
    with factory() as s:
        case_id = case_of(s, pupils[0]).id
    for _ in range(2):
        with transaction(factory) as s:
            applied = act(s, CaseContext(s), case_id, "record_phone_call", actor="staff:1",
                          at=datetime(2026, 11, 16, 11, 0), now=datetime(2026, 11, 16, 11, 0), note="家长称孩子生病",
                          idempotency_key="phone-1")
    assert applied.duplicate
    with factory() as s:
        events = [e[1] for e in history(s, case_id)]
        assert events.count("record_phone_call") == 1
        assert [d[4] for d in duties(s, case_id)] == ["done"]
        assert "phone_record" in set(s.scalars(select(DocumentRequest.kind).where(DocumentRequest.case_id == case_id)))


def test_a_forbidden_action_raises_and_writes_nothing(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    walk(factory, school, pupils[0], [MON])
    with factory() as s:
        case_id = case_of(s, pupils[0]).id
    with pytest.raises(ForbiddenEvent, match=f"case {case_id}: event 'serve_legal_notice'.*'family_contacted'"):
        with transaction(factory) as s:
            act(s, CaseContext(s), case_id, "serve_legal_notice", actor="x", at=datetime(2026, 11, 16, 12),
                now=datetime(2026, 11, 16, 12))
    with factory() as s:
        assert len(history(s, case_id)) == 2


def test_leave_after_the_fact_excuses_the_case_and_a_relapse_links_the_old_case(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    walk(factory, school, pupils[0], [MON])
    morning(factory, school, TUE, [], statuses={pupils[0]: "病假"})
    with transaction(factory) as s:  # the note applies for leave: the case continues until it is approved
        assert case_of(s, pupils[0]).state != "excused"
        request = s.scalar(select(LeaveRequest))
        assert (request.kind, request.role, request.decision) == ("sick_leave", "academic_office", "pending")
        decide(s, CaseContext(s), request.id, approve=True, actor="教务处", now=datetime(2026, 11, 17, 10))
    walk(factory, school, pupils[1], [MON])
    morning(factory, school, WED, [])           # pupil 1 back: returned
    morning(factory, school, THU, [pupils[1]])  # absent again: a new case linked to the old one
    with factory() as s:
        excused = s.scalar(select(Case).where(Case.state == "excused"))
        assert excused.outcome_reason == "sick_leave"
        cases = s.scalars(select(Case).order_by(Case.id).where(Case.pupil_id == case_of(s, pupils[1]).pupil_id)).all()
        assert [c.state for c in cases] == ["returned", "absent"] and cases[1].relapse_of == cases[0].id


def absent_two_days_then_whereabouts_unknown(factory, school: str, pupil: str) -> int:
    walk(factory, school, pupil, [MON, TUE])
    with factory() as s:
        case_id = case_of(s, pupil).id
    with transaction(factory) as s:
        act(s, CaseContext(s), case_id, "escalate_outside", actor="staff:2", at=datetime(2026, 11, 17, 15),
            now=datetime(2026, 11, 17, 15), reason="whereabouts_unknown", note="家中无人，邻居称已外出")
    return case_id


def test_escalate_outside_when_whereabouts_are_unknown(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    case_id = absent_two_days_then_whereabouts_unknown(factory, school, pupils[0])
    with factory() as s:
        case = s.get(Case, case_id)
        assert case.state == "escalated" and case.outcome_reason == "whereabouts_unknown" and case.closed_on is None
        assert replay(s, case_id).value == "escalated"


def test_an_overdue_duty_makes_the_case_stuck_with_its_owner(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    walk(factory, school, pupils[0], [MON])
    sweep(factory, MON, time(17, 30))
    with factory() as s:
        stuck = list_cases(s, stuck_at=datetime(2026, 11, 16, 17, 30))
        owed = overdue_duties(s, datetime(2026, 11, 16, 17, 30))
        case = case_of(s, pupils[0])
        teacher = s.scalar(select(Staff.name).join(SchoolClass, SchoolClass.head_teacher_id == Staff.id)
                           .where(SchoolClass.id == case.class_id))
    assert [c["id"] for c in stuck] == [case.id]
    assert owed[0]["owner"] == teacher and owed[0]["action"] == "record_phone_call" and owed[0]["hours_overdue"] == 0.5


def test_intake_reports_bad_rows_and_refuses_a_non_school_day(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    from store.cases.intake import MarkIn, record_morning_check
    with transaction(factory) as s:
        r = record_morning_check(s, CaseContext(s), school_code=school, day=MON, source="test", submitted_by="t",
                                 now=datetime(2026, 11, 16, 8), marks=[MarkIn(pupils[0], "旷课", row=2),
                                                                       MarkIn("NOPE", "缺勤", row=3),
                                                                       MarkIn(pupils[1], "迟到", row=4)])
    assert len(r.opened) == 1 and [(e.row, e.student_no) for e in r.errors] == [(3, "NOPE"), (4, pupils[1])]
    with pytest.raises(IntakeError, match="不是上学日"):
        with transaction(factory) as s:
            record_morning_check(s, CaseContext(s), school_code=school, day=date(2026, 11, 22), marks=[],
                                 source="test", submitted_by="t", now=datetime(2026, 11, 22, 8))


def test_policy_migration_moves_open_cases_and_logs_it(factory, session, tmp_path, monkeypatch):
    school, pupils = setup_store(session)
    session.commit()
    walk(factory, school, pupils[0], [MON])
    morning(factory, school, TUE, [], statuses={pupils[1]: "缺勤"}, complete=False)
    from store.policy_files import SHIPPED_POLICIES, load_policies_into
    from store.cases.policy_migration import migrate_open_cases
    folder = tmp_path / "pol"
    folder.mkdir()
    text = (SHIPPED_POLICIES / "default.toml").read_text(encoding="utf-8")
    (folder / "default.toml").write_text(text.replace("version = 2", "version = 3").replace(
        "day = 2\n", "day = 3\n").replace("day = 3\nlabel = \"第三日", "day = 4\nlabel = \"第三日").replace(
        "day = 4\nlabel = \"第四日", "day = 5\nlabel = \"第四日").replace("day = 5\nlabel = \"第五日", "day = 6\nlabel = \"第五日"),
        encoding="utf-8")
    with transaction(factory) as s:
        load_policies_into(s, directory=folder, now=datetime(2026, 11, 17, 8))
        moved = migrate_open_cases(s, "default", 3, actor="county:admin", reason="县局调整家访时限",
                                   now=datetime(2026, 11, 17, 8, 5))
    assert moved == 2
    with factory() as s:
        case = case_of(s, pupils[0])
        assert case.policy_version == 3 and history(s, case.id)[-1][1] == "migrate_policy"
        assert s.scalar(select(PolicyMigration.cases_moved)) == 2
        assert replay(s, case.id).value == "family_contacted"
    walk(factory, school, pupils[0], [TUE])  # day 2 no longer visits under version 3
    with factory() as s:
        assert case_of(s, pupils[0]).state == "family_contacted"


def test_a_break_added_to_the_calendar_renumbers_open_cases_and_holds_the_ladder(factory, session):
    from dataclasses import replace as _replace
    from machines.calendar import Period
    from store.cases.advance import advance
    from store.calendars import calendars, materialise
    school, pupils = setup_store(session)
    session.commit()
    walk(factory, school, pupils[0], [MON])
    closed = _replace(calendars()["default"])
    closed.breaks = closed.breaks + [Period(TUE, TUE, "暴雪停课")]
    with transaction(factory) as s:
        materialise(s, closed)
    advance(factory, datetime(2026, 11, 18, 9, 30), calendars={"default": closed})
    with factory() as s:
        case = case_of(s, pupils[0])
        assert case.state == "visited"  # Wednesday is school day 2: the snow day does not count
        assert history(s, case.id)[-1][4] == datetime(2026, 11, 18, 9, 0)


def test_a_pupil_handed_outside_and_still_absent_does_not_open_a_new_case_every_morning(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    case_id = absent_two_days_then_whereabouts_unknown(factory, school, pupils[0])
    result = morning(factory, school, WED, [pupils[0]])
    assert result.opened == [] and result.continuing == 1
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 1
