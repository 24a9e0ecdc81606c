"""The case page's dates (machines.next_steps): steps and deadlines on the school calendar (weekends,
holidays and 调休 working days), and when the first duty appears."""
from __future__ import annotations

import tomllib
from datetime import date, datetime
from pathlib import Path

from machines.next_steps import first_duty_notice, step_dates
from machines.policy import Policy
from store.calendars import calendars

POLICY = Policy.model_validate(tomllib.loads((Path(__file__).parents[2] / "deploy/policies/default.toml").read_text()))
CAL = calendars()["default"]


def _dates(opened: date, created: datetime, state: str = "absent", reached=None):
    return {s.state: s for s in step_dates(POLICY, CAL, opened_on=opened, created_at=created, state=state,
                                           reached=reached)}


def test_steps_skip_the_weekend_and_the_national_day_holiday_and_count_the_tiaoxiu_saturday():
    s = _dates(date(2026, 11, 19), datetime(2026, 11, 19, 8, 10))  # a Thursday
    assert s["visited"].reached_at == datetime(2026, 11, 20, 9, 0)
    assert s["collective_visit"].reached_at == datetime(2026, 11, 23, 9, 0)  # Monday, after the weekend
    # 集体家访 and 三帮一 (控辍方案) are both the third day's work: due that day at 18:00 (deploy/policies/default.toml)
    assert [(d.action, d.due_at) for d in s["collective_visit"].duties] == [
        ("record_collective_visit", datetime(2026, 11, 23, 18)), ("assign_helpers", datetime(2026, 11, 23, 18))]
    # round the National Day week: the holidays are skipped, a 调休 Saturday counts when the calendar says so
    week = _dates(date(2026, 9, 29), datetime(2026, 9, 29, 8, 0))
    expected = CAL.add_school_days(date(2026, 9, 29), 2)
    assert week["collective_visit"].reached_at.date() == expected and expected >= date(2026, 10, 8)
    assert all(CAL.is_school_day(x.reached_at.date()) for x in week.values())


def test_a_reached_step_keeps_its_time_and_the_first_duty_notice():
    s = _dates(date(2026, 11, 16), datetime(2026, 11, 16, 8, 0), state="family_contacted",
               reached={"family_contacted": datetime(2026, 11, 16, 9, 0)})
    assert s["family_contacted"].reached and not s["visited"].reached
    steps = step_dates(POLICY, CAL, opened_on=date(2026, 11, 16), created_at=datetime(2026, 11, 16, 8), state="absent")
    assert first_duty_notice(steps, datetime(2026, 11, 16, 8, 30)) == "今日 09:00 晨检结束后生成（如学生仍未到校）"
    assert first_duty_notice(steps, datetime(2026, 11, 16, 13, 44)).startswith("晨检已于 今日 09:00 结束，将在下一次定时巡检时生成")
    # a case opened by a check sent after 09:00 reaches day 1 when it was created
    late = step_dates(POLICY, CAL, opened_on=date(2026, 11, 16), created_at=datetime(2026, 11, 16, 10, 30), state="absent")
    assert late[0].reached_at == datetime(2026, 11, 16, 10, 30)


def test_the_legal_step_shown_waits_for_the_return_notice_of_a_late_township_entry():
    """The date the case page announces for the judicial step follows the sweep's rule (Policy.waits_for):
    a township step entered late (wutaishan: after two persuasions) moves the legal notice with it."""
    wutaishan = Policy.model_validate(tomllib.loads(
        (Path(__file__).parents[2] / "deploy/policies/wutaishan.toml").read_text()))
    opened = date(2026, 11, 2)  # day 6 = 11-09, day 11 = 11-16
    on_time = {s.state: s for s in step_dates(wutaishan, CAL, opened_on=opened, created_at=datetime(2026, 11, 2, 8),
                                              state="collective_visit")}
    assert on_time["judicial_notice"].reached_at == datetime(2026, 11, 16, 9, 0)
    late = {s.state: s for s in step_dates(wutaishan, CAL, opened_on=opened, created_at=datetime(2026, 11, 2, 8),
                                           state="township_notice",
                                           reached={"township_notice": datetime(2026, 11, 12, 10, 15)})}
    assert late["judicial_notice"].reached_at == datetime(2026, 11, 19, 9, 0)  # 11-12 + 5 school days
    assert late["judicial_notice"].duties[0].due_at.date() == CAL.add_school_days(date(2026, 11, 19), 3)
