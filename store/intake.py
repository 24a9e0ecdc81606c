"""The morning check (晨检): record a school's attendance for a day and open, extend or close cases.

A submission is the school's check for the day: pupils marked absent without leave open a case
(or extend the one they have), pupils with leave excuse an open case, and a pupil with an open
case who is not marked absent is back in class (mark_returned). The same content submitted twice
is recognised by its hash and changes nothing.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from machines.states import CaseState, DropoutReason, ExcuseReason, OPEN_STATES

from .bulk import insert_rows
from .calendars import school_day_seq
from .cases import close_cases
from .db import is_postgres
from .context import CaseContext
from .effects import event_row
from .models import AttendanceMark, Case, CaseEvent, Pupil, School, Submission

STATUS_ALIASES = {
    "present": "present", "到校": "present", "出勤": "present", "在校": "present", "返校": "present",
    "unexcused": "unexcused", "缺勤": "unexcused", "无故缺勤": "unexcused", "旷课": "unexcused", "未到": "unexcused",
    "sick_leave": "sick_leave", "病假": "sick_leave",
    "personal_leave": "personal_leave", "事假": "personal_leave",
    "exemption": "exemption", "免学": "exemption", "缓学": "exemption",
    "transfer": "transfer", "转学": "transfer", "借读": "transfer",
}
LEAVE = {e.value for e in ExcuseReason} - {"opened_in_error"}


class PupilRef(NamedTuple):
    """What the intake needs of a pupil (the roster is read as tuples, not ORM objects)."""
    id: int
    class_id: int


class IntakeError(ValueError):
    """The whole submission is unusable (unknown school, not a school day…)."""


@dataclass(frozen=True)
class MarkIn:
    student_no: str
    status: str
    reason: str = "unknown"
    row: int | None = None


@dataclass
class RowError:
    row: int | None
    student_no: str
    message: str


@dataclass
class IntakeResult:
    submission_id: int
    school_code: str
    day: date
    duplicate: bool = False
    marks: int = 0
    opened: list[int] = field(default_factory=list)
    returned: list[int] = field(default_factory=list)
    excused: list[int] = field(default_factory=list)
    continuing: int = 0
    errors: list[RowError] = field(default_factory=list)

    def summary(self) -> dict:
        return {"school": self.school_code, "day": self.day.isoformat(), "marks": self.marks,
                "opened": len(self.opened), "returned": len(self.returned), "excused": len(self.excused),
                "continuing": self.continuing, "errors": len(self.errors), "duplicate": self.duplicate}


def normalise_status(raw: str) -> str | None:
    return STATUS_ALIASES.get((raw or "").strip().lower()) or STATUS_ALIASES.get((raw or "").strip())


def content_hash(school_code: str, day: date, marks: list[MarkIn], complete: bool) -> str:
    body = json.dumps([school_code, day.isoformat(), complete, sorted((m.student_no, m.status, m.reason) for m in marks)],
                      ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


def record_morning_check(
    session: Session, ctx: CaseContext, *, school_code: str, day: date, marks: list[MarkIn], source: str,
    submitted_by: str, now: datetime, complete: bool = True,
) -> IntakeResult:
    """Record ``marks``; with ``complete`` (a whole morning check) an unlisted pupil counts as present."""
    school = session.scalar(select(School).where(School.code == school_code))
    if school is None:
        raise IntakeError(f"unknown school code '{school_code}' (学校代码不存在)")
    if not ctx.calendar(school.calendar_key).is_school_day(day):
        raise IntakeError(f"{day} is not a school day for {school.name} ({day} 不是上学日，无需晨检)")
    digest = content_hash(school_code, day, marks, complete)
    seen = session.scalar(select(Submission).where(Submission.content_sha256 == digest))
    sub_id = None if seen is not None else _claim_submission(
        session, school_id=school.id, day=day, source=source, content_sha256=digest, submitted_by=submitted_by,
        received_at=now, summary={})
    if sub_id is None:  # recorded before, or by an identical submission racing this one (a double click)
        seen = seen or session.scalar(select(Submission).where(Submission.content_sha256 == digest))
        result = IntakeResult(seen.id, school_code, day, duplicate=True)
        result.marks = (seen.summary or {}).get("marks", 0)
        return result

    result = IntakeResult(sub_id, school_code, day)

    # (id, class_id) by student_no as plain tuples, not ORM objects or Rows: read on every check
    pupils = {no: PupilRef(pid, cid) for pid, no, cid in session.execute(
        select(Pupil.id, Pupil.student_no, Pupil.class_id).where(Pupil.school_id == school.id))}
    good: dict[int, tuple[PupilRef, str, str]] = {}
    for m in marks:
        pupil, status = pupils.get(m.student_no.strip()), normalise_status(m.status)
        if pupil is None:
            result.errors.append(RowError(m.row, m.student_no, "学籍号不属于本校 (pupil not in this school)"))
        elif status is None:
            result.errors.append(RowError(m.row, m.student_no, f"未知出勤状态 '{m.status}' (unknown status)"))
        elif pupil.id in good:
            result.errors.append(RowError(m.row, m.student_no, "同一学生重复出现 (duplicate row)"))
        else:
            reason = m.reason if m.reason in DropoutReason.__members__ else "unknown"
            good[pupil.id] = (pupil, status, reason)
    _write_marks(session, school.id, day, sub_id, good, now)
    result.marks = len(good)

    open_q = select(Case).where(Case.school_id == school.id, Case.state.in_([s.value for s in OPEN_STATES]))
    open_cases = {c.pupil_id: c for c in session.scalars(
        open_q.with_for_update() if is_postgres(session.bind) else open_q)}
    # a pupil handed to the township/police (escalated) keeps that case on the ledger: not a new case
    handed_over = set(session.scalars(select(Case.pupil_id).where(
        Case.school_id == school.id, Case.state == CaseState.escalated.value, Case.closed_on.is_(None))))
    to_open = [(p, reason) for pid, (p, status, reason) in good.items()
               if status == "unexcused" and pid not in open_cases and pid not in handed_over]
    result.continuing += sum(1 for pid, (_, status, _) in good.items() if status == "unexcused" and pid in handed_over)
    result.opened = open_cases_bulk(session, ctx, school, day, to_open, actor=submitted_by, now=now)
    back, on_leave = [], {}
    for pid, case in open_cases.items():
        if pid not in good and not complete:
            continue
        status = good.get(pid, (None, "present", None))[1]
        if status == "unexcused":
            result.continuing += 1
        elif status == "present":
            back.append(case)
        elif status in LEAVE:
            on_leave.setdefault(status, []).append(case)
    key = f"intake:{sub_id}"
    result.returned = close_cases(session, ctx, back, "mark_returned", actor=submitted_by, at=now, now=now,
                                  note="晨检到校，复学", idempotency_key=key)
    for status, cases in on_leave.items():
        result.excused += close_cases(session, ctx, cases, "excuse", actor=submitted_by, at=now, now=now,
                                      note=f"补假：{status}", reason=status, idempotency_key=key)
    session.execute(update(Submission.__table__).where(Submission.__table__.c.id == sub_id)
                    .values(summary=result.summary()))
    return result


def _claim_submission(session: Session, **values) -> int | None:
    """INSERT … ON CONFLICT (content_sha256) DO NOTHING: the new submission's id, or None when the
    same content is already there (PostgreSQL waits for a racing insert to commit or roll back)."""
    dialect = postgresql if is_postgres(session.bind) else sqlite
    stmt = (dialect.insert(Submission).values(**values)
            .on_conflict_do_nothing(index_elements=["content_sha256"]).returning(Submission.id))
    return session.scalar(stmt)


def _write_marks(session: Session, school_id: int, day: date, submission_id: int, good, now: datetime) -> None:
    if not good:
        return
    existing = dict(session.execute(
        select(AttendanceMark.pupil_id, AttendanceMark.id)
        .where(AttendanceMark.school_id == school_id, AttendanceMark.day == day)
    ).all())
    new = [{"pupil_id": pid, "status": status} for pid, (_, status, _) in good.items() if pid not in existing]
    if new:  # COPY / driver executemany; the columns every mark shares are converted once
        insert_rows(session, AttendanceMark.__table__, new,
                    same={"school_id": school_id, "day": day, "submission_id": submission_id, "recorded_at": now})
    for pid, (_, status, _) in good.items():
        if pid in existing:  # a correction of the same day's check: the latest submission counts
            mark = session.get(AttendanceMark, existing[pid])
            mark.status, mark.submission_id, mark.recorded_at = status, submission_id, now


def open_cases_bulk(
    session: Session, ctx: CaseContext, school: School, day: date, pupils: list[tuple[Pupil | PupilRef, str]], *,
    actor: str, now: datetime,
) -> list[int]:
    """Open one case per pupil (state ``absent``, event ``open``), linking relapses, in two inserts."""
    if not pupils:
        return []
    policy = ctx.policies.get(school.policy_name)
    opened_seq = school_day_seq(session, school.calendar_key, day)
    if opened_seq is None:
        raise IntakeError(f"{day} is not a school day of calendar '{school.calendar_key}' (run `baoxue init`)")
    ids = [p.id for p, _ in pupils]
    previous = dict(session.execute(
        select(Case.pupil_id, func.max(Case.id)).where(Case.pupil_id.in_(ids), Case.state == CaseState.returned.value)
        .group_by(Case.pupil_id)
    ).all())
    rows = [{
        "pupil_id": p.id, "school_id": school.id, "class_id": p.class_id, "state": CaseState.absent.value,
        "version": 1, "policy_name": policy.name, "policy_version": policy.version,
        "calendar_key": school.calendar_key, "opened_on": day, "opened_seq": opened_seq, "closed_on": None, "reason": reason,
        "outcome_reason": None, "relapse_of": previous.get(p.id), "created_at": now, "updated_at": now,
    } for p, reason in pupils]
    cases = Case.__table__  # Core, not the ORM bulk path (its per-statement mapper bookkeeping)
    case_ids = list(session.scalars(insert(cases).returning(cases.c.id, sort_by_parameter_order=True), rows))
    insert_rows(session, CaseEvent.__table__, [event_row(
        case_id=cid, seq=1, event="open", from_state=None, to_state=CaseState.absent.value, actor=actor, at=now,
        now=now, reason="晨检发现未请假不到校" + ("（复发）" if r["relapse_of"] else ""),
        payload={"policy": policy.key, "opened_on": day.isoformat(), "relapse_of": r["relapse_of"]},
    ) for cid, r in zip(case_ids, rows)])
    return case_ids
