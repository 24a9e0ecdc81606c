"""Issue 16 items 3–4: reasons are investigated (record_reason), the reason distribution counts
dropouts only, 三帮一 needs the policy's named helpers, and wutaishan's step to the education centre
needs two persuasions on record besides the day count (per-case and set-based paths alike)."""
from __future__ import annotations

from datetime import date, datetime, time

import pytest
from sqlalchemy import select

from machines.payloads import PayloadInvalid
from store.cases.actions import act
from store.cases.advance import advance
from store.cases.context import CaseContext
from store.cases.per_case import advance_per_case
from store.db import transaction
from store.models import Case, CaseEvent, DocumentRequest, Duty, Helper, School
from store.reporting import reports as rp
from tests.engine_helpers import THREE_HELPERS, case_of, morning, setup_store

MON = date(2026, 11, 16)  # day 1; 11-18 is day 3, 11-23 day 6, 11-24 day 7


def _at(d: date, h: int, m: int = 0) -> datetime:
    return datetime.combine(d, time(h, m))


def _act(factory, case_id: int, event: str, at: datetime, **kw):
    with transaction(factory) as s:
        return act(s, CaseContext(s), case_id, event, actor="user:school", at=at, now=at, **kw)


def _county(factory, policy: str = "default"):
    with transaction(factory) as s:
        code, pupils = setup_store(s, policy=policy, pupils_per_class=3)
    return code, pupils


def test_record_reason_reclassifies_and_the_history_keeps_each_change(factory):
    code, pupils = _county(factory)
    morning(factory, code, MON, [pupils[0]])
    with factory() as s:
        cid = case_of(s, pupils[0]).id
    _act(factory, cid, "record_reason", _at(MON, 10), payload={"reason": "poverty", "basis": "家访：家中无力负担"})
    _act(factory, cid, "record_reason", _at(MON, 15), note="复核", payload={"reason": "study"})
    with factory() as s:
        assert s.get(Case, cid).reason == "study"
        rows = s.execute(select(CaseEvent.actor, CaseEvent.at, CaseEvent.reason, CaseEvent.payload)
                         .where(CaseEvent.case_id == cid, CaseEvent.event == "record_reason").order_by(CaseEvent.seq)).all()
    assert [(r.payload["previous"], r.payload["reason"]) for r in rows] == [("unknown", "poverty"), ("poverty", "study")]
    assert rows[0].actor == "user:school" and rows[0].at == _at(MON, 10)
    assert rows[0].reason == "查明辍学原因：家庭贫困" and rows[1].reason == "复核"
    with pytest.raises(PayloadInvalid, match="原因"):  # not one of seed 002's classes
        _act(factory, cid, "record_reason", _at(MON, 16), payload={"reason": "lazy"})


def test_the_reason_distribution_counts_dropouts_only_in_the_read_model_and_the_monthly_report(factory):
    from documents.reports import ScopeArg, monthly_report
    code, pupils = _county(factory)
    morning(factory, code, MON, pupils[:2])
    morning(factory, code, date(2026, 11, 18), [pupils[2]], complete=False)  # a day-1 absence: not a dropout
    advance(factory, _at(date(2026, 11, 18), 9, 30))
    with factory() as s:
        a, b, c = (case_of(s, p).id for p in pupils[:3])
        school = s.scalar(select(School).where(School.code == code))
    for cid, reason in ((a, "family"), (c, "poverty")):
        _act(factory, cid, "record_reason", _at(date(2026, 11, 18), 11), payload={"reason": reason})
    with factory() as s:
        assert {s.get(Case, i).state for i in (a, b)} == {"collective_visit"} and s.get(Case, c).state == "family_contacted"
        scope = rp.ReportScope("school", code, school.name, (school.id,))
        f = rp.ledger_figures_many(s, [scope], rp.month_period(2026, 11), _at(date(2026, 11, 18), 12))[0]
        assert f["dropouts"] == 2 and f["reasons"] == {"family": 1, "unknown": 1}  # the day-1 pupil's poverty: not counted
        report = monthly_report(s, ScopeArg("school", code), "2026-11", now=_at(date(2026, 11, 18), 12))
        assert {r["reason"]: r["count"] for r in report["reasons"]} == {"family": 1, "unknown": 1}


