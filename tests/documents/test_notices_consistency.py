"""Issue 16 §2: a document carries the date and the facts of its act, and no notice's deadline
contradicts another's — under every shipped policy, on both databases."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from documents import catalog
from documents.archive import act_time, case_plan, render_queued
from documents.render import render_html
from store.cases.context import CaseContext
from store.models import Case, CaseEvent, DocumentRequest
from store.models.documents import Document
from store.policy_files import SHIPPED_POLICIES

from tests.factories_documents import climb

POLICIES = sorted(p.stem for p in SHIPPED_POLICIES.glob("*.toml"))
LATE = timedelta(days=17)  # rendered long after the act: a retry, a rebuilt archive


@pytest.fixture(autouse=True)
def archive_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    return tmp_path / "archive"


def _plans(session, case_id: int, now: datetime) -> list:
    requests = session.scalars(select(DocumentRequest).where(DocumentRequest.case_id == case_id)
                               .order_by(DocumentRequest.event_seq, DocumentRequest.id)).all()
    return [case_plan(session, case_id, r.kind, actor="t", now=now, event_seq=r.event_seq) for r in requests]


def _d(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text else None


def test_a_policy_gives_the_return_notice_its_period_before_the_legal_notice():
    from machines.policy import Policy
    from store.policy_files import read_policy_file

    for name in POLICIES:
        policy, text = read_policy_file(SHIPPED_POLICIES / f"{name}.toml")
        assert "notices" in policy.model_fields_set, f"{name}: [notices] must be stated"
    raw = read_policy_file(SHIPPED_POLICIES / "default.toml")[0].model_dump(mode="json")
    raw["notices"]["return_notice_days"] = 2  # day 4 + 2 > day 5: the legal notice would come too early
    with pytest.raises(ValueError, match="judicial_notice on day 5"):
        Policy.model_validate(raw)
    raw["notices"]["return_notice_days"] = 1
    raw["steps"][3]["duties"][0]["due_school_days"] = 1  # served after its own deadline
    with pytest.raises(ValueError, match="served too late"):
        Policy.model_validate(raw)


@pytest.mark.parametrize("policy_name", POLICIES)
def test_no_document_date_or_deadline_contradicts_another(session, policy_name):
    _check_consistent(session, climb(session, policy=policy_name), policy_name)


def climb_late_township(session) -> int:
    """wutaishan: the second persuasion (经学校2次劝返) only on day 8, so the case enters township_notice two
    school days after its day 6; swept every morning, its duties done on the day, as ``climb``."""
    from machines.states import Action
    from store.cases.actions import act
    from store.cases.intake import MarkIn, record_morning_check
    from store.cases.per_case import advance_per_case
    from store.models import Pupil, School
    from tests.factories_documents import FIRST_DAY, payload_for, setup_county

    code = setup_county(session, policy="wutaishan", seed=13)
    ctx = CaseContext(session)
    pupil = session.scalar(select(Pupil).join(School).where(School.code == code).order_by(Pupil.id))
    record_morning_check(session, ctx, school_code=code, day=FIRST_DAY, marks=[MarkIn(pupil.student_no, "unexcused")],
                         source="test", submitted_by="班主任", now=datetime.combine(FIRST_DAY, time(8, 0)), complete=False)
    case = session.scalar(select(Case).where(Case.pupil_id == pupil.id))
    cal = ctx.calendar(case.calendar_key)
    late = {"record_collective_visit": 8}  # the collective visit (second persuasion) on day 8, not day 3
    for n in range(1, 20):
        day = cal.add_school_days(FIRST_DAY, n - 1)
        advance_per_case(session, ctx, datetime.combine(day, time(9, 30)))
        session.refresh(case)
        for duty in sorted({d.action for d in case.duties if d.status in ("open", "overdue")}):
            if late.get(duty, n) != n:
                continue
            at = datetime.combine(day, time(15, 0))
            act(session, ctx, case.id, duty, actor="staff:test", at=at, now=at, payload=payload_for(Action(duty)))
    session.flush()
    return case.id


def test_a_late_township_entry_holds_the_legal_notice_until_the_return_notice_ran_out(session):
    """The township step waits for two persuasions, so it is entered after its day 6; the 督促送子女入学通知书 is
    still issued only once the 返校通知书 of that actual entry has run its period — not on the fixed day 11."""
    from store.models import Duty
    case_id = climb_late_township(session)
    case = session.get(Case, case_id)
    cal = CaseContext(session).calendar(case.calendar_key)
    entered = {e.to_state: e.at for e in session.scalars(select(CaseEvent).where(
        CaseEvent.case_id == case_id, CaseEvent.event == "escalate"))}
    day8, day11 = (cal.add_school_days(date(2026, 11, 16), n - 1) for n in (8, 11))
    assert entered["township_notice"] == datetime.combine(day8, time(15))  # when the second persuasion was recorded
    deadline = cal.add_school_days(day8, 5)
    assert deadline > day11 and entered["judicial_notice"] == datetime.combine(deadline, time(9))
    # the legal step's duties count from the day it was reached
    serve = session.scalar(select(Duty).where(Duty.case_id == case_id, Duty.action == "serve_legal_notice"))
    assert serve.due_at == datetime.combine(cal.add_school_days(deadline, 3), time(17))
    _check_consistent(session, case_id, "wutaishan")


def _check_consistent(session, case_id: int, policy_name: str) -> None:
    case = session.get(Case, case_id)
    cal = CaseContext(session).calendar(case.calendar_key)
    events = {e.seq: e for e in session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id))}
    last = max(e.at for e in events.values())
    plans = _plans(session, case_id, last + LATE)
    assert plans, "the ladder asked for documents"
    by_kind: dict[str, list[dict]] = {}
    for plan in plans:
        ctx = plan.context
        doc, record = ctx["doc"], ctx["record"]
        act = act_time(plan.kind.id, events[plan.event_seq], last + LATE)
        # dated the day of the act, never the render time
        assert doc["issued_on"] == act.date().isoformat(), (plan.kind.id, doc["issued_on"], act)
        assert plan.year == act.year
        # facts frozen at the act: the history stops at it, the streak is the one reached by then
        assert all(e["seq"] <= plan.event_seq for e in ctx["events"])
        reached = [e["payload"]["day"] for e in ctx["events"] if e["event"] == "escalate"]
        assert ctx["case"]["days_absent"] == max(reached, default=1)
        # a deadline falls on a school day after the issue day
        if record.get("deadline"):
            due = date.fromisoformat(record["deadline"])
            assert due > act.date() and cal.is_school_day(due), (plan.kind.id, record["deadline"])
            html = render_html(ctx)
            assert f"{due.year}年{due.month}月{due.day}日" in html
        by_kind.setdefault(plan.kind.id, []).append({"ctx": ctx, "act": act})
    # re-planned later still, the same text (a retry, a rebuilt archive)
    again = _plans(session, case_id, last + LATE + timedelta(days=40))
    assert [p.context for p in again] == [p.context for p in plans]

    policy = CaseContext(session).policy(case.policy_name, case.policy_version)
    returns, legals = by_kind.get("return_notice", []), by_kind.get("legal_notice", [])
    for r in returns:
        due = date.fromisoformat(r["ctx"]["record"]["deadline"])
        assert due == cal.add_school_days(r["act"].date(), policy.notices.return_notice_days)
        for served in by_kind.get("proof_of_service", []):
            if served["ctx"]["record"]["served_kind"] == "return_notice":
                assert r["act"] <= served["act"] < datetime.combine(due, policy.escalation_time), \
                    "served after it was issued, before its own deadline"
        for legal in legals:
            # the legal notice comes only once the return notice's deadline (that day's 晨检) has passed
            assert legal["act"] >= datetime.combine(due, policy.escalation_time), (legal["act"], due)
            assert _d(legal["ctx"]["doc"]["issued_on"]) >= due
            assert date.fromisoformat(legal["ctx"]["record"]["deadline"]) > due
            assert legal["ctx"]["record"]["return_deadline"] == due.isoformat()
    if policy_name != "jingbian":
        assert returns and legals, "the ladder issues both notices"
    if policy_name == "wutaishan":  # seed 000: 教育中心, 司法行政部门
        assert "五台山教育管理中心" in returns[0]["ctx"]["doc"]["cc"]
        assert legals[0]["ctx"]["doc"]["issuer"]["co_issuers"][0].endswith("司法行政部门")
        assert by_kind["report_to_bureau"][0]["ctx"]["record"]["addressees"] == ["五台山教育管理中心"]
        assert by_kind["dropout_report_form"][0]["ctx"]["record"]["addressees"][0] == "五台山教育管理中心"
    if policy_name == "default":  # seed 002 (二).4: 基教股
        assert by_kind["report_to_bureau"][0]["ctx"]["record"]["addressees"][0].endswith("教育局基础教育股")


def test_the_queue_renders_late_with_the_act_date(factory):
    """The issue's example: a notice must not be dated on the day it happened to be rendered."""
    with factory() as s, s.begin():
        case_id = climb(s, policy="default")
        events = {e.seq: e for e in s.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id))}
        wanted = s.scalars(select(DocumentRequest.id).where(DocumentRequest.case_id == case_id,
                                                            DocumentRequest.kind.in_(("return_notice", "proof_of_service")))).all()
        s.execute(DocumentRequest.__table__.update().where(DocumentRequest.id.not_in(wanted)).values(status="rendered"))
    later = max(e.at for e in events.values()) + LATE
    assert render_queued(factory, now=later)["rendered"] == len(wanted) == 5  # the notice, four receipts
    with factory() as s:
        docs = s.scalars(select(Document).where(Document.case_id == case_id)).all()
        # a receipt cites its notice: the legal notice and the parent notice are issued with theirs
        assert {d.kind for d in docs} == {"return_notice", "proof_of_service", "legal_notice", "parent_notice"}
        for d in docs:
            act = act_time(d.kind, events[d.event_seq], later)
            assert d.data["doc"]["issued_on"] == act.date().isoformat() != later.date().isoformat()
            assert d.created_at == later  # the archive still says when it was rendered
        served = next(d for d in docs if d.kind == "proof_of_service" and d.data["record"]["served_kind"] == "return_notice")
        notice = next(d for d in docs if d.kind == "return_notice")
        assert served.data["record"]["served"]["issued_on"] <= served.data["doc"]["issued_on"] \
            < notice.data["record"]["deadline"]


