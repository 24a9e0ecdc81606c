"""旷课分级 (seed 001 第六条): the n-th truancy of a school year gives its tier's duty, on both databases."""
from __future__ import annotations

import json
from datetime import date, datetime, time

import pytest
from sqlalchemy import func, select

from machines.truancy import TruancyRules, count_truancies
from store.calendars import calendars, materialise
from store.cases.context import CaseContext
from store.cases.intake import MarkIn, record_morning_check
from store.models import Pupil, School, SchoolClass, Staff
from store.policy_files import load_policies_into
from store.prevention.common import complete_duty, mark_overdue
from store.models.prevention import PreventionDuty, PreventionEvent, TruancyTierRecord
from demo.synthetic import Size, generate_county
from store.prevention.truancy import apply_tiers, history, pupil_tiers

MONDAY = datetime(2026, 11, 16, 8, 0)


# -- the pure rule -----------------------------------------------------------------------------------
def test_consecutive_days_are_one_truancy_and_a_gap_starts_another():
    assert count_truancies([10, 11, 12, 14, 20, 21]) == [10, 14, 20]
    assert count_truancies([10, 11, 12, 14], mode="day") == [10, 11, 12, 14]
    assert count_truancies([]) == []


def test_default_tiers_follow_seed_001_and_the_fourth_repeats():
    rules = TruancyRules()
    assert [(k, t.tier, t.role) for k, t in rules.actions_due(5)] == [
        (1, 1, "head_teacher"), (2, 2, "head_teacher"), (3, 3, "grade_director"), (4, 4, "principal"), (5, 4, "principal")]
    assert rules.tier_for(0) is None and rules.tier_for(7).tier == 4
    assert rules.school_year(date(2026, 11, 16)) == 2026 and rules.school_year(date(2027, 3, 1)) == 2026
    no_repeat = rules.model_copy(update={"repeat_last_tier": False})
    assert [k for k, _ in no_repeat.actions_due(6)] == [1, 2, 3, 4]


def test_tiers_must_increase():
    t = TruancyRules().tiers
    with pytest.raises(ValueError, match="strictly increase"):
        TruancyRules(tiers=[t[0], t[1].model_copy(update={"min_count": 1})])


# -- the store ---------------------------------------------------------------------------------------
def small_county(session, policy_dir=None):
    load_policies_into(session, now=MONDAY, **({"directory": policy_dir} if policy_dir else {}))
    for cal in calendars().values():
        materialise(session, cal)
    generate_county(session, seed=5, size=Size(townships=1, schools_per_township=1, grades=(3,), pupils_per_class=4))
    session.flush()
    school = session.scalar(select(School))
    pupils = session.scalars(select(Pupil).order_by(Pupil.id)).all()
    return school, pupils


def absent(session, school, pupils, day: date):
    record_morning_check(session, CaseContext(session), school_code=school.code, day=day,
                         marks=[MarkIn(p.student_no, "缺勤") for p in pupils], source="cli", submitted_by="test",
                         now=datetime.combine(day, time(8, 0)))


# One pupil: Mon 16 + Tue 17 (one episode), Fri 20 + Mon 23 (consecutive school days: one episode over
# the weekend), Wed 25, Fri 27, Tue 1 Dec → five truancies; another pupil only on Thu 19.
PLAN = {date(2026, 11, 16): "a", date(2026, 11, 17): "a", date(2026, 11, 19): "b", date(2026, 11, 20): "a",
        date(2026, 11, 23): "a", date(2026, 11, 25): "a", date(2026, 11, 27): "a", date(2026, 12, 1): "a"}


def run_plan(session, school, pupils, until: date | None = None):
    who = {"a": pupils[0], "b": pupils[1]}
    for day, keys in sorted(PLAN.items()):
        if until and day > until:
            break
        absent(session, school, [who[k] for k in keys], day)


def tiers_of(session, pupil_id):
    return session.execute(select(TruancyTierRecord.occurrence, TruancyTierRecord.tier, TruancyTierRecord.first_day)
                           .where(TruancyTierRecord.pupil_id == pupil_id).order_by(TruancyTierRecord.occurrence)).all()


