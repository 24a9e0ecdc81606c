"""The morning check (晨检): record a school's attendance for a day and open, extend or close cases.

A submission is the school's check for the day: pupils marked absent without leave open a case
(or extend the one they have), pupils with leave excuse an open case, and a pupil with an open
case who is not marked absent is back in class (mark_returned). A check that changes no mark of
the day (its latest recorded state) is a duplicate and changes nothing; a correction, even back to
an earlier content, is applied. A check sent after its day only records its marks: the next sweep
applies them in their place on each pupil's timeline (:mod:`store.cases.late_marks`), so a late check
never touches a case opened after its day nor moves a case further than the marks make due.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from machines.states import CaseState, DropoutReason, ExcuseReason, LIVE_STATES

from store.bulk import driver_rows, insert_rows, paused_gc
from store.calendars import school_day_seq
from store.cases.actions import close_cases
from store.db import is_postgres
from store.cases.context import CaseContext
from store.cases.effects import event_row
from store.cases.leave import KINDS as REQUEST_KINDS, Cover, requests_from_checks
from store.models import AttendanceMark, Case, CaseEvent, LateMark, Pupil, School, Submission

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
    complete: bool = True
    late: int = 0  # marks of a check sent after its day, left for the next sweep to apply (store.cases.late_marks)

    def summary(self) -> dict:
        return {"school": self.school_code, "day": self.day.isoformat(), "marks": self.marks,
                "opened": len(self.opened), "returned": len(self.returned), "excused": len(self.excused),
                "continuing": self.continuing, "errors": len(self.errors), "duplicate": self.duplicate,
                "complete": self.complete, "late": self.late}


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
    ids = [schools[code].id for code in codes]
    lock_schools(session, ids)  # the checks of a school follow one another: each reads what the last wrote

    # the roster: (id, class_id) by student_no as plain tuples, not ORM objects
    roster: dict[int, dict[str, PupilRef]] = {sid: {} for sid in ids}
    ref = PupilRef._make
    for sid, no, *pupil in driver_rows(session, select(  # 10⁴–10⁵ pupils: the driver's tuples
            Pupil.school_id, Pupil.student_no, Pupil.id, Pupil.class_id).where(Pupil.school_id.in_(ids))):
        roster[sid][no] = ref(pupil)
    results = {code: IntakeResult(0, code, day, complete=complete) for code in codes}
    good: dict[str, dict[int, tuple[PupilRef, str, str]]] = {
        code: _validate(sheets[code], roster[schools[code].id], results[code]) for code in codes}
    state = _day_state(session, ids, day)
    # a duplicate changes no mark of the day: the latest state of each (school, day, pupil) mark
    # decides, not whether this content was ever seen (a correction back to it applies it again)
    for code in codes:
        day_state = state[schools[code].id]
        if day_state.latest is not None and day_state.unchanged_by(good[code], complete):
            results[code].submission_id, results[code].duplicate = day_state.latest, True
    live = [code for code in codes if not results[code].duplicate]
    if not live:
        return [results[code] for code in codes]
    keys = {code: _submission_key(content_hash(code, day, sheets[code], complete), state[schools[code].id].latest)
            for code in live}
    claimed = _claim_submissions(session, [dict(
        school_id=schools[code].id, day=day, source=source, content_sha256=keys[code], submitted_by=submitted_by,
        received_at=now, summary={}) for code in live])
    if len(claimed) < len(live):  # the same content on the same state, recorded meanwhile: a duplicate
        seen = dict(session.execute(select(Submission.content_sha256, Submission.id).where(
            Submission.content_sha256.in_([keys[code] for code in live if keys[code] not in claimed]))).all())
        for code in live:
            if keys[code] not in claimed:
                results[code].submission_id, results[code].duplicate = seen[keys[code]], True
        live = [code for code in live if keys[code] in claimed]
    for code in live:
        results[code].submission_id = claimed[keys[code]]
    live_ids = [schools[code].id for code in live]
    _write_marks(session, day, now, [(schools[code].id, results[code].submission_id, good[code], complete)
                                     for code in live], state)
    # a leave mark applies for the approval it needs (store.cases.leave): every school's at once
    requests_from_checks(session, ctx, [(schools[code], {pid: st for pid, (_, st, _) in good[code].items()})
                                        for code in live], day, actor=submitted_by, now=now)
    if now.date() > day:  # a check sent after its day: the next sweep applies it in its place
        for code, n in zip(live, _queue_late(session, day, now, [
                (schools[code].id, results[code].submission_id, good[code], complete) for code in live])):
            results[code].late = n
    else:
        _apply_today(session, ctx, schools, live, live_ids, good, results, day=day, submitted_by=submitted_by,
                     now=now, complete=complete)
    sub = Submission.__table__
    summary = bindparam("s", type_=sub.c.summary.type)
    session.execute(update(sub).where(sub.c.id == bindparam("sid")).values(summary=summary),
                    [{"sid": results[code].submission_id, "s": results[code].summary()} for code in live])
    return [results[code] for code in codes]


def _apply_today(session: Session, ctx: CaseContext, schools: dict[str, School], live: list[str], live_ids: list[int],
                 good: dict, results: dict[str, IntakeResult], *, day: date, submitted_by: str, now: datetime,
                 complete: bool) -> None:
    """The day's own check: open, extend, return and excuse the cases it speaks for (none opened after it)."""
    # the ladder's cases and the referred ones (移交跟踪): a referred pupil present again is back (复学, 销号),
    # one still absent keeps that case (not a new one)
    open_q = select(Case).where(Case.school_id.in_(live_ids), Case.state.in_([st.value for st in LIVE_STATES]),
                                Case.opened_on <= day)
    open_cases: dict[int, dict[int, Case]] = {sid: {} for sid in live_ids}
    for c in session.scalars(open_q.with_for_update() if is_postgres(session.bind) else open_q):
        open_cases[c.school_id][c.pupil_id] = c
    to_open, back, on_leave, school_code = [], [], {}, {}  # school_code: case id → its school's code
    # a leave, 免学 or 转学 mark excuses only once approved; pending, it holds (store.cases.leave)
    cover = Cover.load(session, {pid for code in live for pid, (_, st, _) in good[code].items() if st in REQUEST_KINDS}
                       | {pid for sid in live_ids for pid in open_cases[sid]}, day, day)
    for code in live:
        school, result, own = schools[code], results[code], open_cases[schools[code].id]
        counts = {pid: cover.status(pid, day, status, now) for pid, (_, status, _) in good[code].items()}
        for pid, case in own.items():
            if pid not in good[code] and (not complete or cover.away(pid, day)):
                continue  # not listed: present only in a whole check, and never a pupil who left (转出)
            status = counts.get(pid, "present")
            if status == "unexcused" or status is None:  # absent, or a leave not approved yet: the case continues
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
                                 if counts[pid] == "unexcused" and pid not in own]))
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


