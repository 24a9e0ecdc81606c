"""At-risk pupils: transparent policy rules put pupils on the watch list, with the numbers (both DBs)."""
from __future__ import annotations

import re

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from machines.risk import FlagCondition, PupilInputs, RiskPolicy, RiskRule, RisingAbsences, evaluate, rising
from store.prevention import risk
from store.models import AttendanceMark, Case, Pupil, PolicyVersion, SchoolClass
from store.policy_files import policy_dir
from store.models.risk import PupilFlag, WatchDuty, WatchEntry, WatchEvent
from tests.engine_helpers import morning, setup_store, sweep

FRIDAY = date(2026, 11, 27)


def _county(session, **kw):
    code, nos = setup_store(session, pupils_per_class=6, grades=(3, 7), **kw)
    for p in session.scalars(select(Pupil)):
        p.special_groups = []
    session.flush()
    return code, [session.scalar(select(Pupil).where(Pupil.student_no == n)) for n in nos]


def _absences(session, pupil, per_week: list[int], end: date = FRIDAY):
    """``per_week`` unexcused absences in each of the weeks ending on ``end`` (oldest first)."""
    weeks = len(per_week)
    for w, n in enumerate(per_week):
        week_end = end - timedelta(days=7 * (weeks - 1 - w))
        for k in range(n):
            session.add(AttendanceMark(pupil_id=pupil.id, school_id=pupil.school_id, day=week_end - timedelta(days=k),
                                       status="unexcused", recorded_at=datetime.combine(week_end, datetime.min.time())))
    session.flush()


def _entry(session, pupil):
    return session.scalar(select(WatchEntry).where(WatchEntry.pupil_id == pupil.id).order_by(WatchEntry.id.desc()))


