"""Leave, 免学/缓学 and transfers need their approver; lesson counts and 放学未回家 (issue 17 items 5, 6, 8).

Every test runs on SQLite and on PostgreSQL (tests/conftest.py)."""
from __future__ import annotations

from datetime import date, datetime, time

import pytest
from sqlalchemy import select

from store.cases.advance import advance
from store.cases.context import CaseContext
from store.cases.leave import LeaveError, apply_for, attach_certificate, decide
from store.cases.lessons import report_lesson_absence, report_not_home
from store.cases.per_case import advance_per_case
from store.db import transaction
from store.duties.ledger import listed, overdue
from store.models import Case, Pupil, School
from store.models.leave import LeaveRequest
from store.models.prevention import PreventionDuty
from tests.engine_helpers import case_of, morning, setup_store, sweep

MON, TUE, WED, THU, FRI = (date(2026, 11, d) for d in (16, 17, 18, 19, 20))
PDF = b"%PDF-1.4\n% a doctor's note\n"


def pupil_id(s, no: str) -> int:
    return s.scalar(select(Pupil.id).where(Pupil.student_no == no))


def test_an_unapproved_leave_mark_holds_then_opens_a_case_from_its_first_day(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    sick = pupils[0]
    morning(factory, school, MON, [], statuses={sick: "病假"})
    sweep(factory, TUE)  # held: the academic office has until Tuesday 17:00
    with factory() as s:
        assert case_of(s, sick) is None
        request = s.scalar(select(LeaveRequest))
        assert (request.kind, request.role, request.source, request.decision) == (
            "sick_leave", "academic_office", "mark", "pending")
        assert request.due_at == datetime(2026, 11, 17, 17, 0)
    morning(factory, school, TUE, [], statuses={sick: "病假"})  # the same leave goes on: one request, two days
    sweep(factory, WED)
    with factory() as s:
        request = s.scalar(select(LeaveRequest))
        assert (request.first_day, request.last_day, request.days) == (MON, TUE, 2)
        assert request.counted_at is not None and request.status == "overdue"
        case = case_of(s, sick)
        assert case is not None and case.opened_on == MON and case.state != "excused"
        # the approver's overdue duty is on the duty ledger (the stuck lists, accountability)
        late = overdue(s, datetime(2026, 11, 18, 9, 30), kinds=("approval",))
        assert [(d["kind"], d["action_label"], d["context"]) for d in late] == [("approval", "审批请假", "病假")]
    # approved late, the leave excuses the case it opened
    with transaction(factory) as s:
        decide(s, CaseContext(s), request.id, approve=True, actor="教务处", now=datetime(2026, 11, 18, 10))
    with factory() as s:
        case = case_of(s, sick)
        assert (case.state, case.outcome_reason) == ("excused", "sick_leave")
        assert listed(s, datetime(2026, 11, 18, 11), due_by=datetime(2026, 12, 31), kinds=("approval",)) == []


def test_a_three_day_leave_is_routed_to_the_principal_and_once_approved_excuses(factory, session, tmp_path):
    school, pupils = setup_store(session)
    session.commit()
    with transaction(factory) as s:
        ctx = CaseContext(s)
        r = apply_for(s, ctx, pupil_id=pupil_id(s, pupils[1]), kind="personal_leave", first_day=MON, last_day=WED,
                      source="web", actor="user:teacher", now=datetime(2026, 11, 13, 16), reason="家中有事")
        assert (r.days, r.role) == (3, "principal")
        assert apply_for(s, ctx, pupil_id=r.pupil_id, kind="personal_leave", first_day=TUE, last_day=TUE,
                         source="api", actor="x", now=datetime(2026, 11, 13, 16)).id == r.id  # covered: no second
        attach_certificate(s, r.id, PDF, "假条.pdf", actor="user:teacher", now=datetime(2026, 11, 13, 16),
                           archive_dir=tmp_path, max_bytes=10**6)
        decide(s, ctx, r.id, approve=True, actor="user:principal", now=datetime(2026, 11, 13, 17), note="同意")
        with pytest.raises(LeaveError):
            decide(s, ctx, r.id, approve=False, actor="user:principal", now=datetime(2026, 11, 13, 18))
    for day in (MON, TUE, WED):
        morning(factory, school, day, [], statuses={pupils[1]: "事假"})
        sweep(factory, day, time(17, 30))
    sweep(factory, THU)
    with factory() as s:
        assert case_of(s, pupils[1]) is None
        r = s.get(LeaveRequest, r.id)
        assert (r.decision, r.decided_by, r.cert_media_type, r.counted_at) == (
            "approved", "user:principal", "application/pdf", None)
        assert (tmp_path / r.cert_path).read_bytes() == PDF


def test_a_refused_leave_counts_at_the_next_sweep_and_an_open_case_continues(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    morning(factory, school, MON, [pupils[2]])
    morning(factory, school, TUE, [], statuses={pupils[2]: "病假", pupils[3]: "病假"})
    with transaction(factory) as s:
        assert case_of(s, pupils[2]).state == "absent"  # a pending note does not excuse the open case
        r3 = s.scalar(select(LeaveRequest).where(LeaveRequest.pupil_id == pupil_id(s, pupils[3])))
        decide(s, CaseContext(s), r3.id, approve=False, actor="教务处", now=datetime(2026, 11, 17, 11), note="无假条")
    sweep(factory, TUE, time(17, 30))
    with factory() as s:
        assert case_of(s, pupils[3]).opened_on == TUE
        assert case_of(s, pupils[2]).state not in ("excused", "returned")


def test_an_exemption_does_not_excuse_until_the_bureau_approves_it(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    out = morning(factory, school, MON, [], statuses={pupils[4]: "缓学"})
    assert len(out.opened) == 1  # no hold: 免学/缓学 waits for the county, the absence counts meanwhile
    with transaction(factory) as s:
        r = s.scalar(select(LeaveRequest))
        assert (r.kind, r.role) == ("exemption", "education_bureau")
        decide(s, CaseContext(s), r.id, approve=True, actor="县教育局", now=datetime(2026, 11, 16, 15))
    with factory() as s:
        assert (case_of(s, pupils[4]).state, case_of(s, pupils[4]).outcome_reason) == ("excused", "exemption")


def test_an_unconfirmed_transfer_opens_a_case_a_confirmed_one_moves_the_pupil(factory, session):
    school, pupils = setup_store(session, schools=2)
    session.commit()
    with transaction(factory) as s:
        ctx = CaseContext(s)
        other = s.scalar(select(School).where(School.code != school))
        gone = apply_for(s, ctx, pupil_id=pupil_id(s, pupils[5]), kind="transfer", first_day=MON, source="web",
                         actor="user:school", now=datetime(2026, 11, 16, 10), to_school_name="外县某中学")
        moved = apply_for(s, ctx, pupil_id=pupil_id(s, pupils[6]), kind="transfer", first_day=MON, source="web",
                          actor="user:school", now=datetime(2026, 11, 16, 10), to_school_id=other.id)
        with pytest.raises(LeaveError):  # outside the county: the receipt first
            decide(s, ctx, gone.id, approve=True, actor="user:school", now=datetime(2026, 11, 16, 11))
        assert gone.due_at == datetime(2026, 11, 30, 17, 0)
        decide(s, ctx, moved.id, approve=True, actor="user:other-principal", now=datetime(2026, 11, 17, 9))
    for day in (MON, TUE, WED):  # whole checks that do not list them: a pupil who left is not "present"
        morning(factory, school, day, [])
    advance(factory, datetime(2026, 12, 1, 9, 30))
    with factory() as s:
        case = case_of(s, pupils[5])
        assert case is not None and case.opened_on == MON and case.state not in ("returned", "excused")
        assert s.get(LeaveRequest, gone.id).case_id == case.id
        assert case_of(s, pupils[6]) is None
        assert s.scalar(select(Pupil.school_id).where(Pupil.student_no == pupils[6])) == other.id
        assert [d["kind"] for d in overdue(s, datetime(2026, 12, 1, 9, 30), kinds=("approval",))] == ["approval"]


def test_counting_unapproved_requests_is_the_same_on_the_set_based_and_per_case_sweeps(_outer_connection, factory):
    with factory() as s:
        school, pupils = setup_store(s, pupils_per_class=6)
        s.commit()
    morning(factory, school, MON, [pupils[0]], statuses={pupils[1]: "病假", pupils[2]: "事假", pupils[3]: "免学"})
    morning(factory, school, TUE, [], statuses={pupils[1]: "病假", pupils[0]: "病假"})
    with transaction(factory) as s:
        apply_for(s, CaseContext(s), pupil_id=pupil_id(s, pupils[4]), kind="transfer", first_day=MON, source="cli",
                  actor="t", now=datetime(2026, 11, 16, 12), to_school_name="外省")
    results = {}
    for path in ("bulk", "per_case"):
        trial = _outer_connection.begin_nested()
        try:
            for moment in (datetime(2026, 11, 18, 9, 30), datetime(2026, 12, 1, 9, 30)):
                if path == "bulk":
                    advance(factory, moment)
                else:
                    with transaction(factory) as s:
                        advance_per_case(s, CaseContext(s), moment)
            with factory() as s:
                results[path] = sorted(s.execute(select(Case.pupil_id, Case.opened_on, Case.state, Case.version)).all())
        finally:
            trial.rollback()
    assert results["bulk"] == results["per_case"]
    assert len(results["bulk"]) == 5  # 0 absent, 1 and 2 unapproved leave, 3 exemption, 4 unconfirmed transfer


def test_a_lesson_absence_opens_a_case_for_a_pupil_who_left_at_noon(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    morning(factory, school, MON, [])  # everyone in class in the morning
    with transaction(factory) as s:
        first = report_lesson_absence(s, CaseContext(s), school_code=school, student_no=pupils[7], day=MON, lesson=5,
                                      subject="数学", actor="科任教师", now=datetime(2026, 11, 16, 14, 5))
        again = report_lesson_absence(s, CaseContext(s), school_code=school, student_no=pupils[7], day=MON, lesson=5,
                                      subject="数学", actor="科任教师", now=datetime(2026, 11, 16, 14, 6))
    assert first.case_id is not None and again.duplicate and again.case_id == first.case_id
    with factory() as s:
        assert case_of(s, pupils[7]).opened_on == MON


def test_a_parent_report_of_not_home_gives_the_school_a_same_day_duty(factory, session):
    school, pupils = setup_store(session)
    session.commit()
    with transaction(factory) as s:
        report, new = report_not_home(s, CaseContext(s), pupil_id=pupil_id(s, pupils[0]), day=MON, parent_name="王父",
                                      parent_phone="13800000000", note="17:30 未到家", actor="user:teacher",
                                      now=datetime(2026, 11, 16, 18, 0))
        assert new and report_not_home(s, CaseContext(s), pupil_id=report.pupil_id, day=MON, parent_name="王父",
                                       parent_phone=None, note="", actor="x", now=datetime(2026, 11, 16, 18, 5))[1] is False
    with factory() as s:
        duty = s.scalar(select(PreventionDuty).where(PreventionDuty.source == "after_school"))
        assert (duty.role, duty.due_at) == ("head_teacher", datetime(2026, 11, 16, 20, 0))
        late = overdue(s, datetime(2026, 11, 16, 21), kinds=("prevention",))
        assert [d["context"] for d in late] == ["放学未回家"]


def test_the_demo_story_lines_approved_leave_unapproved_leave_and_unconfirmed_transfer(factory, session, tmp_path):
    from demo.leave import leave_round, plan_leave
    from demo.scenario import Plan
    from store.calendars import calendars
    from store.cases.intake import MarkIn, record_morning_check

    school, pupils = setup_store(session, pupils_per_class=6)
    session.commit()
    days = calendars()["default"].school_days(date(2026, 11, 2), date(2026, 11, 20))  # 15 school days
    plan = Plan(days)
    chosen = plan_leave(plan, [(p, school) for p in pupils])
    for n, day in enumerate(days, start=1):
        listed = {no: st for no, st in plan.absent.get(n, {}).items() if plan.stop_listing.get(no, 10**6) > n}
        with transaction(factory) as s:
            record_morning_check(s, CaseContext(s), school_code=school, day=day, source="test", submitted_by="demo",
                                 marks=[MarkIn(no, st) for no, st in listed.items()], now=datetime.combine(day, time(8)))
        advance(factory, datetime.combine(day, time(9, 30)))
        for at in (time(10, 30), time(15, 0)):
            leave_round(factory, datetime.combine(day, at), n, chosen, archive_dir=tmp_path)
    advance(factory, datetime(2026, 11, 23, 9, 30))
    with factory() as s:
        assert case_of(s, chosen["approved"]) is None
        approved = s.scalar(select(LeaveRequest).where(LeaveRequest.pupil_id == pupil_id(s, chosen["approved"])))
        assert (approved.days, approved.role, approved.decision, approved.cert_filename) == (
            3, "principal", "approved", "医院证明.pdf")
        unapproved = case_of(s, chosen["unapproved"])
        assert unapproved is not None and unapproved.opened_on == days[6]
        transferred = case_of(s, chosen["transferred"])
        assert transferred is not None and transferred.opened_on == days[1] and transferred.state != "returned"
        assert case_of(s, chosen["noon"]).opened_on == days[3]


def test_staff_cannot_excuse_a_case_as_leave_without_an_approved_request(factory, session):
    """Only an approved request excuses: a teacher's ``excuse`` as 病假 is refused (CLI, API and pages go
    through the same check); 误报 stays the clerk's own correction."""
    from machines.case_machine import ForbiddenEvent
    from store.cases.actions import act

    school, pupils = setup_store(session)
    session.commit()
    morning(factory, school, MON, [pupils[0], pupils[1]])
    at = datetime(2026, 11, 16, 10)
    for kind in ("sick_leave", "personal_leave", "exemption", "transfer"):
        with pytest.raises(ForbiddenEvent, match="审批"), transaction(factory) as s:
            act(s, CaseContext(s), case_of(s, pupils[0]).id, "excuse", actor="t", at=at, now=at, reason=kind)
    with transaction(factory) as s:
        act(s, CaseContext(s), case_of(s, pupils[1]).id, "excuse", actor="t", at=at, now=at, reason="opened_in_error")
    with factory() as s:
        assert case_of(s, pupils[0]).state == "absent"
        assert (case_of(s, pupils[1]).state, case_of(s, pupils[1]).outcome_reason) == ("excused", "opened_in_error")
