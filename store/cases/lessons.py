"""每节课前清点 and 放学未回家 (seed 000 §二.2, §二.4; issue 17 item 8).

- A subject teacher (科任教师) who finds a pupil missing at any lesson reports it: the report is kept
  (``lesson_absences``: which lesson, which subject, who) and the pupil's day is marked absent through
  the morning check's own intake (a partial check, source ``lesson``), so it opens or extends the case
  exactly like the morning check — a pupil present in the morning who left at noon counts. A second
  report of the same lesson changes nothing; a report of a later lesson is kept and the day stays absent.
- A parent who reports that the pupil did not come home after school (放学未回家) is recorded, and the
  school owes a same-day search: a prevention duty (source ``after_school``) for the head teacher, due
  ``[transfer] after_school_due_hours`` after the report, on the duty ledger like every other duty.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from machines.vocabulary import AFTER_SCHOOL_LABELS

from store.cases.context import CaseContext
from store.cases.intake import IntakeResult, MarkIn, record_morning_check
from store.models import Case, Pupil, School
from store.models.leave import AfterSchoolReport, LessonAbsence
from store.models.prevention import PreventionDuty, PreventionEvent
from store.prevention.common import event_row


class LessonError(ValueError):
    pass


@dataclass
class LessonResult:
    report_id: int
    duplicate: bool
    intake: IntakeResult | None
    case_id: int | None


def report_lesson_absence(session: Session, ctx: CaseContext, *, school_code: str, student_no: str, day: date,
                          lesson: int, subject: str = "", actor: str, now: datetime, note: str = "") -> LessonResult:
    """Record a lesson's absence and mark the pupil's day absent (no commit); see the module doc."""
    if not 1 <= lesson <= 12:
        raise LessonError("节次应为 1–12 (lesson must be 1–12)")
    pupil = session.scalar(select(Pupil).join(School, School.id == Pupil.school_id)
                           .where(School.code == school_code, Pupil.student_no == student_no))
    if pupil is None:
        raise LessonError("学籍号不属于本校 (pupil not in this school)")
    known = session.scalar(select(LessonAbsence).where(LessonAbsence.pupil_id == pupil.id, LessonAbsence.day == day,
                                                       LessonAbsence.lesson == lesson))
    if known is not None:
        return LessonResult(known.id, True, None, known.case_id)
    result = record_morning_check(session, ctx, school_code=school_code, day=day,
                                  marks=[MarkIn(student_no, "unexcused", "unknown")], source="lesson",
                                  submitted_by=actor, now=now, complete=False)
    case_id = session.scalar(select(Case.id).where(Case.pupil_id == pupil.id, Case.opened_on <= day)
                             .order_by(Case.id.desc()))
    row = LessonAbsence(pupil_id=pupil.id, school_id=pupil.school_id, class_id=pupil.class_id, day=day, lesson=lesson,
                        subject=(subject or "")[:32], reported_by=actor[:64], reported_at=now, case_id=case_id,
                        note=(note or "")[:255])
    session.add(row)
    session.flush()
    return LessonResult(row.id, False, result, case_id)


def report_not_home(session: Session, ctx: CaseContext, *, pupil_id: int, day: date, parent_name: str,
                    parent_phone: str | None, note: str, actor: str, now: datetime) -> tuple[AfterSchoolReport, bool]:
    """Record a parent's 放学未回家 report and the school's same-day duty; (report, new)."""
    known = session.scalar(select(AfterSchoolReport).where(AfterSchoolReport.pupil_id == pupil_id,
                                                           AfterSchoolReport.day == day))
    if known is not None:
        return known, False
    pupil = session.get(Pupil, pupil_id)
    if pupil is None:
        raise LessonError("学生不存在 (no such pupil)")
    school = session.get(School, pupil.school_id)
    policy = ctx.policies.get(school.policy_name)
    report = AfterSchoolReport(pupil_id=pupil.id, school_id=school.id, day=day, reported_at=now,
                               parent_name=(parent_name or "")[:32], parent_phone=(parent_phone or None),
                               note=(note or "")[:255], recorded_by=actor[:64])
    session.add(report)
    session.flush()
    due = min(now + timedelta(hours=policy.transfer.after_school_due_hours), datetime.combine(day, datetime.max.time()))
    due = max(due, now)
    duty_id = session.execute(insert(PreventionDuty).returning(PreventionDuty.id), [{
        "pupil_id": pupil.id, "school_id": school.id, "class_id": pupil.class_id, "source": "after_school",
        "kind": "not_home", "ref_id": report.id, "action": "find_pupil", "label": AFTER_SCHOOL_LABELS["find_pupil"],
        "role": "head_teacher", "owner_id": ctx.owners.resolve(school.id, pupil.class_id, "head_teacher"),
        "due_at": due.replace(microsecond=0), "status": "open", "created_at": now, "overdue_at": None, "done_at": None,
        "done_by": None, "note": ""}]).scalar_one()
    session.execute(insert(PreventionEvent), [event_row(
        pupil_id=pupil.id, subject="after_school", ref_id=report.id, event="not_home", actor=actor, at=now, now=now,
        reason="家长报告放学未回家", payload={"day": day.isoformat()})])
    report.duty_id = duty_id
    session.flush()
    return report, True


def lesson_reports(session: Session, *, school_ids: list[int] | None = None, limit: int = 200) -> list[dict]:
    q = (select(LessonAbsence, Pupil.name, Pupil.student_no).join(Pupil, Pupil.id == LessonAbsence.pupil_id)
         .order_by(LessonAbsence.id.desc()).limit(limit))
    if school_ids is not None:
        q = q.where(LessonAbsence.school_id.in_(school_ids))
    return [{"id": r.id, "pupil": name, "student_no": no, "day": r.day, "lesson": r.lesson, "subject": r.subject,
             "reported_by": r.reported_by, "reported_at": r.reported_at, "case_id": r.case_id}
            for r, name, no in session.execute(q)]


def not_home_reports(session: Session, *, school_ids: list[int] | None = None, limit: int = 200) -> list[dict]:
    q = (select(AfterSchoolReport, Pupil.name, Pupil.student_no, PreventionDuty.status)
         .join(Pupil, Pupil.id == AfterSchoolReport.pupil_id)
         .outerjoin(PreventionDuty, PreventionDuty.id == AfterSchoolReport.duty_id)
         .order_by(AfterSchoolReport.id.desc()).limit(limit))
    if school_ids is not None:
        q = q.where(AfterSchoolReport.school_id.in_(school_ids))
    return [{"id": r.id, "pupil": name, "student_no": no, "day": r.day, "reported_at": r.reported_at,
             "parent": r.parent_name, "note": r.note, "duty_id": r.duty_id, "duty_status": st}
            for r, name, no, st in session.execute(q)]
