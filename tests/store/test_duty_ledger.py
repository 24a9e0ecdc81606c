"""Every kind of duty (case ladder, 失学 census, prevention, watch list) in the administrators' overdue views."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from store.reporting import dashboards

from store.duties import ledger as duty_ledger
from store.models.census import CensusCase, CensusDuty, CensusImport
from store.models import Case, Duty, Pupil, School, Staff
from store.models.notifications import AccountabilityEntry, Notification
from store.duties.notifications import queue_duty_notices
from store.models.prevention import PreventionDuty
from store.access.scope import EVERYTHING, Scope
from store.models.risk import WatchDuty, WatchEntry
from demo.synthetic import Size, generate_county
from tests.web.test_web_pages import pages  # noqa: F401 - the pages fixture (app, accounts of every role)

NOW = datetime(2026, 11, 23, 10, 0)
LATE = NOW - timedelta(days=2)       # due two days ago
SOON = NOW + timedelta(hours=1)      # due within the reminder window
LATER = NOW + timedelta(days=3)      # not yet due, not yet reminded
KINDS = ("case", "census", "prevention", "watch")
IDS = {"late": "110101201501010011", "soon": "110101201501010022", "later": "110101201501010033"}


def _duties(session, school: School, pupils: list[Pupil], owner: Staff, due: datetime, tag: str) -> dict[str, int]:
    """One duty of each kind at ``school`` owned by ``owner``, due at ``due`` (a watch duty: at the end of its day)."""
    pupil = pupils[0]
    case = Case(pupil_id=pupil.id, school_id=school.id, class_id=pupil.class_id, state="family_contacted", policy_name="default",
                policy_version=1, calendar_key="default", opened_on=date(2026, 11, 16), opened_seq=1,
                created_at=NOW - timedelta(days=7), updated_at=NOW - timedelta(days=7))
    session.add(case)
    session.flush()
    duty = Duty(case_id=case.id, step="family_contacted", action="record_phone_call", role="head_teacher", owner_id=owner.id,
                due_at=due, status="open", created_at=NOW - timedelta(days=7))
    imp = CensusImport(filename=f"{tag}.xlsx", content_sha256=tag * 8, census_year=2026, reference_date=date(2026, 9, 1),
                       imported_by="test", imported_at=NOW - timedelta(days=7))
    session.add_all([duty, imp])
    session.flush()
    ccase = CensusCase(id_number=IDS[tag], name="赵小" + tag[0], birth_date=date(2015, 1, 1),
                       township_id=school.township_id, school_id=school.id, state="not_enrolled", policy_name="default",
                       policy_version=1, calendar_key="default", import_id=imp.id, opened_on=date(2026, 11, 16),
                       created_at=NOW - timedelta(days=7), updated_at=NOW - timedelta(days=7))
    session.add(ccase)
    session.flush()
    cduty = CensusDuty(census_case_id=ccase.id, action="school_persuasion", label="学校劝返动员入学", role="principal",
                       owner_id=owner.id, due_at=due, status="open", created_at=NOW - timedelta(days=7))
    pduty = PreventionDuty(pupil_id=pupil.id, school_id=school.id, class_id=pupil.class_id, source="truancy", kind="tier",
                           ref_id=len(tag) * 100 + ord(tag[0]), action="home_contact", label="旷课一级：班主任联系家长",
                           role="head_teacher", owner_id=owner.id, due_at=due, status="open", created_at=NOW - timedelta(days=7))
    entry = WatchEntry(pupil_id=pupils[1].id, school_id=school.id, class_id=pupils[1].class_id, since=date(2026, 11, 1),
                       rules=[], helper_id=owner.id, policy="default@1", updated_at=NOW - timedelta(days=7))
    session.add_all([cduty, pduty, entry])
    session.flush()
    wduty = WatchDuty(entry_id=entry.id, rule_id="left_behind", action="home_contact", role="helper", owner_id=owner.id,
                      due_on=due.date(), status="open", created_at=NOW - timedelta(days=7))
    session.add(wduty)
    session.flush()
    return {"case": duty.id, "census": cduty.id, "prevention": pduty.id, "watch": wduty.id}


@pytest.fixture
def world(session):
    """Two townships with one school each; school A owes one overdue duty of every kind (and one due soon of
    every kind), school B only duties not yet due."""
    generate_county(session, seed=7, size=Size(townships=2, schools_per_township=1, grades=(3,), pupils_per_class=4))
    session.flush()
    a, b = session.scalars(select(School).order_by(School.id)).all()
    out = {"a": a, "b": b}
    for school in (a, b):
        pupils = session.scalars(select(Pupil).where(Pupil.school_id == school.id).order_by(Pupil.id)).all()
        owner = session.scalar(select(Staff).where(Staff.school_id == school.id).order_by(Staff.id))
        out[school.id] = owner
        if school is a:
            out["late"] = _duties(session, school, pupils[:2], owner, LATE, "late")
            out["soon"] = _duties(session, school, pupils[2:4], owner, SOON, "soon")
        else:
            out["later"] = _duties(session, school, pupils[:2], owner, LATER, "later")
    out["owner"] = out[a.id]
    return out


def _kinds(rows) -> list[str]:
    return sorted(r["kind"] for r in rows)


def test_an_overdue_duty_of_every_kind_is_in_the_stuck_list_of_its_school_township_and_county_only(session, world):
    a, b, owner = world["a"], world["b"], world["owner"]
    for scope in (Scope(school_ids=frozenset({a.id})), Scope(township_ids=frozenset({a.township_id})), EVERYTHING):
        rows = dashboards.stuck_cases(session, scope, NOW)
        assert _kinds(rows) == sorted(KINDS), scope
        for r in rows:
            assert r["school"] == a.name
            assert [o["owner"] for o in r["owed"]] == [owner.name]
            assert r["hours_overdue"] >= 24
        by_kind = {r["kind"]: r for r in rows}
        assert by_kind["case"]["case_id"] == by_kind["case"]["ref_id"]
        assert by_kind["census"]["owed"][0]["action_label"] == "学校劝返动员入学"
        assert by_kind["watch"]["owed"][0]["action_label"] == "家校联系"
    for scope in (Scope(school_ids=frozenset({b.id})), Scope(township_ids=frozenset({b.township_id}))):
        assert dashboards.stuck_cases(session, scope, NOW) == []
    # a head teacher's class scope sees the class's pupils' duties, never a census child (who has no class)
    klass = session.scalar(select(Pupil.class_id).where(Pupil.school_id == a.id))
    assert "census" not in _kinds(duty_ledger.overdue(session, NOW, scope=Scope(class_ids=frozenset({klass}))))


def test_a_watch_duty_falls_due_at_the_end_of_its_day(session, world):
    wid = world["late"]["watch"]
    due_on = session.get(WatchDuty, wid).due_on
    end = datetime.combine(due_on, datetime.min.time()) + timedelta(hours=23, minutes=59, seconds=59)
    ids = lambda at: {d["duty_id"] for d in duty_ledger.overdue(session, at, kinds=("watch",))}  # noqa: E731
    assert wid not in ids(end - timedelta(seconds=1))
    assert wid in ids(end)
    assert next(d for d in duty_ledger.overdue(session, NOW, kinds=("watch",)) if d["duty_id"] == wid)["due_at"] == end


def test_a_done_duty_or_a_closed_census_case_is_not_stuck(session, world):
    late = world["late"]
    session.get(WatchDuty, late["watch"]).status = "done"
    session.get(CensusCase, session.get(CensusDuty, late["census"]).census_case_id).state = "enrolled"
    session.flush()
    assert _kinds(duty_ledger.overdue(session, NOW)) == ["case", "prevention"]


def test_the_daily_advance_marks_census_watch_and_prevention_duties_overdue_once(session, world):
    late, soon = world["late"], world["soon"]
    assert duty_ledger.mark_overdue(session, NOW) == {"census": 1, "prevention": 1, "watch": 1, "report_due": 0}
    assert duty_ledger.mark_overdue(session, NOW) == {"census": 0, "prevention": 0, "watch": 0, "report_due": 0}
    session.expire_all()
    for model, kind in ((CensusDuty, "census"), (PreventionDuty, "prevention"), (WatchDuty, "watch")):
        assert session.get(model, late[kind]).status == "overdue"
        assert session.get(model, soon[kind]).status == "open"
    assert session.get(PreventionDuty, late["prevention"]).overdue_at == NOW
    # still listed as stuck, and still to do: recording the persuasion completes an overdue census duty
    assert _kinds(duty_ledger.overdue(session, NOW)) == sorted(KINDS)
    from store.prevention.census import act, case_rows

    cduty = session.get(CensusDuty, late["census"])
    row = next(c for c in case_rows(session, as_of=NOW) if c["id"] == cduty.census_case_id)
    assert [(d["status"], d["overdue"]) for d in row["duties"]] == [("open", True)]
    act(session, cduty.census_case_id, "record_persuasion", actor="test", reason="入户动员", now=NOW,
        action="school_persuasion")
    session.expire_all()
    assert session.get(CensusDuty, late["census"]).status == "done"
    assert "census" not in _kinds(duty_ledger.overdue(session, NOW))


def test_every_kind_is_reminded_once_and_its_owner_is_in_the_accountability_record(session, world):
    late, owner = world["late"], world["owner"]
    first = queue_duty_notices(session, NOW)
    notes = session.scalars(select(Notification).where(Notification.id.in_(first.overdue_notices))).all()
    keys = {n.key: n for n in notes}
    want = {"case": f"duty:{late['case']}", "census": f"census_duty:{late['census']}",
            "prevention": f"prevention_duty:{late['prevention']}", "watch": f"watch_duty:{late['watch']}"}
    assert set(keys) == {k + ":overdue" for k in want.values()}
    for kind, key in want.items():
        n = keys[key + ":overdue"]
        assert n.staff_id == owner.id and n.kind == "duty_overdue" and owner.name not in n.body  # masked
        assert (n.case_id is not None) == (kind == "case")
    assert "学校劝返动员入学" in keys[want["census"] + ":overdue"].body
    # the case and census duties due within the hour get a reminder (a watch duty falls due at the day's end)
    reminded = set(session.scalars(select(Notification.key).where(Notification.id.in_(first.reminders))))
    soon = world["soon"]
    assert {f"duty:{soon['case']}:reminder", f"census_duty:{soon['census']}:reminder",
            f"prevention_duty:{soon['prevention']}:reminder"} == reminded
    entries = {e.key: e for e in session.scalars(select(AccountabilityEntry).where(AccountabilityEntry.id.in_(first.accountability)))}
    assert set(entries) == set(want.values())
    assert {e.staff_id for e in entries.values()} == {owner.id}
    assert entries[want["watch"]].detail["kind"] == "watch" and entries[want["case"]].case_id == late_case(session, late)
    # a re-run (after the overdue marking, too) writes nothing new
    duty_ledger.mark_overdue(session, NOW)
    again = queue_duty_notices(session, NOW + timedelta(minutes=30))
    assert again.as_dict() == {"reminders": 0, "overdue_notices": 0, "accountability": 0}


def late_case(session, late) -> int:
    return session.get(Duty, late["case"]).case_id


def test_the_cli_stuck_list_adds_the_other_kinds_for_a_school(session, world):
    from cli.main import stuck_duties_cli

    assert _kinds(stuck_duties_cli(session, NOW, world["a"].code, 500)) == ["census", "prevention", "watch"]
    assert stuck_duties_cli(session, NOW, world["b"].code, 500) == []
    assert len(stuck_duties_cli(session, NOW, None, 500)) == 3


def test_the_stuck_page_shows_every_kind_to_the_township_and_nothing_to_another(pages):
    from tests.web.test_web_pages import as_
    from tests.web_support import pupils_of_class

    now = pages["clock"]()
    with pages["factory"]() as s:
        pupils = pupils_of_class(s, pages["county"].class_ids[0])
        school = s.get(School, pupils[0].school_id)
        owner = s.scalar(select(Staff).where(Staff.school_id == school.id).order_by(Staff.id))
        _duties(s, school, pupils[:2], owner, now - timedelta(days=2), "late")
        s.commit()
        owner_name = owner.name
    html = as_(pages, "township").get("/stuck?kind=all").text  # every kind in one list; a tab per kind (issue 18)
    for label in ("失学排查", "防辍预警", "重点关注"):
        assert f'{label}（' in html and f">{label}" in html, label
    for text in ("学校劝返动员入学", "家校联系", "旷课一级：班主任联系家长", owner_name):
        assert text in html, text
    assert html.count('<tr class="late">') == 4
    html = as_(pages, "township_other").get("/stuck?kind=all").text
    assert '<tr class="late">' not in html and owner_name not in html and "没有符合条件的逾期事项" in html