def test_the_whereabouts_unknown_report_is_addressed_to_the_police_too(session):
    """seed 000 §二.5: 去向不明 → 学校和学生父母共同向镇政府和当地公安机关报告."""
    from machines.states import CaseState
    from store.cases.actions import act
    from store.cases.intake import MarkIn, record_morning_check
    from store.cases.per_case import advance_per_case
    from store.models import Pupil, School
    from tests.factories_documents import FIRST_DAY, setup_county

    code = setup_county(session, policy="default", seed=12)
    ctx = CaseContext(session)
    pupil = session.scalar(select(Pupil).join(School).where(School.code == code).order_by(Pupil.id))
    record_morning_check(session, ctx, school_code=code, day=FIRST_DAY, marks=[MarkIn(pupil.student_no, "unexcused")],
                         source="test", submitted_by="班主任", now=datetime.combine(FIRST_DAY, time(8, 0)), complete=False)
    case = session.scalar(select(Case).where(Case.pupil_id == pupil.id))
    second = CaseContext(session).calendar(case.calendar_key).add_school_days(FIRST_DAY, 1)
    advance_per_case(session, ctx, datetime.combine(second, time(9, 30)))
    assert case.state == CaseState.visited.value
    at = datetime.combine(second, time(16, 0))
    ev = act(session, ctx, case.id, "escalate_outside", actor="t", at=at, now=at, reason="whereabouts_unknown").event
    plan = case_plan(session, case.id, "report_to_township", actor="t", now=at + LATE, event_seq=ev.seq)
    assert plan.context["record"]["whereabouts_unknown"]
    assert any(a.endswith("派出所") for a in plan.context["record"]["addressees"]), plan.context["record"]["addressees"]
    assert plan.context["doc"]["issued_on"] == second.isoformat()
    html = render_html(plan.context)
    assert "、".join(plan.context["record"]["addressees"]) + "：" in html and "公安机关报告" in html