def lock_schools(session: Session, school_ids: list[int]) -> None:
    """PostgreSQL: lock the schools' rows, in id order, for the transaction, so that two checks of
    one school (a double click, two clerks, a late file and the day's check) are applied one after
    the other instead of both inserting the same marks. SQLite has one writer (BEGIN IMMEDIATE)."""
    if school_ids and is_postgres(session.bind):
        session.execute(select(School.id).where(School.id.in_(school_ids)).order_by(School.id).with_for_update())


@dataclass
class DayState:
    """What is recorded for one school and day: the explicit marks, whether a whole check came
    (then an unlisted pupil is present) and the latest submission."""
    marks: dict[int, tuple[int, str]] = field(default_factory=dict)  # pupil id → (mark id, status)
    complete: bool = False
    latest: int | None = None

    def status(self, pupil_id: int) -> str | None:
        mark = self.marks.get(pupil_id)
        return mark[1] if mark else ("present" if self.complete else None)

    def unchanged_by(self, good: dict[int, tuple], complete: bool) -> bool:
        if not complete:
            return all(self.status(pid) == status for pid, (_, status, _) in good.items())
        absent_or_away = {pid: status for pid, (_, status, _) in good.items() if status != "present"}
        return self.complete and absent_or_away == {
            pid: status for pid, (_, status) in self.marks.items() if status != "present"}


