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

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from machines.states import CaseState, DropoutReason, ExcuseReason, OPEN_STATES

from .bulk import driver_rows, insert_rows, paused_gc
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
REASONS = frozenset(DropoutReason.__members__)  # (Enum.__members__ builds a new mapping on every access)


class PupilRef(NamedTuple):
    """What the intake needs of a pupil (the roster is read as tuples, not ORM objects)."""
    id: int
    class_id: int


class IntakeError(ValueError):
    """The whole submission is unusable (unknown school, not a school day…)."""


class MarkIn(NamedTuple):
    """One row of a morning check (a tuple: a county file has 10⁴–10⁵ of them)."""
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
    if (status := STATUS_ALIASES.get(raw)) is not None:  # the common case: a status as written in the table
        return status
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
    return record_morning_checks(session, ctx, {school_code: marks}, day=day, source=source, submitted_by=submitted_by,
                                 now=now, complete=complete)[0]


def record_morning_checks(
    session: Session, ctx: CaseContext, sheets: dict[str, list[MarkIn]], *, day: date, source: str,
    submitted_by: str, now: datetime, complete: bool = True,
) -> list[IntakeResult]:
    """Record the morning checks of many schools (a county file) in one unit of work, set-based.

    The outcome is that of :func:`record_morning_check` called for each school in turn, in one
    transaction (each school its own submission, duplicate check and results), but the roster,
    existing marks, open cases and relapses are read for all schools at once; the marks, the new
    cases and their events are written with one COPY/insert each, and the returns (and excuses, per
    kind of leave) of all schools are closed with one statement each, every event under its own
    submission's idempotency key. An unknown school or a
    day that is not a school day rejects the whole file before anything is written.
    """
    with paused_gc():
        return _record(session, ctx, sheets, day=day, source=source, submitted_by=submitted_by, now=now,
                       complete=complete)


