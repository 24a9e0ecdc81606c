"""A stored case that climbed a policy's ladder through the real case engine, for document tests.

Everything goes through the store's own services (morning check, per-case advance, staff actions),
so the facts, events and document requests are exactly what production writes.
"""
from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.states import Action
from store.calendars import calendars, materialise
from store.cases.actions import act
from store.cases.per_case import advance_per_case
from store.cases.context import CaseContext
from store.cases.intake import MarkIn, record_morning_check
from store.models import Case, Pupil, School
from store.policy_files import load_policies_into
from demo.synthetic import Size, generate_county

T0 = datetime(2026, 9, 1, 7, 0)
FIRST_DAY = date(2026, 11, 16)  # a Monday in term


def setup_county(session: Session, *, policy: str = "default", seed: int = 11) -> str:
    """Policies, calendars and one small school; returns the school code."""
    load_policies_into(session, now=T0)
    for cal in calendars().values():
        materialise(session, cal)
    generate_county(session, seed=seed, size=Size(townships=1, schools_per_township=1, pupils_per_class=3, grades=(5,)),
                    policy_name=policy, code_prefix=f"D{seed}")
    session.flush()
    return session.scalar(select(School.code).where(School.code.like(f"D{seed}%")).order_by(School.id))


def payload_for(action: Action, photos: list[int] | None = None) -> dict:
    if action is Action.record_phone_call:
        return {"result": "家长称孩子不愿上学，在家玩手机", "legit_reason": False, "signs": True}
    if action is Action.record_home_visit:
        return {"situation": "父母外出务工，祖母照看", "measures": "宣讲义务教育法，约定次日返校",
                "result": "家长同意配合，学生仍未返校", "conduct": "遵守纪律", "study": "数学跟不上"}
    if action is Action.record_collective_visit:
        return {"situation": "家庭困难", "measures": "落实三帮一，申请生活补助", "result": "学生仍未返校",
                "photos": [{"attachment_id": i, "caption": f"集体家访照片{n}"} for n, i in enumerate(photos or [], 1)]}
    if action is Action.assign_helpers:
        return {"helpers": [{"name": "帮扶甲", "role": "班主任"}, {"name": "帮扶乙", "role": "科任教师"},
                            {"name": "帮扶丙", "role": "村委会"}]}  # 三帮一: role labels are accepted as the role ids
    if action is Action.record_class_record:
        return {"conduct": "上课注意力不集中，与同学相处融洽", "study": "语文中等，数学跟不上"}
    if action is Action.serve_parent_notice:
        return {"recipient": "学生父亲", "opinion": "同意督促孩子返校"}
    if action is Action.report_parent_notice:
        return {"received_by": "基教股经办人", "method": "当面报送"}
    return {"method": "直接送达"}


def climb(session: Session, *, policy: str = "default", seed: int = 11, returned: bool = False,
          photos: list[Path] | None = None) -> int:
    """Open a case on FIRST_DAY and take it up every step of ``policy``, doing each step's duties."""
    school_code = setup_county(session, policy=policy, seed=seed)
    ctx = CaseContext(session)
    pupil = session.scalar(select(Pupil).join(School).where(School.code == school_code).order_by(Pupil.id))
    record_morning_check(session, ctx, school_code=school_code, day=FIRST_DAY,
                         marks=[MarkIn(pupil.student_no, "unexcused", reason="study")], source="test",
                         submitted_by="班主任", now=datetime.combine(FIRST_DAY, time(8, 0)), complete=False)
    case = session.scalar(select(Case).where(Case.pupil_id == pupil.id))
    pol = ctx.policy(case.policy_name, case.policy_version)
    cal = ctx.calendar(case.calendar_key)
    for step in pol.steps:
        day = cal.add_school_days(FIRST_DAY, step.day - 1)
        advance_per_case(session, ctx, datetime.combine(day, time(9, 30)))
        for duty in step.duties:
            at = datetime.combine(day, time(15, 0))
            ids = attach(session, case.id, photos, at) if duty.action is Action.record_collective_visit else None
            act(session, ctx, case.id, duty.action.value, actor="staff:test", at=at, now=at,
                payload=payload_for(duty.action, ids))
    if returned:
        day = cal.add_school_days(FIRST_DAY, pol.steps[-1].day + 1)
        at = datetime.combine(day, time(8, 0))
        act(session, ctx, case.id, "mark_returned", actor="班主任", at=at, now=at, payload={"measures": "家长送孩子返校"})
    session.flush()
    return case.id


def attach(session: Session, case_id: int, photos: list[Path] | None, at: datetime) -> list[int]:
    """Upload ``photos`` as attachments of the case, as the web app does (into the archive of
    BAOXUE_ARCHIVE_DIR); their ids are what a payload names."""
    from documents.archive import archive_root
    from store.cases.attachments import save

    return [save(session, case_id, p.read_bytes(), p.name, actor="staff:test", now=at, archive_dir=archive_root(),
                 max_bytes=8 * 1024 * 1024, images_only=True).id for p in photos or []]