def test_assign_helpers_needs_the_policys_named_helpers_with_their_roles(factory):
    code, pupils = _county(factory)
    morning(factory, code, MON, [pupils[0]])
    with factory() as s:
        cid = case_of(s, pupils[0]).id
    with pytest.raises(PayloadInvalid) as one:
        _act(factory, cid, "assign_helpers", _at(MON, 10), payload={"helpers": [{"name": "张三", "role": "班主任"}]})
    assert "三帮一须落实3名帮扶责任人" in str(one.value) and "科任教师" in str(one.value) and "村委会" in str(one.value)
    with pytest.raises(PayloadInvalid, match="三帮一须包括：村委会"):  # three names, but no village cadre
        _act(factory, cid, "assign_helpers", _at(MON, 10), payload={"helpers": [
            {"name": "甲", "role": "head_teacher"}, {"name": "乙", "role": "subject_teacher"}, {"name": "丙", "role": "principal"}]})
    with pytest.raises(PayloadInvalid, match="不同的人"):  # one person three times is one helper
        _act(factory, cid, "assign_helpers", _at(MON, 10), payload={"helpers": [
            {"name": "甲", "role": r} for r in ("head_teacher", "subject_teacher", "village_committee")]})
    with factory() as s:
        assert s.scalar(select(Helper.id).where(Helper.case_id == cid)) is None
        assert s.scalar(select(CaseEvent.id).where(CaseEvent.event == "assign_helpers")) is None
    _act(factory, cid, "assign_helpers", _at(MON, 11), payload={"helpers": [
        {"name": "帮扶甲", "role": "班主任"}, {"name": "帮扶乙", "role": "subject_teacher"}, {"name": "帮扶丙", "role": "村委会"}]})
    with factory() as s:
        assert sorted(s.execute(select(Helper.name, Helper.role).where(Helper.case_id == cid)).all()) == [
            ("帮扶丙", "village_committee"), ("帮扶乙", "subject_teacher"), ("帮扶甲", "head_teacher")]
        # the 控辍方案 is issued with the helpers (it names only those assigned)
        assert s.scalar(select(DocumentRequest.kind).where(DocumentRequest.case_id == cid)
                        .order_by(DocumentRequest.id.desc())) == "control_plan"


def test_a_policy_without_three_helpers_takes_one_named_helper(factory):
    code, pupils = _county(factory, "jingbian")  # seed 002 (靖边): helpers_required = 0
    morning(factory, code, MON, [pupils[0]])
    with factory() as s:
        cid = case_of(s, pupils[0]).id
    _act(factory, cid, "assign_helpers", _at(MON, 10), payload={"helpers": [{"name": "张三", "role": "班主任"}]})


@pytest.mark.parametrize("path", ["bulk", "per_case"])
def test_wutaishan_reaches_the_education_centre_after_two_persuasions_and_a_week(factory, path):
    def sweep(at: datetime):
        if path == "bulk":
            advance(factory, at)
        else:
            with transaction(factory) as s:
                advance_per_case(s, CaseContext(s), at)

    code, pupils = _county(factory, "wutaishan")
    morning(factory, code, MON, pupils[:2])
    with factory() as s:
        a, b = (case_of(s, p).id for p in pupils[:2])
    day3, day7 = date(2026, 11, 18), date(2026, 11, 24)
    sweep(_at(day3, 9, 30))
    _act(factory, a, "record_home_visit", _at(day3, 10))  # case a: one persuasion only, for now
    sweep(_at(day7, 9, 30))  # seven school days: more than a week, but a has one persuasion, b none
    with factory() as s:
        assert s.get(Case, a).state == s.get(Case, b).state == "collective_visit"
        late = set(s.scalars(select(Duty.action).where(Duty.case_id == b, Duty.status == "overdue")))
        assert {"record_home_visit", "record_collective_visit"} <= late  # the missing persuasions: overdue (追责)
    _act(factory, a, "record_collective_visit", _at(day7, 11))  # the second persuasion
    sweep(_at(day7, 12))
    with factory() as s:
        assert s.get(Case, a).state == "township_notice" and s.get(Case, b).state == "collective_visit"
        moved = s.scalar(select(CaseEvent).where(CaseEvent.case_id == a, CaseEvent.event == "escalate",
                                                 CaseEvent.to_state == "township_notice"))
        assert moved.at == _at(day7, 11)  # not before the condition held
        kinds = set(s.scalars(select(DocumentRequest.kind).where(DocumentRequest.case_id == a,
                                                                 DocumentRequest.event_seq == moved.seq)))
        assert "education_center_list" in kinds
        from store.duties.handoffs import recipients_for
        policy = CaseContext(s).policy("wutaishan", s.get(Case, a).policy_version)
        assert recipients_for(policy, "education_center_list") == ["education_center"]  # with its 送达回证


def test_the_control_plan_and_the_dropout_report_form_name_only_the_assigned_helpers(factory, tmp_path, monkeypatch):
    from documents.archive import render_for_case
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path))
    code, pupils = _county(factory)
    morning(factory, code, MON, [pupils[0]])
    advance(factory, _at(date(2026, 11, 18), 9, 30))  # 集体家访: the plan waits for the helpers
    with factory() as s:
        cid = case_of(s, pupils[0]).id
        assert "control_plan" not in set(s.scalars(select(DocumentRequest.kind).where(DocumentRequest.case_id == cid)))
    _act(factory, cid, "assign_helpers", _at(date(2026, 11, 18), 10), payload={"helpers": THREE_HELPERS})
    advance(factory, _at(date(2026, 11, 19), 9, 30))  # day 4: the 辍学报告单
    with transaction(factory) as s:
        for kind in ("control_plan", "dropout_report_form"):
            record = render_for_case(s, cid, kind, actor="test", fmt="html", now=_at(date(2026, 11, 19), 18))
            html = (tmp_path / record.path).read_text(encoding="utf-8")
            assert "帮扶甲（班主任）" in html and "帮扶乙（科任教师）" in html and "帮扶丙（村委会）" in html, kind
            assert "待落实" not in html and "（学校领导）" not in html and "（村干部）" not in html, kind