def _record(session: Session, ctx: CaseContext, sheets: dict[str, list[MarkIn]], *, day: date, source: str,
            submitted_by: str, now: datetime, complete: bool) -> list[IntakeResult]:
    codes = list(sheets)
    schools = {sc.code: sc for sc in session.scalars(select(School).where(School.code.in_(codes)))}
    for code in codes:
        school = schools.get(code)
        if school is None:
            raise IntakeError(f"unknown school code '{code}' (学校代码不存在)")
        if not ctx.calendar(school.calendar_key).is_school_day(day):
            raise IntakeError(f"{day} is not a school day for {school.name} ({day} 不是上学日，无需晨检)")
    digests = {code: content_hash(code, day, sheets[code], complete) for code in codes}
    claimed = _claim_submissions(session, [dict(
        school_id=schools[code].id, day=day, source=source, content_sha256=digests[code], submitted_by=submitted_by,
        received_at=now, summary={}) for code in codes])
    # recorded before, or by an identical submission racing this one (a double click): a duplicate
    seen = {sha: (sid, summary) for sid, sha, summary in session.execute(
        select(Submission.id, Submission.content_sha256, Submission.summary)
        .where(Submission.content_sha256.in_([d for d in digests.values() if d not in claimed])))} \
        if len(claimed) < len(codes) else {}
    results: dict[str, IntakeResult] = {}
    for code in codes:
        if digests[code] in claimed:
            results[code] = IntakeResult(claimed[digests[code]], code, day)
        else:
            sid, summary = seen[digests[code]]
            results[code] = IntakeResult(sid, code, day, duplicate=True, marks=(summary or {}).get("marks", 0))
    live = [code for code in codes if not results[code].duplicate]
    if not live:
        return [results[code] for code in codes]
    live_ids = [schools[code].id for code in live]

    # the roster: (id, class_id) by student_no as plain tuples, not ORM objects
    roster: dict[int, dict[str, PupilRef]] = {sid: {} for sid in live_ids}
    ref = PupilRef._make
    for sid, no, *pupil in driver_rows(session, select(  # 10⁴–10⁵ pupils: the driver's tuples
            Pupil.school_id, Pupil.student_no, Pupil.id, Pupil.class_id).where(Pupil.school_id.in_(live_ids))):
        roster[sid][no] = ref(pupil)
    good: dict[str, dict[int, tuple[PupilRef, str, str]]] = {
        code: _validate(sheets[code], roster[schools[code].id], results[code]) for code in live}
    _write_marks(session, day, now, [(schools[code].id, results[code].submission_id, good[code]) for code in live])

    open_q = select(Case).where(Case.school_id.in_(live_ids), Case.state.in_([st.value for st in OPEN_STATES]))
    open_cases: dict[int, dict[int, Case]] = {sid: {} for sid in live_ids}
    for c in session.scalars(open_q.with_for_update() if is_postgres(session.bind) else open_q):
        open_cases[c.school_id][c.pupil_id] = c
    # a pupil handed to the township/police (escalated) keeps that case on the ledger: not a new case
    handed_over = set(session.execute(select(Case.school_id, Case.pupil_id).where(
        Case.school_id.in_(live_ids), Case.state == CaseState.escalated.value, Case.closed_on.is_(None))).all())
    to_open, back, on_leave, school_code = [], [], {}, {}  # school_code: case id → its school's code
    for code in live:
        school, result, own = schools[code], results[code], open_cases[schools[code].id]
        for pid, (_, status, _) in good[code].items():
            if status == "unexcused" and (school.id, pid) in handed_over:
                result.continuing += 1
        for pid, case in own.items():
            if pid not in good[code] and not complete:
                continue
            status = good[code].get(pid, (None, "present", None))[1]
            if status == "unexcused":
                result.continuing += 1
                continue
            if status == "present":
                back.append(case)
            elif status in LEAVE:
                on_leave.setdefault(status, []).append(case)
            else:
                continue
            school_code[case.id] = code
        to_open.append((school, [(p, reason) for pid, (p, status, reason) in good[code].items()
                                 if status == "unexcused" and pid not in own and (school.id, pid) not in handed_over]))
    # the returns and excuses of every school: one set-based close each, under each submission's key
    keys = {cid: f"intake:{results[code].submission_id}" for cid, code in school_code.items()}
    for cid in close_cases(session, ctx, back, "mark_returned", actor=submitted_by, at=now, now=now,
                           note="晨检到校，复学", idempotency_key=keys):
        results[school_code[cid]].returned.append(cid)
    for status, cases in on_leave.items():
        for cid in close_cases(session, ctx, cases, "excuse", actor=submitted_by, at=now, now=now,
                               note=f"补假：{status}", reason=status, idempotency_key=keys):
            results[school_code[cid]].excused.append(cid)
    # new cases after every school's returns (a pupil's earlier case is closed before another opens)
    for code, ids in zip(live, _open_cases(session, ctx, to_open, day, actor=submitted_by, now=now)):
        results[code].opened = ids
    sub = Submission.__table__
    summary = bindparam("s", type_=sub.c.summary.type)
    session.execute(update(sub).where(sub.c.id == bindparam("sid")).values(summary=summary),
                    [{"sid": results[code].submission_id, "s": results[code].summary()} for code in live])
    return [results[code] for code in codes]


def _validate(marks: list[MarkIn], pupils: dict[str, PupilRef], result: IntakeResult) -> dict[int, tuple]:
    """pupil id → (pupil, status, reason) of the usable rows; the others become row errors."""
    good: dict[int, tuple[PupilRef, str, str]] = {}
    for no, raw, reason, row in marks:  # (a county file: 10⁵ rows, unpacked rather than by attribute)
        pupil = pupils.get(no) or pupils.get(no.strip())
        status = normalise_status(raw)
        if pupil is None:
            result.errors.append(RowError(row, no, "学籍号不属于本校 (pupil not in this school)"))
        elif status is None:
            result.errors.append(RowError(row, no, f"未知出勤状态 '{raw}' (unknown status)"))
        elif pupil.id in good:
            result.errors.append(RowError(row, no, "同一学生重复出现 (duplicate row)"))
        else:
            good[pupil.id] = (pupil, status, reason if reason in REASONS else "unknown")
    result.marks = len(good)
    return good


def _claim_submissions(session: Session, rows: list[dict]) -> dict[str, int]:
    """INSERT … ON CONFLICT (content_sha256) DO NOTHING for every submission: content hash → new id
    of those inserted now (PostgreSQL waits for a racing insert of the same content to finish)."""
    dialect = postgresql if is_postgres(session.bind) else sqlite
    stmt = (dialect.insert(Submission).values(rows)
            .on_conflict_do_nothing(index_elements=["content_sha256"])
            .returning(Submission.id, Submission.content_sha256))
    return {sha: sid for sid, sha in session.execute(stmt)}


