"""Accountability (issue 17 items 4 and 7): the evidence lists every kind of duty from the ledger with the
person and the seed ground, and the sheet, the page's model and the API read the same rows; 约谈 records
with a follow-up duty and an outcome; 包保 chains route duties; the yearly 责任书 and its signature duty;
the 一票否决 list and the township ranking; the CLI."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from documents.reports import ScopeArg, accountability_sheet
from store.accountability import chain, pledges, talks
from store.access.scope import EVERYTHING, Scope
from store.duties import ledger
from store.models import Case, Duty, Pupil, School, SchoolClass, Staff
from store.models.accountability import PledgeDuty, TalkDuty
from store.policy_files import load_policies_into
from store.reporting import accountability as acc
from store.reporting import dashboards
from tests.store.test_duty_ledger import KINDS, NOW, world  # noqa: F401 - one overdue duty of every older kind


@pytest.fixture
def county(session, world):  # noqa: F811
    load_policies_into(session, now=NOW)
    session.flush()
    return world


def _talk(session, school: School, *, held: datetime, deadline: date, key: str = "k1", level: str = "county"):
    form = talks.TalkForm(interviewee="校长甲", school_code=school.code, held_at=held, subject="逾期未家访",
                          items=["补录家访", "落实帮扶"], deadline=deadline, key=key)
    return talks.record_talk(session, form, level=level, interviewer="县教育局", interviewer_id=None, actor="test", now=held)


def test_the_evidence_lists_every_kind_of_overdue_duty_with_person_and_ground_and_all_readers_agree(session, county):
    a = county["a"]
    _talk(session, a, held=NOW - timedelta(days=5), deadline=(NOW - timedelta(days=1)).date())
    chain.fill_defaults(session, school_ids=[a.id], actor="test", now=NOW)
    assert pledges.issue_year(session, year=2026, now=NOW - timedelta(days=60))  # due 30 September: overdue now
    start, end = date(2026, 11, 1), date(2026, 11, 30)
    data = acc.evidence(session, EVERYTHING, start, end, NOW)
    kinds = {r["kind"] for r in data["rows"]}
    assert kinds == set(KINDS) | {"talk", "pledge"}  # every kind of the ledger, none left out
    assert {k["kind"] for k in data["kinds"]} == kinds
    for r in data["rows"]:
        assert r["ground"] and r["ground_seed"], r
        assert r["status"] == "not_done" and r["hours_late"] > 0
    by_kind = {r["kind"]: r for r in data["rows"]}
    # the chain was filled: the case's head-teacher duty went from the school's first staff member to the
    # class's head teacher (the pupil's 包保班主任)
    head = session.scalar(select(Staff.name).join(SchoolClass, SchoolClass.head_teacher_id == Staff.id)
                          .join(Case, Case.class_id == SchoolClass.id).where(Case.id == by_kind["case"]["ref_id"]))
    assert by_kind["case"]["person"] == head != county["owner"].name and by_kind["case"]["ground_seed"] == "003 二(1)"
    assert by_kind["census"]["person"] == county["owner"].name  # a census child has no chain
    assert by_kind["talk"]["ground_seed"] == "001 四.1" and by_kind["pledge"]["carried_over"]
    assert by_kind["pledge"]["person"] and by_kind["pledge"]["role_label"] == "班主任"
    # the sheet (PDF/XLSX data), the page's model and the API's model are the same rows
    county_code = session.scalar(select(School.township_id).where(School.id == a.id))
    from store.models import Jurisdiction
    county_row = session.get(Jurisdiction, session.get(Jurisdiction, county_code).parent_id)
    sheet = accountability_sheet(session, ScopeArg("county", county_row.code), "2026-11", as_of=NOW)
    page = dashboards.accountability(session, EVERYTHING, start, end, NOW)
    assert [(r["key"], r["ground"]) for r in sheet["rows"]] == [(r["key"], r["ground"]) for r in page["rows"]]
    assert sheet["kinds"] == page["kinds"] == data["kinds"]
    # a school's scope: its own duties only (the county-wide calendar and other schools' are not its evidence)
    other = acc.evidence(session, Scope(school_ids=frozenset({county["b"].id})), start, end, NOW)
    assert other["rows"] == []


def test_a_talk_is_recorded_once_its_follow_up_is_a_duty_and_the_outcome_completes_it(session, county):
    a = county["a"]
    held, deadline = NOW - timedelta(days=3), NOW.date() + timedelta(days=2)
    talk, created = _talk(session, a, held=held, deadline=deadline)
    again, created_again = _talk(session, a, held=held, deadline=deadline)
    assert created and not created_again and again.id == talk.id
    duty = session.scalar(select(TalkDuty).where(TalkDuty.interview_id == talk.id))
    assert duty.due_at == datetime.combine(deadline, datetime.min.time()).replace(hour=17)
    after = duty.due_at + timedelta(hours=1)
    assert [r["duty_id"] for r in ledger.overdue(session, after, kinds=("talk",))] == [duty.id]
    assert ledger.mark_overdue(session, after, kinds=("talk",)) == {"talk": 1}
    with pytest.raises(talks.TalkError, match="整改结果"):
        talks.record_outcome(session, talk.id, rectified=True, outcome="  ", actor="t", now=after)
    talks.record_outcome(session, talk.id, rectified=False, outcome="仍有两项未整改", actor="县教育局", now=after)
    assert ledger.overdue(session, after, kinds=("talk",)) == []
    detail = talks.talk_detail(session, talk.id)
    assert (detail["status"], detail["outcome"], detail["followup"]["status"]) == ("not_rectified", "仍有两项未整改", "done")
    # done after its deadline: the evidence keeps it as done late
    rows = acc.evidence(session, EVERYTHING, deadline, deadline, after + timedelta(days=1))["rows"]
    assert [(r["kind"], r["status"]) for r in rows if r["kind"] == "talk"] == [("talk", "done_late")]
    # a township official holds talks about their own schools only
    with pytest.raises(talks.TalkError, match="管辖范围"):
        form = talks.TalkForm(interviewee="x", school_code=a.code, held_at=NOW, subject="s", items=["i"], deadline=NOW.date())
        talks.record_talk(session, form, level="township", interviewer="镇", interviewer_id=None, actor="t", now=NOW,
                          scope=Scope(township_ids=frozenset({county["b"].township_id})))


def test_the_chain_comes_with_the_roster_and_duties_go_to_it(session, county):
    from store.ingest.roster import import_roster

    a = county["a"]
    pupil = session.scalar(select(Pupil).where(Pupil.school_id == a.id).order_by(Pupil.id))
    klass = session.get(SchoolClass, pupil.class_id)
    mentor = session.scalar(select(Staff).where(Staff.school_id == a.id, Staff.role == "mentor_teacher"))
    roster = ("学校代码,学籍号,姓名,年级,班级,包保班主任,包保校领导,包保乡镇干部,包保村干部\n"
              f"{a.code},{pupil.student_no},{pupil.name},{klass.grade},{klass.name},{mentor.name},王校长,李镇长,张村长\n")
    result = import_roster(session, roster.encode(), "r.csv", now=NOW)
    assert result.errors == [] and result.updated == 1
    members = {m["role"]: m for m in chain.chain_of(session, pupil.id)}
    assert [members[r]["person"] for r in ("head_teacher", "principal", "township", "village_committee")] == \
        [mentor.name, "王校长", "李镇长", "张村长"]
    assert members["head_teacher"]["staff_id"] == mentor.id and members["village_committee"]["staff_id"] is None
    # the pupil's open head-teacher duty now belongs to the chain's 包保班主任
    case_id = session.scalar(select(Case.id).where(Case.pupil_id == pupil.id))
    duty = session.scalar(select(Duty).where(Duty.case_id == case_id))
    session.refresh(duty)
    assert duty.owner_id == mentor.id
    assert chain.route_to_chain(session) == {"case": 0, "prevention": 0, "watch": 0}  # idempotent
    with pytest.raises(chain.ChainError, match="包保链"):
        chain.set_member(session, pupil=pupil, role="police", person_name="x", source="page", actor="t", now=NOW)
    other_staff = session.scalar(select(Staff).where(Staff.school_id == county["b"].id))
    with pytest.raises(chain.ChainError, match="不在本校"):
        chain.set_member(session, pupil=pupil, role="head_teacher", person_name="x", staff_id=other_staff.id,
                         source="page", actor="t", now=NOW)


def test_the_yearly_pledge_is_issued_once_and_a_missing_signature_is_a_duty(session, county):
    a = county["a"]
    chain.fill_defaults(session, school_ids=None, actor="test", now=NOW)
    issued = pledges.issue_year(session, year=2026, now=NOW)
    teachers = set(session.scalars(select(SchoolClass.head_teacher_id)))
    assert len(issued) == len(teachers) and pledges.issue_year(session, year=2026, now=NOW) == []
    rows = pledges.pledges(session, Scope(school_ids=frozenset({a.id})), year=2026)
    assert rows and all(r["school"] == a.name and r["status"] == "issued" for r in rows)
    first = rows[0]["id"]
    assert len(ledger.overdue(session, NOW, kinds=("pledge",))) == len(issued)
    with pytest.raises(pledges.PledgeError):
        pledges.record_signed(session, first, actor="t", at=NOW, scope=Scope(school_ids=frozenset({county["b"].id})))
    pledges.record_signed(session, first, actor="学校办公室", at=NOW)
    pledges.record_signed(session, first, actor="again", at=NOW + timedelta(days=1))
    duty = session.scalar(select(PledgeDuty).where(PledgeDuty.pledge_id == first))
    assert (duty.status, duty.done_by) == ("done", "学校办公室")
    assert len(ledger.overdue(session, NOW, kinds=("pledge",))) == len(issued) - 1


def test_the_veto_list_and_the_township_ranking_read_the_figures(session, county):
    a = county["a"]
    case = session.scalar(select(Case).where(Case.school_id == a.id, Case.state == "family_contacted"))
    case.state = "collective_visit"  # a dropout in a 4-pupil class: far over the standard rate
    session.flush()
    veto = acc.veto_list(session, 2026, NOW)
    names = {(r["level"], r["school"]) for r in veto["rows"]}
    assert ("school", a.name) in names and ("class", a.name) in names
    klass_row = next(r for r in veto["rows"] if r["level"] == "class")
    assert klass_row["reasons"] == ["over_standard"] and klass_row["head_teacher"]
    assert all(r["school"] != county["b"].name for r in veto["rows"])
    assert acc.veto_list(session, 2026, NOW, Scope(school_ids=frozenset({county["b"].id})))["rows"] == []
    from store.reporting.reports import month_period

    ranking = acc.township_ranking(session, month_period(2026, 11), NOW)
    assert ranking["asked"] and [r["rank"] for r in ranking["rows"]] == [1, 2]
    last = ranking["rows"][-1]
    assert last["township_id"] == a.township_id and last["over_standard"] and last["bottom"]
    assert last["duties_late"] >= 4 and 0 < last["late_share"] <= 1


def test_the_accountability_commands(blank_db_url):
    from tests.cli.test_cli import baoxue

    db = blank_db_url
    baoxue(db, "init", "--at", "2026-09-01T07:00")
    baoxue(db, "generate", "--seed", "3", "--townships", "1", "--schools", "1", "--pupils-per-class", "3", "--policy", "default")
    assert json.loads(baoxue(db, "accountability", "chain", "fill", "--json"))["added"] > 0
    out = json.loads(baoxue(db, "accountability", "pledge", "issue", "--year", "2026", "--no-render", "--json"))
    assert out["issued"] == 9
    talk = json.loads(baoxue(db, "accountability", "talk", "record", "--interviewee", "校长", "--subject", "逾期",
                             "--item", "补录", "--item", "落实", "--deadline", "2026-11-20", "--held-at", "2026-11-16T10:00",
                             "--key", "cli-1", "--json"))
    assert talk["created"]
    again = json.loads(baoxue(db, "accountability", "talk", "record", "--interviewee", "校长", "--subject", "逾期",
                              "--item", "补录", "--deadline", "2026-11-20", "--held-at", "2026-11-16T10:00", "--key", "cli-1",
                              "--json"))
    assert again == {**talk, "created": False}
    ev = json.loads(baoxue(db, "accountability", "evidence", "--start", "2026-11-01", "--end", "2026-11-30",
                           "--as-of", "2026-11-25T10:00", "--json"))
    assert {k["kind"]: k["count"] for k in ev["kinds"]} == {"pledge": 9, "talk": 1}
    baoxue(db, "accountability", "talk", "outcome", str(talk["id"]), "--outcome", "已整改", "--json")
    baoxue(db, "accountability", "pledge", "sign", "1", "--json")
    ev = json.loads(baoxue(db, "accountability", "evidence", "--start", "2026-11-01", "--end", "2026-11-30",
                           "--as-of", "2026-11-25T10:00", "--json"))
    assert {k["kind"]: k["open"] for k in ev["kinds"]} == {"pledge": 8, "talk": 0}
    assert "不存在" in baoxue(db, "accountability", "pledge", "sign", "99", code=1)
    assert json.loads(baoxue(db, "accountability", "veto", "--year", "2026", "--json"))["rows"] == []
    assert json.loads(baoxue(db, "accountability", "ranking", "--month", "2026-11", "--json"))["asked"]