def test_tiers_one_to_four_from_marks_day_by_day_and_a_rerun_adds_nothing(session):
    school, pupils = small_county(session)
    ctx = CaseContext(session)
    a, b = pupils[0], pupils[1]
    # After the first episode: tier 1, a same-day duty for the head teacher.
    run_plan(session, school, pupils, until=date(2026, 11, 17))
    out = apply_tiers(session, ctx, datetime(2026, 11, 17, 9, 30))
    assert out["new"] == 1 and out["by_tier"] == {"tier_1": 1}
    duty = session.scalar(select(PreventionDuty).where(PreventionDuty.pupil_id == a.id))
    head = session.scalar(select(SchoolClass.head_teacher_id).where(SchoolClass.id == a.class_id))
    assert (duty.action, duty.role, duty.owner_id, duty.due_at) == ("oral_warning", "head_teacher", head,
                                                                     datetime(2026, 11, 17, 17, 0))
    # The whole month, in one run: occurrences 2..5 (5 repeats tier 4) for a, tier 1 for b.
    run_plan(session, school, pupils)
    out = apply_tiers(session, ctx, datetime(2026, 12, 1, 9, 30))
    assert out["new"] == 5 and out["by_tier"] == {"tier_1": 1, "tier_2": 1, "tier_3": 1, "tier_4": 2}
    assert tiers_of(session, a.id) == [(1, 1, date(2026, 11, 16)), (2, 2, date(2026, 11, 20)), (3, 3, date(2026, 11, 25)),
                                       (4, 4, date(2026, 11, 27)), (5, 4, date(2026, 12, 1))]
    assert tiers_of(session, b.id) == [(1, 1, date(2026, 11, 19))]
    roles = dict(session.execute(select(PreventionDuty.action, PreventionDuty.role).where(PreventionDuty.pupil_id == a.id)).all())
    assert roles == {"oral_warning": "head_teacher", "written_warning": "head_teacher",
                     "grade_director_talk": "grade_director", "leadership_home_visit": "principal"}
    principal = session.scalar(select(Staff.id).where(Staff.school_id == school.id, Staff.role == "principal"))
    assert principal in set(session.scalars(select(PreventionDuty.owner_id).where(PreventionDuty.action == "leadership_home_visit")))
    # Idempotent: again at the same instant and a day later, nothing new.
    assert apply_tiers(session, ctx, datetime(2026, 12, 1, 9, 30))["new"] == 0
    assert apply_tiers(session, ctx, datetime(2026, 12, 2, 9, 30))["new"] == 0
    assert session.scalar(select(func.count()).select_from(PreventionDuty)) == 6
    # The trail: one event per tier row, saying which truancy it was.
    reasons = session.scalars(select(PreventionEvent.reason).where(PreventionEvent.pupil_id == a.id,
                                                                   PreventionEvent.event == "tier_reached")).all()
    assert len(reasons) == 5 and reasons[1].startswith("本学年第2次旷课（2026-11-20起）")
    listed = pupil_tiers(session, school_year=2026)
    assert [(r["pupil_id"], r["truancies"], r["tier"]) for r in listed] == [(a.id, 5, 4), (b.id, 1, 1)]
    assert [h["tier"] for h in history(session, a.id, 2026)] == [1, 2, 3, 4, 4]


def test_overdue_and_done(session):
    school, pupils = small_county(session)
    ctx = CaseContext(session)
    absent(session, school, pupils[:1], date(2026, 11, 16))
    apply_tiers(session, ctx, datetime(2026, 11, 16, 9, 30))
    assert mark_overdue(session, datetime(2026, 11, 16, 16, 59)) == 0
    assert mark_overdue(session, datetime(2026, 11, 16, 17, 0)) == 1
    duty = session.scalar(select(PreventionDuty))
    assert duty.status == "overdue"
    complete_duty(session, duty.id, actor="user:1", note="已口头警告，电话通知家长", now=datetime(2026, 11, 17, 8, 0))
    assert duty.status == "done" and duty.done_by == "user:1"
    ev = session.scalar(select(PreventionEvent).where(PreventionEvent.event == "complete"))
    assert ev.payload["late"] is True


def test_other_thresholds_give_other_tiers(session, tmp_path):
    """A policy whose tier 2 needs three truancies and whose tier 3 needs five, counting every day."""
    from store.policy_files import SHIPPED_POLICIES
    text = (SHIPPED_POLICIES / "default.toml").read_text(encoding="utf-8")
    head, _, _ = text.partition("[truancy]")
    custom = head + """[truancy]
count = "day"
repeat_last_tier = false
tiers = [
  { tier = 1, min_count = 1, action = "oral_warning", role = "head_teacher", label = "一" },
  { tier = 2, min_count = 3, action = "written_warning", role = "head_teacher", label = "二" },
  { tier = 3, min_count = 5, action = "grade_director_talk", role = "grade_director", label = "三" },
]
"""
    (tmp_path / "default.toml").write_text(custom, encoding="utf-8")
    school, pupils = small_county(session, policy_dir=tmp_path)
    run_plan(session, school, pupils)
    apply_tiers(session, CaseContext(session), datetime(2026, 12, 1, 9, 30))
    # Seven unexcused days for a, each one counts: occurrences 1, 3, 5 only, tiers 1..3, no repeat.
    assert tiers_of(session, pupils[0].id) == [(1, 1, date(2026, 11, 16)), (3, 2, date(2026, 11, 20)),
                                               (5, 3, date(2026, 11, 25))]


def test_an_excused_day_and_last_school_year_do_not_count(session):
    school, pupils = small_county(session)
    ctx = CaseContext(session)
    a = pupils[0]
    absent(session, school, [a], date(2026, 6, 15))  # school year 2025
    record_morning_check(session, ctx, school_code=school.code, day=date(2026, 11, 16),
                         marks=[MarkIn(a.student_no, "病假")], source="cli", submitted_by="test", now=MONDAY)
    assert apply_tiers(session, ctx, datetime(2026, 11, 16, 9, 30))["new"] == 0
    absent(session, school, [a], date(2026, 11, 17))
    apply_tiers(session, ctx, datetime(2026, 11, 17, 9, 30))
    assert tiers_of(session, a.id) == [(1, 1, date(2026, 11, 17))]


