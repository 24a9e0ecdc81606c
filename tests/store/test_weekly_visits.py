"""周查表 counts the week's collective visits (seed 002: 根据控辍保学工作方案进行有村委会成员参加的集体家访，
并将集体家访计入周查表): pre-filled from the class's case history over the seven days ending on the
count's day, kept in the submission, summed per school and township."""
from __future__ import annotations

from datetime import date, datetime

from store.cases.actions import act
from store.cases.context import CaseContext
from store.db import transaction
from store.models import Case
from store.reporting import people
from tests.engine_helpers import case_of, morning, setup_store, sweep

MON, TUE, WED, THU, FRI = (date(2026, 11, d) for d in (16, 17, 18, 19, 20))
NEXT_WED = date(2026, 11, 25)


def test_the_weekly_count_carries_the_weeks_collective_visits(factory, session):
    school, pupils = setup_store(session, pupils_per_class=3, grades=(3,))
    session.commit()
    absent = pupils[:2]
    for day in (MON, TUE, WED):
        morning(factory, school, day, absent)
        sweep(factory, day)
    with transaction(factory) as s:  # day 3: the collective visit, once for each absent pupil, on two days
        for no, at in zip(absent, (datetime(2026, 11, 18, 15), datetime(2026, 11, 19, 10))):
            case = case_of(s, no)
            assert case.state == "collective_visit"
            act(s, CaseContext(s), case.id, "record_collective_visit", actor="principal", at=at, now=at,
                payload={"participants": ["王校长", "村委会李主任"], "village_member": "李主任"})
    with factory() as s:
        class_id = s.query(Case.class_id).first()[0]
        assert people.weekly_prefill(s, [class_id], FRI)[class_id]["collective_visits"] == 2
        assert people.weekly_prefill(s, [class_id], TUE)[class_id]["collective_visits"] == 0      # before them
        assert people.weekly_prefill(s, [class_id], NEXT_WED)[class_id]["collective_visits"] == 1  # 19th only: 7 days
        assert people.weekly_prefill(s, [class_id], date(2026, 11, 27))[class_id]["collective_visits"] == 0
    with transaction(factory) as s:
        row, created = people.submit_weekly(s, class_id=class_id, day=FRI, counts={}, now=datetime(2026, 11, 20, 16),
                                            actor="head_teacher")
        assert created and row.collective_visits == 2
    with factory() as s:
        sheet = people.weekly_sheet(s, day=FRI)
        assert sheet["fields"]["collective_visits"] == "集体家访"
        assert [r["collective_visits"] for r in sheet["townships"]] == [2]
