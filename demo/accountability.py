"""The demo county's accountability (issue 17 items 4 and 7).

- :func:`setup` (once the county is generated): every pupil's 包保 chain filled from the staff who hold
  the policy's chain roles (班主任, 校长, 镇政府, 村委会); in one class of the first school the 包保班主任 is
  the grade director instead (the class's head-teacher duties go to them); the school year's 责任书 are issued
  to the head teachers, three of the first school rendered (PDF), about two in three recorded as signed —
  the others owe a signature past its due day (30 September): overdue ``pledge`` duties;
- :func:`talk_round` (the staff rounds): on the sixth school day the county holds a 约谈 with the principal of
  the school with most overdue duties (three rectification items, a week's deadline; the outcome is recorded
  on the eleventh day: not rectified), and the township holds one with the head teacher owing most, whose
  follow-up is never recorded — an overdue ``talk`` duty when the clock stops;
- :func:`summary`: the evidence for the whole window counted by kind of duty, the talks, chains and 责任书.
"""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

SIGNED_SHARE = (2, 3)  # two in three head teachers have signed
RENDERED = 3  # 责任书 rendered as PDF in the demo (the first school's first three; `baoxue accountability pledge issue` renders all)


def setup(session: Session, now: datetime, out: Path | None = None) -> dict:
    from store.accountability import chain, pledges
    from store.models import Pupil, School, SchoolClass, Staff

    added = chain.fill_defaults(session, school_ids=None, actor="demo", now=now)
    first = session.scalar(select(School).order_by(School.code))
    klass = session.scalar(select(SchoolClass).where(SchoolClass.school_id == first.id).order_by(SchoolClass.grade.desc()))
    director = session.scalar(select(Staff).where(Staff.school_id == first.id, Staff.role == "grade_director"))
    moved = 0
    if klass is not None and director is not None:
        for pupil in session.scalars(select(Pupil).where(Pupil.class_id == klass.id)):
            chain.set_member(session, pupil=pupil, role="head_teacher", person_name=director.name, staff_id=director.id,
                             source="page", actor="demo", now=now)
            moved += 1
    year = pledges.school_year(now.date())
    issued = pledges.issue_year(session, year=year, now=now)
    for i, pid in enumerate(issued):
        if i % SIGNED_SHARE[1] < SIGNED_SHARE[0]:
            pledges.record_signed(session, pid, actor="demo:学校办公室", at=now)
    rendered = 0
    if out is not None:
        from documents.pledges import render_year

        rendered = render_year(session, year, actor="demo", now=now, school_ids=[first.id], limit=RENDERED)
    return {"chain_members": added, "moved_to_director": moved, "pledges": len(issued), "rendered": rendered}


def talk_round(factory, now: datetime, day_no: int) -> Counter:
    """The 约谈 of the demo: recorded on day 6, the county's outcome on day 11 (afternoon rounds only)."""
    from store.accountability import talks as tk
    from store.db import transaction
    from store.models import School, Staff
    from store.duties.ledger import overdue

    done: Counter = Counter()
    if now.time() < time(12, 0) or day_no not in (6, 11):
        return done
    with transaction(factory) as s:
        if day_no == 6:
            late = overdue(s, now)
            by_school = Counter(r["school_id"] for r in late if r["school_id"])
            by_owner = Counter(r["owner_id"] for r in late if r["owner_id"] and r["role"] == "head_teacher")
            if not by_school:
                return done
            school = s.get(School, by_school.most_common(1)[0][0])
            principal = s.scalar(select(Staff).where(Staff.school_id == school.id, Staff.role == "principal"))
            county = s.scalar(select(Staff).where(Staff.role == "education_bureau"))
            keys = [r["key"] for r in late if r["school_id"] == school.id][:20]
            form = tk.TalkForm(interviewee=principal.name, interviewee_staff_id=principal.id, school_code=school.code,
                               held_at=now, subject=f"{school.name}控辍保学职责逾期 {by_school[school.id]} 项",
                               evidence=keys, items=["三日内完成全部逾期家访并录入", "落实三帮一帮扶责任人",
                                                     "校长每周一检查班级周统计"],
                               deadline=now.date() + timedelta(days=7), key=f"demo-talk-county-{now:%Y%m%d}")
            tk.record_talk(s, form, level="county", interviewer=county.name, interviewer_id=county.id, actor="demo:县教育局",
                           now=now)
            done["talk_county"] += 1
            if by_owner:
                teacher = s.get(Staff, by_owner.most_common(1)[0][0])
                t_school = s.get(School, teacher.school_id)
                official = s.scalar(select(Staff).where(Staff.role == "township",
                                                        Staff.jurisdiction_id == t_school.township_id))
                form = tk.TalkForm(interviewee=teacher.name, interviewee_staff_id=teacher.id, school_code=t_school.code,
                                   held_at=now, subject=f"班主任 {by_owner[teacher.id]} 项电话联系、家访逾期",
                                   items=["当日联系缺勤学生家长并报告教务处", "补录逾期的电话联系记录"],
                                   deadline=now.date() + timedelta(days=3), key=f"demo-talk-township-{now:%Y%m%d}")
                tk.record_talk(s, form, level="township", interviewer=official.name if official else "镇政府",
                               interviewer_id=official.id if official else None, actor="demo:镇政府", now=now)
                done["talk_township"] += 1
        else:
            from store.models.accountability import Interview

            talk = s.scalar(select(Interview).where(Interview.level == "county", Interview.status == "open"))
            if talk is not None:
                tk.record_outcome(s, talk.id, rectified=False, outcome="复查：家访已补录，仍有两名学生未落实帮扶责任人，继续督办",
                                  actor="demo:县教育局", now=now)
                done["talk_outcome"] += 1
    return done


def summary(factory, start: date, stop_at: datetime) -> dict:
    from store.access.scope import EVERYTHING
    from store.db import transaction
    from store.models.accountability import CareChainMember, Interview, Pledge
    from store.reporting.accountability import evidence

    with transaction(factory) as s:
        ev = evidence(s, EVERYTHING, start, stop_at.date(), stop_at, masked=True)
        return {
            "evidence_by_kind": {k["kind"]: k["count"] for k in ev["kinds"]},
            "evidence_rows": len(ev["rows"]), "reconciliation_differences": len(ev["reconciliation"]),
            "talks": dict(s.execute(select(Interview.status, func.count()).group_by(Interview.status)).all()),
            "chain_members": s.scalar(select(func.count()).select_from(CareChainMember)) or 0,
            "pledges": s.scalar(select(func.count()).select_from(Pledge)) or 0,
            "pledges_signed": s.scalar(select(func.count()).select_from(Pledge).where(Pledge.signed_at.is_not(None))) or 0,
            "pledges_rendered": sum(1 for f in s.scalars(select(Pledge.files)) if f and "pdf" in f),
        }