def _write_marks(session: Session, day: date, now: datetime, checks: list[tuple[int, int, dict]]) -> None:
    """checks: (school id, submission id, good rows). New marks in one COPY; a mark the day already
    has is a correction (the latest submission counts)."""
    checks = [c for c in checks if c[2]]
    if not checks:
        return
    existing = dict(session.execute(
        select(AttendanceMark.pupil_id, AttendanceMark.id)
        .where(AttendanceMark.school_id.in_([c[0] for c in checks]), AttendanceMark.day == day)
    ).all())
    new = [(pid, school_id, sub_id, status)
           for school_id, sub_id, good in checks for pid, (_, status, _) in good.items() if pid not in existing]
    if new:  # COPY / driver executemany; the columns every mark shares are converted once
        insert_rows(session, AttendanceMark.__table__, new, same={"day": day, "recorded_at": now},
                    columns=["pupil_id", "school_id", "submission_id", "status"])
    for _, sub_id, good in checks:
        for pid, (_, status, _) in good.items():
            if pid in existing:
                mark = session.get(AttendanceMark, existing[pid])
                mark.status, mark.submission_id, mark.recorded_at = status, sub_id, now


def open_cases_bulk(
    session: Session, ctx: CaseContext, school: School, day: date, pupils: list[tuple[Pupil | PupilRef, str]], *,
    actor: str, now: datetime,
) -> list[int]:
    """Open one case per pupil (state ``absent``, event ``open``), linking relapses, in two inserts."""
    return _open_cases(session, ctx, [(school, pupils)], day, actor=actor, now=now)[0]


def _open_cases(session: Session, ctx: CaseContext, per_school: list[tuple[School, list]], day: date, *, actor: str,
                now: datetime) -> list[list[int]]:
    """The new cases of many schools: one insert of the cases, one COPY of their events; the ids per school."""
    policies, seqs, rows = {}, {}, []
    for school, pupils in per_school:
        if not pupils:
            continue
        if school.policy_name not in policies:
            policies[school.policy_name] = ctx.policies.get(school.policy_name)
        if school.calendar_key not in seqs:
            seqs[school.calendar_key] = school_day_seq(session, school.calendar_key, day)
            if seqs[school.calendar_key] is None:
                raise IntakeError(f"{day} is not a school day of calendar '{school.calendar_key}' (run `baoxue init`)")
        policy = policies[school.policy_name]
        rows += [{
            "pupil_id": p.id, "school_id": school.id, "class_id": p.class_id, "state": CaseState.absent.value,
            "version": 1, "policy_name": policy.name, "policy_version": policy.version,
            "calendar_key": school.calendar_key, "opened_on": day, "opened_seq": seqs[school.calendar_key],
            "closed_on": None, "reason": reason, "outcome_reason": None, "relapse_of": None, "created_at": now,
            "updated_at": now,
        } for p, reason in pupils]
    if not rows:
        return [[] for _ in per_school]
    opening = [r["pupil_id"] for r in rows]
    previous = dict(session.execute(
        select(Case.pupil_id, func.max(Case.id))
        .where(Case.pupil_id.in_(opening), Case.state == CaseState.returned.value)
        .group_by(Case.pupil_id)
    ).all())
    groups = dict(session.execute(  # only the opening pupils' (a day's new cases, not the roster)
        select(Pupil.id, Pupil.special_groups).where(Pupil.id.in_(opening))).all())
    for r in rows:
        r["relapse_of"] = previous.get(r["pupil_id"])
        r["special_groups"] = groups.get(r["pupil_id"]) or []
    cases = Case.__table__  # Core, not the ORM bulk path (its per-statement mapper bookkeeping)
    case_ids = list(session.scalars(insert(cases).returning(cases.c.id, sort_by_parameter_order=True), rows))
    keys = {name: p.key for name, p in policies.items()}
    insert_rows(session, CaseEvent.__table__, [event_row(
        case_id=cid, seq=1, event="open", from_state=None, to_state=CaseState.absent.value, actor=actor, at=now,
        now=now, reason="晨检发现未请假不到校" + ("（复发）" if r["relapse_of"] else ""),
        payload={"policy": keys[r["policy_name"]], "opened_on": day.isoformat(), "relapse_of": r["relapse_of"]},
    ) for cid, r in zip(case_ids, rows)])
    out, i = [], 0
    for _, pupils in per_school:
        out.append(case_ids[i:i + len(pupils)])
        i += len(pupils)
    return out