def test_truancy_run_and_list_through_the_cli(blank_db_url):
    import json

    from tests.cli.test_cli import baoxue, pupil_numbers
    db = blank_db_url
    baoxue(db, "init", "--at", "2026-09-01T07:00")
    baoxue(db, "generate", "--seed", "3", "--townships", "1", "--schools", "1", "--pupils-per-class", "2")
    no = pupil_numbers(db)[0]
    for day in ("2026-11-16", "2026-11-18"):  # Tuesday in between is a school day: two truancies
        baoxue(db, "absent", no, "--date", day, "--at", f"{day}T08:10")
    first = json.loads(baoxue(db, "truancy", "run", "--as-of", "2026-11-18T09:30", "--json"))
    assert (first["new"], first["tier_1"], first["tier_2"]) == (2, 1, 1)
    assert json.loads(baoxue(db, "truancy", "run", "--as-of", "2026-11-18T09:30", "--json"))["new"] == 0
    listed = json.loads(baoxue(db, "truancy", "list", "--year", "2026", "--json"))
    assert [(r["student_no"], r["truancies"], r["tier"]) for r in listed] == [(no, 2, 2)]


def test_the_daily_advance_flow_applies_tiers_and_gate_alerts_once(fresh_db, prefect_harness):
    from deploy.deployments import no_heartbeat
    from flows.advance_cases import advance_cases
    from store.db import transaction
    from store.prevention.gate import record_exit, set_boarder
    from tasks.runtime import using
    from tests.engine_helpers import setup_store
    with transaction(fresh_db) as s:
        code, nos = setup_store(s, pupils_per_class=3, grades=(3,))
        school = s.scalar(select(School).where(School.code == code))
        pupils = s.scalars(select(Pupil).order_by(Pupil.id)).all()
        absent(s, school, pupils[:2], date(2026, 11, 16))
        set_boarder(s, pupils[2], actor="t", now=MONDAY)
        record_exit(s, CaseContext(s), pupils[2].student_no, at=datetime(2026, 11, 16, 12, 0),
                    due_back_at=datetime(2026, 11, 16, 13, 0), approved_by="班主任", fetched_by="家长", actor="t",
                    now=datetime(2026, 11, 16, 12, 0))
    with using(fresh_db), no_heartbeat():
        first = advance_cases(as_of=datetime(2026, 11, 16, 14, 0), render=False)
        second = advance_cases(as_of=datetime(2026, 11, 16, 14, 0), render=False)
    assert first["prevention"]["truancy_tiers"] == {"new": 2, "tier_1": 2}
    assert first["prevention"]["gate_alerts"] == {"unapproved_exit": 0, "late_return": 1}
    assert second["prevention"]["truancy_tiers"] == {"new": 0}
    assert second["prevention"]["gate_alerts"] == {"unapproved_exit": 0, "late_return": 0}
    with transaction(fresh_db) as s:
        assert s.scalar(select(func.count()).select_from(PreventionDuty)) == 3


def test_the_second_truancy_gets_a_written_warning_once(session, tmp_path, monkeypatch):
    """Seed 001 第六条 2.: 第二次旷课，由班主任书面警告 — archived as a PDF on the truancy's case."""
    import re

    from documents.truancy_warning import issue_warnings, pending
    from store.models.documents import Document, DocumentFile
    from tests.documents.test_documents import pdf_text
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path))
    school, pupils = small_county(session)
    ctx = CaseContext(session)
    run_plan(session, school, pupils, until=date(2026, 11, 23))
    apply_tiers(session, ctx, datetime(2026, 11, 23, 9, 30))
    ids = pending(session)
    assert len(ids) == 1  # only pupil a's second truancy asks for the warning
    # rendered days after the tier was reached (a queue that ran late): dated when the tier was reached
    [doc_id] = issue_warnings(session, ids, actor="system", now=datetime(2026, 11, 26, 15, 0))
    assert pending(session) == [] and issue_warnings(session, ids, actor="system", now=datetime(2026, 11, 30, 10, 0)) == [doc_id]
    doc = session.get(Document, doc_id)
    assert doc.kind == "truancy_written_warning" and doc.case_id is not None
    assert doc.data["doc"]["issued_on"] == "2026-11-23" and doc.data["pupil"]["age"] is not None
    f = session.scalar(select(DocumentFile).where(DocumentFile.document_id == doc_id))
    text = re.sub(r"\s+", "", pdf_text((tmp_path / f.path).read_bytes()))
    assert "学生旷课书面警告" in text and pupils[0].name in text and "本学年已2次旷课" in text
    assert "第1次：2026年11月16日" in text and "第2次：2026年11月20日" in text