def test_a_paper_prints_the_reason_and_the_signatories_of_its_own_date(session):
    """A reason reclassified after a paper was issued, and a principal who retired since, do not change what the
    paper says; papers issued after print the new reason and the person in office then."""
    from store.cases.actions import act
    from store.models import Staff

    case_id = climb(session, policy="default")
    case = session.get(Case, case_id)
    ctx = CaseContext(session)
    events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)).all()
    report = next(e for e in events if e.to_state == "township_notice" and e.event == "escalate")
    last = events[-1].at
    principal = session.scalar(select(Staff).where(Staff.school_id == case.school_id, Staff.role == "principal")
                               .order_by(Staff.id))
    assert principal is not None and case.reason == "study"
    later = last + timedelta(days=3)
    principal.retired_on = later.date()
    session.add(Staff(name="新校长", role="principal", school_id=case.school_id))
    act(session, ctx, case_id, "record_reason", actor="staff:test", at=later, now=later,
        payload={"reason": "family", "basis": "家访查明：父母离异，无人照看"})
    session.flush()
    before = case_plan(session, case_id, "dropout_report_form", actor="t", now=later + LATE, event_seq=report.seq).context
    assert before["case"]["reason"] == "study" and before["case"]["reason_label"] == "学业困难/厌学"
    assert before["people"]["principal"]["name"] == principal.name
    reclassified = max(e.seq for e in session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id)))
    now_ = case_plan(session, case_id, "dropout_report_form", actor="t", now=later + LATE, event_seq=reclassified).context
    assert now_["case"]["reason"] == "family" and now_["people"]["principal"]["name"] == "新校长"


