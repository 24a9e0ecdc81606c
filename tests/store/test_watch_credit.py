"""A watch-list duty is done by what was already done (issue 18 item 2): two rules of the policy ask the same act
(家校联系 for a 留守儿童 and again when absences rise); the act recorded for one does the other's duty, when the
refresh raises it later that day and when it would fall overdue — pointing at the act's event (both DBs)."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from store.duties import ledger
from store.models.risk import WatchDuty, WatchEvent
from store.prevention import risk
from store.reporting import work_queues as wq
from store.access.scope import Scope
from tests.store.test_risk import FRIDAY, _absences, _county, _entry

MORNING = datetime.combine(FRIDAY, datetime.min.time().replace(hour=9, minute=30))


def _duty(session, entry, rule, action) -> WatchDuty:
    return session.scalar(select(WatchDuty).where(WatchDuty.entry_id == entry.id, WatchDuty.rule_id == rule,
                                                  WatchDuty.action == action))


def _act_event(session, duty) -> WatchEvent:
    return session.scalar(select(WatchEvent).where(WatchEvent.entry_id == duty.entry_id, WatchEvent.event == "duty_done")
                          .order_by(WatchEvent.id.desc()))


def test_a_duty_raised_for_an_act_already_recorded_that_day_is_created_done_pointing_at_it(session):
    _, pupils = _county(session)
    pupil, later = pupils[0], pupils[1]
    pupil.special_groups = later.special_groups = ["left_behind"]
    session.flush()
    risk.refresh_watch_list(session, as_of=MORNING)
    e, e2 = _entry(session, pupil), _entry(session, later)
    call = datetime.combine(FRIDAY, datetime.min.time().replace(hour=13, minute=45))
    for entry in (e, e2):  # the helper calls home at 13:45 for the 留守 rule
        risk.complete_duty(session, _duty(session, entry, "left_behind", "home_contact").id, actor="t", at=call)
    _absences(session, pupil, [0, 1, 1, 2])  # by evening the absences are rising: the rule asks for a call too
    risk.refresh_watch_list(session, as_of=call + timedelta(hours=4))
    raised = _duty(session, e, "absences_rising", "home_contact")
    act = _act_event(session, _duty(session, e, "left_behind", "home_contact"))
    assert (raised.status, raised.done_at, raised.done_event_id) == ("done", call, act.id)
    assert _duty(session, e, "absences_rising", "psychological_support").status == "open"  # not done by anyone
    timeline = wq.watch_entry(session, Scope(), e.id, call + timedelta(hours=5))["events"]
    assert [x["event"] for x in timeline] == ["added", "duty_done", "rules_changed"]  # by the time of the act
    assert [x["at"] for x in timeline] == sorted(x["at"] for x in timeline)
    # a call of an earlier day does not answer a rule met today
    _absences(session, later, [0, 1, 1, 2], end=FRIDAY + timedelta(days=3))
    risk.refresh_watch_list(session, as_of=MORNING + timedelta(days=3))
    fresh = _duty(session, e2, "absences_rising", "home_contact")
    assert (fresh.status, fresh.done_event_id) == ("open", None)


def test_a_duty_whose_act_was_recorded_after_it_was_raised_is_done_not_overdue(session):
    _, pupils = _county(session)
    pupil, other = pupils[0], pupils[1]
    for p in (pupil, other):
        p.special_groups = ["left_behind"]
        _absences(session, p, [0, 1, 1, 2])
    risk.refresh_watch_list(session, as_of=MORNING)  # both rules at once: two calls asked, due in 2 and 14 days
    e, e2 = _entry(session, pupil), _entry(session, other)
    call = MORNING + timedelta(hours=2)
    risk.complete_duty(session, _duty(session, e, "left_behind", "home_contact").id, actor="t", at=call)
    session.flush()
    marked = ledger.mark_overdue(session, MORNING + timedelta(days=3), kinds=("watch",))
    soon = _duty(session, e, "absences_rising", "home_contact")
    act = _act_event(session, _duty(session, e, "left_behind", "home_contact"))
    assert (soon.status, soon.done_at, soon.done_event_id) == ("done", call, act.id)
    assert _duty(session, e2, "absences_rising", "home_contact").status == "overdue"  # nobody called
    assert marked["watch"] == 1  # the other pupil's call (心理关爱 falls due in 7 days); not the credited one