def _load_policy(session, risk_toml: str, version: int = 90):
    lines, skipping = [], False
    for line in (policy_dir() / "default.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("["):  # the shipped [risk] tables give way to the test's
            skipping = line.startswith(("[risk]", "[[risk."))
        if not skipping:
            lines.append(line)
    body = re.sub(r"^version = \d+$", f"version = {version}", "\n".join(lines), count=1, flags=re.M) + "\n" + risk_toml
    session.add(PolicyVersion(name="default", version=version, body=body, sha256="x" * 64, loaded_at=datetime(2026, 11, 1)))
    session.flush()


# -- the pure evaluator --------------------------------------------------------------------------------
def test_rising_means_never_falling_ending_higher_and_reaching_the_minimum():
    assert rising((0, 1, 1, 2), 2) and rising((1, 2, 3, 4), 2)
    assert not rising((2, 1, 1, 2), 2)      # fell in week two
    assert not rising((0, 0, 1, 1), 2)      # last week below the minimum
    assert not rising((2, 2, 2, 2), 2)      # flat is not rising
    assert rising((0, 0, 0, 3), 2) and not rising((0, 0, 0, 3), 2, min_weeks=2)   # one bad week is not a trend


def test_each_default_rule_fires_with_its_numbers_and_not_without_them():
    policy = RiskPolicy()
    day = date(2026, 11, 27)
    x = PupilInputs(1, day, flags=frozenset({"left_behind", "learning_difficulty"}), weekly_absences=(0, 1, 1, 3),
                    relapse_opened=(date(2026, 11, 20),))
    fired = {f.rule_id: f for f in evaluate(policy, x)}
    assert set(fired) == {"learning_difficulty", "left_behind", "absences_rising", "relapse"}
    assert "留守儿童" in fired["left_behind"].why and "学困生" in fired["learning_difficulty"].why
    assert "0→1→1→3" in fired["absences_rising"].why and fired["absences_rising"].numbers["weekly_absences"] == [0, 1, 1, 3]
    assert "2026-11-20" in fired["relapse"].why
    quiet = PupilInputs(2, day, weekly_absences=(3, 1, 1, 3), relapse_opened=(date(2026, 8, 1),))
    assert evaluate(policy, quiet) == []    # falling week, relapse older than 60 days, no flags


def test_rules_are_policy_data_validated_by_the_model():
    policy = RiskPolicy(rules=[RiskRule(id="two_weeks", label="两周上升", when=RisingAbsences(weeks=2, min_last=1, min_weeks=1))])
    assert [f.rule_id for f in evaluate(policy, PupilInputs(1, FRIDAY, weekly_absences=(0, 0, 0, 1)))] == ["two_weeks"]
    with pytest.raises(ValueError, match="unique"):
        RiskPolicy(rules=[RiskRule(id="a", label="x", when=FlagCondition(flags=["poor"]))] * 2)


# -- the store: flags, refresh, explanations -------------------------------------------------------------------
def test_roster_flags_and_rising_absences_put_pupils_on_watch_with_helper_and_duties(session):
    _, pupils = _county(session)
    flagged, rising_p, falling_p, quiet = pupils[:4]
    flagged.special_groups = ["left_behind", "poor"]
    _absences(session, rising_p, [0, 1, 1, 2])
    _absences(session, falling_p, [2, 1, 1, 2])
    out = risk.refresh_watch_list(session, as_of=datetime.combine(FRIDAY, datetime.min.time().replace(hour=9, minute=30)))
    assert out["added"] == 2 and out["on_watch"] == 2
    assert {(f.pupil_id, f.flag, f.source) for f in session.scalars(select(PupilFlag))} == {
        (flagged.id, "left_behind", "roster"), (flagged.id, "poor", "roster")}
    e = _entry(session, flagged)
    assert [r["rule"] for r in e.rules] == ["poor", "left_behind"] and e.since == FRIDAY and e.until is None
    head_teacher = session.scalar(select(SchoolClass.head_teacher_id).where(SchoolClass.id == flagged.class_id))
    assert e.helper_id == head_teacher  # the default policy names the 班主任 as 帮扶责任人
    duties = {(d.rule_id, d.action, d.due_on, d.owner_id) for d in session.scalars(select(WatchDuty).where(WatchDuty.entry_id == e.id))}
    assert duties == {("poor", "subsidy_check", FRIDAY + timedelta(days=14), head_teacher),
                      ("left_behind", "psychological_support", FRIDAY + timedelta(days=14), head_teacher),
                      ("left_behind", "home_contact", FRIDAY + timedelta(days=14), head_teacher)}
    r = _entry(session, rising_p)
    assert [x["rule"] for x in r.rules] == ["absences_rising"] and "0→1→1→2" in r.rules[0]["why"]
    assert _entry(session, falling_p) is None and _entry(session, quiet) is None
    ev = session.scalar(select(WatchEvent).where(WatchEvent.entry_id == r.id))
    assert ev.event == "added" and ev.actor == "system:risk" and "0→1→1→2" in ev.reason
    explained = {x["rule"]: x for x in risk.explain_pupil(session, falling_p, day=FRIDAY)["rules"]}
    assert not explained["absences_rising"]["fired"] and "2→1→1→2" in explained["absences_rising"]["why"]


def test_refresh_is_idempotent(session):
    _, pupils = _county(session)
    pupils[0].special_groups = ["learning_difficulty"]
    _absences(session, pupils[1], [0, 1, 2, 3])
    at = datetime(2026, 11, 27, 9, 30)
    first = risk.refresh_watch_list(session, as_of=at)
    counts = lambda: tuple(session.scalar(select(func.count()).select_from(t)) for t in (WatchEntry, WatchEvent, WatchDuty, PupilFlag))
    before = counts()
    again = risk.refresh_watch_list(session, as_of=at)
    later = risk.refresh_watch_list(session, as_of=at + timedelta(hours=3))
    assert first["added"] == 2 and before == (2, 2, 3, 1)
    assert (again["added"], again["changed"], again["left"], again["duties"]) == (0, 0, 0, 0) == \
           (later["added"], later["changed"], later["left"], later["duties"])
    assert counts() == before


def test_a_relapse_after_return_fires_and_a_watched_dropout_shows_in_the_month(factory, session):
    code, pupils = _county(session)
    p = pupils[0]
    session.commit()
    days = [date(2026, 11, d) for d in (16, 17, 18, 19, 20)]
    for i, d in enumerate(days):       # absent on the 16th, back on the 17th, absent again from the 18th
        morning(factory, code, d, [p.student_no] if i != 1 else [])
        sweep(factory, d)
    out = risk.refresh_watch_list(session, as_of=datetime(2026, 11, 20, 9, 40))
    e = _entry(session, p)
    # four absences but all in the last week (0→0→0→4): a relapse, not yet a rising trend
    assert out["added"] == 1 and [r["rule"] for r in e.rules] == ["relapse"] and "2026-11-18" in e.rules[0]["why"]
    assert {(d.rule_id, d.action, d.due_on) for d in session.scalars(select(WatchDuty).where(WatchDuty.entry_id == e.id))} == {
        ("relapse", "home_contact", date(2026, 11, 21)), ("relapse", "tutoring", date(2026, 11, 27))}
    relapse_case = session.scalar(select(Case).where(Case.pupil_id == p.id, Case.relapse_of.is_not(None)))
    assert relapse_case.state == "collective_visit"  # third school day: counted as a dropout
    # returned: the first case was closed as returned on the 17th; dropped out: the relapse case
    months = risk.watch_outcomes(session, [p.school_id], date(2026, 11, 1), date(2026, 11, 30))
    assert months == {"on_watch": 1, "added": 1, "left": 0, "watched": 1, "dropped_out": 1, "returned": 1,
                      "by_rule": {"relapse": 1}}


def test_the_policy_file_decides_the_rules_and_when_a_pupil_leaves(session):
    _, pupils = _county(session)
    _load_policy(session, '[risk]\nmin_days = 0\n[[risk.rules]]\nid = "rising3"\nlabel = "三周上升"\n'
                          'when = { kind = "absences_rising", weeks = 3, min_last = 1, min_weeks = 1 }\n'
                          'duties = [{ action = "home_contact", role = "academic_office", due_days = 1 }]\n')
    pupils[0].special_groups = ["left_behind"]            # no flag rule in this policy: not watched
    _absences(session, pupils[1], [0, 0, 1])
    at = datetime(2026, 11, 27, 9, 30)
    risk.refresh_watch_list(session, as_of=at)
    assert _entry(session, pupils[0]) is None
    e = _entry(session, pupils[1])
    assert [r["rule"] for r in e.rules] == ["rising3"] and e.policy == "default@90"
    duty = session.scalar(select(WatchDuty).where(WatchDuty.entry_id == e.id))
    assert (duty.action, duty.role, duty.due_on) == ("home_contact", "academic_office", FRIDAY + timedelta(days=1))
    out = risk.refresh_watch_list(session, as_of=at + timedelta(days=28))   # the absences left the window
    assert out["left"] == 1 and e.until == FRIDAY + timedelta(days=28)
    assert session.scalar(select(WatchDuty.status).where(WatchDuty.id == duty.id)) == "cancelled"
    left = session.scalar(select(WatchEvent).where(WatchEvent.entry_id == e.id, WatchEvent.event == "left"))
    assert "三周上升" in left.reason
    dec = risk.watch_outcomes(session, [pupils[1].school_id], date(2026, 12, 1), date(2026, 12, 31))
    assert (dec["on_watch"], dec["added"], dec["left"], dec["watched"]) == (0, 0, 1, 1)
