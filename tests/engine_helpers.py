"""Small builders for case-engine tests: a county, a morning check, an advance."""
from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.cases.advance import advance
from store.calendars import materialise
from store.cases.context import CaseContext
from store.db import transaction
from store.cases.intake import MarkIn, record_morning_check
from store.models import Case, CaseEvent, Duty, School
from store.policy_files import load_policies_into
from demo.synthetic import Size, generate_county, pupils_of

T0 = datetime(2026, 9, 1, 7, 0)


def setup_store(session: Session, *, policy: str = "default", pupils_per_class: int = 4, grades=(3, 7), seed: int = 1,
                schools: int = 1) -> tuple[str, list[str]]:
    """Policies, the default calendar, and a county of ``schools`` small schools; returns (school code, student nos)."""
    from store.calendars import calendars
    load_policies_into(session, now=T0)
    for cal in calendars().values():
        materialise(session, cal)
    generate_county(session, seed=seed, size=Size(townships=1, schools_per_township=schools, pupils_per_class=pupils_per_class,
                                                   grades=tuple(grades)), policy_name=policy)
    session.flush()
    code = session.scalar(select(School.code).order_by(School.id))
    return code, [p.student_no for p in pupils_of(session, code)]


def morning(factory: sessionmaker, school: str, day: date, absent: list[str], *, at: time = time(8, 0),
            statuses: dict[str, str] | None = None, complete: bool = True):
    marks = [MarkIn(n, "unexcused") for n in absent] + [MarkIn(n, s) for n, s in (statuses or {}).items()]
    with transaction(factory) as s:
        return record_morning_check(s, CaseContext(s), school_code=school, day=day, marks=marks, source="test",
                                    submitted_by="班主任", now=datetime.combine(day, at), complete=complete)


def sweep(factory: sessionmaker, day: date, at: time = time(9, 30)):
    return advance(factory, datetime.combine(day, at))


def case_of(session: Session, student_no: str) -> Case:
    from store.models import Pupil
    return session.scalar(select(Case).join(Pupil, Pupil.id == Case.pupil_id).where(Pupil.student_no == student_no)
                          .order_by(Case.id.desc()))


def history(session: Session, case_id: int) -> list[tuple]:
    return [(e.seq, e.event, e.from_state, e.to_state, e.at) for e in session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq))]


def duties(session: Session, case_id: int) -> list[tuple]:
    return [(d.step, d.action, d.role, d.due_at, d.status) for d in session.scalars(
        select(Duty).where(Duty.case_id == case_id).order_by(Duty.id))]


# 三帮一 as the default and wutaishan policies want it: three named helpers covering 班主任, a teacher and a
# village cadre (deploy/policies/*.toml [three_helpers]; machines/policy_helpers.py)
THREE_HELPERS = [{"name": "帮扶甲", "role": "head_teacher"}, {"name": "帮扶乙", "role": "subject_teacher"},
                 {"name": "帮扶丙", "role": "village_committee"}]
