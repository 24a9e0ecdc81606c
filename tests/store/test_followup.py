"""A referred case (移交跟踪) on a real store: follow-up rounds from the policy, return via the morning
check or an action, 销号 (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from store.cases.actions import act
from store.cases.context import CaseContext
from store.cases.replay import replay
from store.db import transaction
from store.models import DocumentRequest, Duty
from tests.engine_helpers import case_of, duties, morning, setup_store, sweep

MON, TUE, WED, THU, FRI = (date(2026, 11, d) for d in (16, 17, 18, 19, 20))
NEXT = [date(2026, 11, d) for d in (23, 24, 25, 26, 27)]


def refer(factory, case_id: int, reason: str, day: date) -> None:
    with transaction(factory) as s:
        act(s, CaseContext(s), case_id, "escalate_outside", actor="staff:2", at=datetime.combine(day, datetime.min.time()).replace(hour=15),
            now=datetime.combine(day, datetime.min.time()).replace(hour=15), reason=reason)


def follow_ups(s, case_id: int) -> list[tuple]:
    return [d for d in duties(s, case_id) if d[0].startswith("escalated:")]


def test_whereabouts_unknown_under_wutaishan_is_searched_for_until_the_morning_check_finds_the_pupil(factory, session):
    school, pupils = setup_store(session, policy="wutaishan")
    session.commit()
    p = pupils[0]
    morning(factory, school, MON, [p])
    sweep(factory, MON)
    with factory() as s:
        case_id = case_of(s, p).id
    refer(factory, case_id, "whereabouts_unknown", MON)  # 五台山: from the first day on
    with factory() as s:
        case = case_of(s, p)
        assert case.state == "escalated" and case.outcome_reason == "whereabouts_unknown" and case.closed_on is None
        rounds = follow_ups(s, case_id)
        assert sorted((d[0], d[1], d[2], d[3], d[4]) for d in rounds) == [
            ("escalated:1", "record_follow_up", "head_teacher", datetime(2026, 11, 23, 17), "open"),
            ("escalated:1", "record_police_search", "police", datetime(2026, 11, 23, 17), "open")]
        phone = [d for d in duties(s, case_id) if d[1] == "record_phone_call"]
        assert phone and phone[0][4] != "cancelled", "the ladder's duty is not dropped by the referral"
    for day in (TUE, WED, THU, FRI, *NEXT[:2]):  # still absent every morning: the same case, no new one
        result = morning(factory, school, day, [p])
        assert result.opened == [] and result.continuing == 1
        sweep(factory, day)
    with factory() as s:
        rounds = follow_ups(s, case_id)
        # round 1 overdue on 23 Nov at 17:00; the sweep of 24 Nov raised round 2, due 5 school days later
        assert ("escalated:1", "record_police_search", "police", datetime(2026, 11, 23, 17), "overdue") in rounds
        assert ("escalated:2", "record_police_search", "police", datetime(2026, 12, 1, 17), "open") in rounds
        assert len(rounds) == 4
    with transaction(factory) as s:  # the police report back: that round done; the next comes at the next sweep
        act(s, CaseContext(s), case_id, "record_police_search", actor="staff:5", at=datetime(2026, 11, 24, 16),
            now=datetime(2026, 11, 24, 16), payload={"notes": "派出所走访亲属，仍未查到下落"})
    sweep(factory, NEXT[2])
    with factory() as s:
        assert ("escalated:3", "record_police_search", "police", datetime(2026, 12, 2, 17), "open") in follow_ups(s, case_id)
    result = morning(factory, school, NEXT[3], [])  # a full check with the pupil present: 复学, 销号
    with factory() as s:
        case = case_of(s, p)
        assert result.returned == [case_id] and case.state == "returned" and case.closed_on == NEXT[3]
        assert case.outcome_reason == "whereabouts_unknown", "the 台账 keeps why it was referred"
        assert all(d[4] != "open" for d in duties(s, case_id))
        assert "return_register" in set(s.scalars(select(DocumentRequest.kind).where(DocumentRequest.case_id == case_id)))
        assert replay(s, case_id).value == "returned"
    assert sweep(factory, NEXT[4]).follow_ups == 0


def test_working_away_keeps_persuading_the_guardian_and_the_employer_and_returns_by_action(factory, session):
    school, pupils = setup_store(session, policy="wutaishan")
    session.commit()
    p = pupils[1]
    for day in (MON, TUE):
        morning(factory, school, day, [p])
        sweep(factory, day)
    with factory() as s:
        case_id = case_of(s, p).id
        assert case_of(s, p).state == "visited"
    refer(factory, case_id, "working_away", TUE)
    with factory() as s:
        assert {(d[1], d[2]) for d in follow_ups(s, case_id)} == {
            ("record_guardian_persuasion", "head_teacher"), ("record_employer_persuasion", "village_committee")}
        visit = [d for d in duties(s, case_id) if d[1] == "record_home_visit"]
        assert visit[0][4] in ("open", "overdue"), "working away cancels no persuasion duty (seed 000 §二.5)"
    with transaction(factory) as s:
        act(s, CaseContext(s), case_id, "record_guardian_persuasion", actor="staff:3", at=datetime(2026, 11, 18, 16),
            now=datetime(2026, 11, 18, 16), payload={"notes": "电话劝返家长"})
        act(s, CaseContext(s), case_id, "record_employer_persuasion", actor="staff:3", at=datetime(2026, 11, 18, 17),
            now=datetime(2026, 11, 18, 17), payload={"notes": "联系用工单位，责令辞退"})
    sweep(factory, THU)
    with factory() as s:
        rounds = follow_ups(s, case_id)
        assert {(d[0], d[1], d[4]) for d in rounds} == {
            ("escalated:1", "record_guardian_persuasion", "done"), ("escalated:1", "record_employer_persuasion", "done"),
            ("escalated:2", "record_guardian_persuasion", "open"), ("escalated:2", "record_employer_persuasion", "open")}
    with transaction(factory) as s:
        act(s, CaseContext(s), case_id, "mark_returned", actor="staff:3", at=datetime(2026, 11, 20, 8),
            now=datetime(2026, 11, 20, 8))
    with factory() as s:
        case = case_of(s, p)
        assert case.state == "returned" and case.closed_on == FRI and case.outcome_reason == "working_away"
        assert {d[4] for d in follow_ups(s, case_id)} == {"done", "cancelled"}


def test_refusal_after_the_legal_notice_is_referred_to_the_judicial_office_with_its_papers(factory, session):
    school, pupils = setup_store(session, policy="default")
    session.commit()
    p = pupils[2]
    for day in (MON, TUE, WED, THU, FRI):
        morning(factory, school, day, [p])
        sweep(factory, day)
    with factory() as s:
        case_id = case_of(s, p).id
        assert case_of(s, p).state == "judicial_notice"
    refer(factory, case_id, "refusal_after_notice", NEXT[1])
    with factory() as s:
        kinds = set(s.scalars(select(DocumentRequest.kind).where(DocumentRequest.case_id == case_id)))
        assert "judicial_referral" in kinds
        assert {(d[1], d[2]) for d in follow_ups(s, case_id)} == {
            ("record_judicial_progress", "judicial_office"), ("record_guardian_persuasion", "head_teacher")}
        assert s.scalar(select(Duty.status).where(Duty.case_id == case_id, Duty.action == "serve_legal_notice")) != "cancelled"


def test_the_referral_papers_and_the_ledger_book_render_with_the_facts(factory, session, tmp_path, monkeypatch):
    """提请依法处理函 (PDF) for a refusal; the 台账 (PDF, XLSX) lists the case as 跟踪中, then 销号 after return."""
    import io

    from openpyxl import load_workbook

    from documents.archive import file_path, render_for_case, render_report
    from store.models import Jurisdiction

    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path))
    school, pupils = setup_store(session, policy="default")
    session.commit()
    p = pupils[2]
    for day in (MON, TUE, WED, THU, FRI):
        morning(factory, school, day, [p])
        sweep(factory, day)
    with factory() as s:
        case_id = case_of(s, p).id
    with transaction(factory) as s:
        act(s, CaseContext(s), case_id, "serve_legal_notice", actor="staff:4", at=datetime(2026, 11, 23, 10),
            now=datetime(2026, 11, 23, 10), payload={"recipient": "监护人", "refused": True})
    refer(factory, case_id, "refusal_after_notice", NEXT[3])
    with transaction(factory) as s:
        # HTML here (the PDF of every case kind under every policy: tests/documents/test_documents.py)
        doc = render_for_case(s, case_id, "judicial_referral", actor="t", fmt="html", now=datetime(2026, 11, 26, 16))
        html = file_path(doc).read_text(encoding="utf-8")
        assert "提请依法提出起诉或依法给予行政处罚" in html and "司法所" in html and "人民法院" in html and "拒收" in html
        county = s.scalar(select(Jurisdiction.code).where(Jurisdiction.level == "county"))
        book = render_report(s, "referral_ledger", scope=f"county:{county}", period="2026-11", actor="t", fmt="xlsx",
                             now=datetime(2026, 11, 30, 18))
        ws = load_workbook(io.BytesIO(file_path(book).read_bytes())).active
        cells = [c.value for row in ws.iter_rows() for c in row if c.value is not None]
        assert "拒不送子女入学" in cells and "移交跟踪中" in cells
    with transaction(factory) as s:
        act(s, CaseContext(s), case_id, "mark_returned", actor="staff:3", at=datetime(2026, 12, 1, 8), now=datetime(2026, 12, 1, 8))
    with transaction(factory) as s:
        book = render_report(s, "referral_ledger", scope=f"county:{county}", period="2026-12", actor="t", fmt="xlsx",
                             now=datetime(2026, 12, 2, 18))
        ws = load_workbook(io.BytesIO(file_path(book).read_bytes())).active
        cells = [c.value for row in ws.iter_rows() for c in row if c.value is not None]
        assert "已复学·销号" in cells and "2026-12-01" in cells


def test_a_referred_case_counts_as_a_dropout_until_it_returns_and_a_filed_month_stays_as_filed(factory, session):
    from store.policy_files import PolicyRegistry
    from store.reporting import reports as rp

    school, pupils = setup_store(session, policy="wutaishan")
    session.commit()
    p = pupils[0]
    morning(factory, school, MON, [p])
    sweep(factory, MON)
    with factory() as s:
        case_id = case_of(s, p).id
    refer(factory, case_id, "whereabouts_unknown", MON)
    nov, dec = rp.month_period(2026, 11), rp.month_period(2026, 12)
    with transaction(factory) as s:
        scope = rp.scope_of(s, "school", school)
        assert rp.ledger_figures(s, scope, nov, datetime(2026, 11, 30, 20))["dropouts"] == 1
        rp.file_report(s, policy=PolicyRegistry(s).get("wutaishan"), level="school", scope=scope, period=nov,
                       as_of=datetime(2026, 11, 30, 20), actor="t")
    morning(factory, school, date(2026, 12, 1), [])  # back on 1 December: 复学, 销号
    with factory() as s:
        assert case_of(s, p).state == "returned"
        scope = rp.scope_of(s, "school", school)
        later = datetime(2026, 12, 31, 20)
        assert rp.ledger_figures(s, scope, nov, later)["dropouts"] == 1, "November still counts the referred pupil"
        assert rp.filed_figures(s, "school", school, nov)["dropouts"] == 1, "the filed month stays as filed"
        december = rp.ledger_figures(s, scope, dec, later)
        assert december["dropouts"] == 0 and december["returned"] == 1