def _day_state(session: Session, school_ids: list[int], day: date) -> dict[int, DayState]:
    out = {sid: DayState() for sid in school_ids}
    for sid, pid, mid, status in session.execute(
            select(AttendanceMark.school_id, AttendanceMark.pupil_id, AttendanceMark.id, AttendanceMark.status)
            .where(AttendanceMark.school_id.in_(school_ids), AttendanceMark.day == day)):
        out[sid].marks[pid] = (mid, status)
    for sid, sub_id, summary in session.execute(
            select(Submission.school_id, Submission.id, Submission.summary)
            .where(Submission.school_id.in_(school_ids), Submission.day == day).order_by(Submission.id)):
        out[sid].latest = sub_id
        out[sid].complete = out[sid].complete or bool((summary or {}).get("complete"))
    return out


def _submission_key(digest: str, previous: int | None) -> str:
    """The submission's unique key: its content after the day's previous submission, so that the
    same content sent again after a correction is a new submission (a retry of the same content
    on the same state is a duplicate before it gets here)."""
    return hashlib.sha256(f"{digest}:{previous or ''}".encode()).hexdigest()


def _queue_late(session: Session, day: date, now: datetime, checks: list[tuple[int, int, dict, bool]]) -> list[int]:
    """The marks of a check sent after its day, for the next sweep (``store.cases.late_marks``): the
    pupils marked absent, and those with a case that day whose status the check gives. Returns
    how many per check."""
    ids = [c[0] for c in checks]
    with_case = set(session.execute(select(Case.school_id, Case.pupil_id).where(
        Case.school_id.in_(ids), Case.opened_on <= day, or_(Case.closed_on.is_(None), Case.closed_on >= day))).all())
    rows, counts = [], []
    for school_id, sub_id, good, complete in checks:
        statuses = {pid: status for pid, (_, status, _) in good.items()}
        pupils = {pid for pid, status in statuses.items() if status == "unexcused"}
        pupils |= {pid for sid, pid in with_case if sid == school_id and (pid in statuses or complete)}
        rows += [{"school_id": school_id, "pupil_id": pid, "day": day, "status": statuses.get(pid, "present"),
                  "submission_id": sub_id, "recorded_at": now, "applied_at": None, "case_id": None, "note": ""}
                 for pid in sorted(pupils)]
        counts.append(len(pupils))
    if rows:
        session.execute(insert(LateMark.__table__), rows)
    return counts


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


def _write_marks(session: Session, day: date, now: datetime, checks: list[tuple[int, int, dict, bool]],
                 state: dict[int, DayState]) -> None:
    """checks: (school id, submission id, good rows, complete). New marks in one COPY; a mark the day
    already has is a correction (the latest submission counts), all in one executemany; a whole check
    replaces the day's marks, so the marks of pupils it does not list are deleted (present)."""
    new, changed, dropped = [], [], []
    for school_id, sub_id, good, complete in checks:
        existing = state[school_id].marks
        for pid, (_, status, _) in good.items():
            if pid not in existing:
                new.append((pid, school_id, sub_id, status))
            else:
                changed.append({"mid": existing[pid][0], "st": status, "sub": sub_id})
        if complete:
            dropped += [mid for pid, (mid, _) in existing.items() if pid not in good]
    if new:  # COPY / driver executemany; the columns every mark shares are converted once
        insert_rows(session, AttendanceMark.__table__, new, same={"day": day, "recorded_at": now},
                    columns=["pupil_id", "school_id", "submission_id", "status"])
    marks = AttendanceMark.__table__
    if changed:
        session.execute(update(marks).where(marks.c.id == bindparam("mid")).values(
            status=bindparam("st"), submission_id=bindparam("sub"), recorded_at=now), changed)
    if dropped:
        session.execute(delete(marks).where(marks.c.id.in_(dropped)))


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