@pytest.mark.parametrize("path", ["bulk", "per_case"])
def test_steps_caught_up_at_once_date_each_paper_by_its_own_step(factory, path):
    """A sweep that catches up several steps (the sweep did not run for days), and a case registered days after
    its first absence: each step's papers carry the day that step was reached — its own morning check, never
    before the case was registered — not the day of the catch-up or one date for all; and the legal notice
    still waits for the return notice's deadline."""
    from store.cases.advance import advance
    from store.cases.intake import open_cases_bulk
    from store.cases.per_case import advance_per_case
    from store.db import transaction
    from store.models import Pupil, School
    from tests.factories_documents import FIRST_DAY, setup_county

    with transaction(factory) as s:
        code = setup_county(s, policy="default", seed=14)
        ctx = CaseContext(s)
        school = s.scalar(select(School).where(School.code == code))
        on_time, late = s.scalars(select(Pupil).where(Pupil.school_id == school.id).order_by(Pupil.id)).all()[:2]
        cal = ctx.calendar(school.calendar_key)
        day = {n: cal.add_school_days(FIRST_DAY, n - 1) for n in range(1, 12)}
        registered = datetime.combine(day[3], time(10, 30))  # reported on day 3 for an absence since day 1
        [a] = open_cases_bulk(s, ctx, school, FIRST_DAY, [(on_time, "unknown")], actor="t",
                              now=datetime.combine(FIRST_DAY, time(8, 5)))
        [b] = open_cases_bulk(s, ctx, school, FIRST_DAY, [(late, "unknown")], actor="t", now=registered)
    catch_up = datetime.combine(day[9], time(18, 0))  # the first sweep since the cases opened
    if path == "bulk":
        advance(factory, catch_up)
    else:
        with transaction(factory) as s:
            advance_per_case(s, CaseContext(s), catch_up)
    with factory() as s:
        policy = CaseContext(s).policy("default", 2)
        for case_id, floor in ((a, datetime.combine(FIRST_DAY, time(8, 5))), (b, registered)):
            events = {e.seq: e for e in s.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id))}
            plans = _plans(s, case_id, catch_up + LATE)
            assert {events[p.event_seq].to_state for p in plans} >= {"family_contacted", "township_notice",
                                                                       "judicial_notice"}
            for p in plans:
                step = policy.step(events[p.event_seq].to_state)
                own = max(datetime.combine(day[step.day], policy.escalation_time), floor)
                if step.state.value == "judicial_notice":  # after the return notice's deadline (晨检)
                    returned_by = cal.add_school_days(events[p.event_seq - 1].at.date(), policy.notices.return_notice_days)
                    own = max(own, datetime.combine(returned_by, policy.escalation_time))
                assert p.context["doc"]["issued_on"] == own.date().isoformat(), (case_id, p.kind.id, own)
            dates = [date.fromisoformat(p.context["doc"]["issued_on"]) for p in plans]
            assert dates == sorted(dates) and len(set(dates)) > 1
