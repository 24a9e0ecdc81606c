"""Late marks (补报): a morning check recorded after its day, applied in its place by the sweep.

A check for a past day D only records its marks and queues the pupils it concerns
(:func:`store.cases.intake._queue_late`). The next sweep, before it escalates anything, rebuilds each
queued pupil's timeline from the recorded marks (:func:`absence_runs`) from D, or from the start of
the case that covers D, to today:

- an absence run opens on a school day marked absent and ends on the first later school day with
  another known status (present: returned that day; leave: excused that day); a school day without
  a mark (no check, or not listed in a partial check) continues the run;
- each run is matched with the pupil's cases: a missing run opens its case on its own first day;
  an open case whose run began earlier is dated back to it (the late absence is its first day);
  a run that has ended closes its open case on that day, after the steps that were due on the
  school days before it (never more: the streak is the run, not "opened to today");
- a case opened after D is never touched unless D's absence is the first day of its own run, and a
  closed case is never changed: where the marks now disagree with it, the late mark is flagged.

Every late mark stays in ``late_marks`` with what the sweep did (``note``, ``case_id``); each case
it changed gets a ``late_mark`` event in its history (bookkeeping, no state change), so the case
page and the review list show it.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from machines.states import CaseState, OPEN_STATES

from store.calendars import school_day_seq
from store.cases.actions import close_cases, escalate_through
from store.cases.context import CaseContext
from store.db import is_postgres
from store.cases.effects import SYSTEM, event_row
from store.cases.intake import PupilRef, lock_schools, open_cases_bulk
from store.cases.leave import Cover
from store.models import AttendanceMark, Case, CaseEvent, LateMark, Pupil, School, Submission

ABSENT, PRESENT = "unexcused", "present"
OPEN = frozenset(s.value for s in OPEN_STATES)
MORNING_CHECK = time(8, 0)  # when a return or an excuse on a past day took effect


@dataclass
class Run:
    """An absence run: its first day, and the day it ended with the status that ended it."""
    opened: date
    ended: date | None = None
    status: str | None = None


def absence_runs(days: list[date], status: Callable[[date], str | None]) -> list[Run]:
    """The absence runs on ``days`` (school days, in order); ``status`` is None for an unknown day."""
    runs: list[Run] = []
    current: Run | None = None
    for d in days:
        st = status(d)
        if current is None:
            if st == ABSENT:
                current = Run(d)
                runs.append(current)
        elif st is not None and st != ABSENT:
            current.ended, current.status, current = d, st, None
    return runs


def apply_late_marks(session: Session, ctx: CaseContext, as_of: datetime) -> int:
    """Apply every queued late mark (see the module doc); returns how many were applied."""
    due = (LateMark.applied_at.is_(None), LateMark.day <= as_of.date())
    school_ids = sorted(session.scalars(select(LateMark.school_id).where(*due).distinct()))
    if not school_ids:
        return 0
    # the schools' checks and other sweeps wait (store.cases.intake.lock_schools); read again under the lock,
    # so that two sweeps running at once apply each late mark once
    lock_schools(session, school_ids)
    pending = session.execute(select(LateMark.id, LateMark.pupil_id, LateMark.school_id, LateMark.day)
                              .where(*due, LateMark.school_id.in_(school_ids)).order_by(LateMark.id)).all()
    if not pending:
        return 0
    first: dict[int, date] = {}
    rows: dict[int, list[int]] = defaultdict(list)
    for r in pending:
        first[r.pupil_id] = min(first.get(r.pupil_id, r.day), r.day)
        rows[r.pupil_id].append(r.id)
    pupils = sorted(first)
    case_q = select(Case).where(Case.pupil_id.in_(pupils)).order_by(Case.opened_on, Case.id)
    cases: dict[int, list[Case]] = defaultdict(list)
    for c in session.scalars(case_q.with_for_update() if is_postgres(session.bind) else case_q):
        cases[c.pupil_id].append(c)
    starts = {pid: _start(first[pid], cases[pid]) for pid in pupils}
    since = min(starts.values())
    marks: dict[int, dict[date, str]] = defaultdict(dict)
    for pid, day, status in session.execute(select(AttendanceMark.pupil_id, AttendanceMark.day, AttendanceMark.status)
                                            .where(AttendanceMark.pupil_id.in_(pupils), AttendanceMark.day >= since)):
        marks[pid][day] = status
    info = {p.id: p for p in session.execute(select(Pupil.id, Pupil.class_id, Pupil.school_id)
                                             .where(Pupil.id.in_(pupils)))}
    school_ids = sorted({p.school_id for p in info.values()})
    schools = {s.id: s for s in session.scalars(select(School).where(School.id.in_(school_ids)))}
    whole: dict[int, set[date]] = defaultdict(set)  # days with a whole check: an unlisted pupil was present
    for sid, day, summary in session.execute(select(Submission.school_id, Submission.day, Submission.summary)
                                             .where(Submission.school_id.in_(school_ids), Submission.day >= since)):
        if (summary or {}).get("complete"):
            whole[sid].add(day)
    cover = Cover.load(session, pupils, since, as_of.date())  # a leave mark counts only once approved
    for pid in pupils:
        pupil = info[pid]
        school = schools[pupil.school_id]
        known, complete = marks[pid], whole[school.id]

        def status(d: date, pid=pid, known=known, complete=complete) -> str | None:
            if d in known:
                return cover.status(pid, d, known[d], as_of)
            return PRESENT if d in complete and not cover.away(pid, d) else None

        note, case_id = _apply_pupil(
            session, ctx, school, PupilRef(pid, pupil.class_id), cases[pid], starts[pid], status, as_of)
        session.execute(update(LateMark).where(LateMark.id.in_(rows[pid]))
                        .values(applied_at=as_of, note=note[:255], case_id=case_id))
    return len(pending)


def _start(first: date, cases: list[Case]) -> date:
    """Where a pupil's timeline is rebuilt from: the first late day, or the start of the case that
    covers it (or ended on it)."""
    covering = [c.opened_on for c in cases if c.opened_on <= first and (c.closed_on is None or c.closed_on >= first)]
    return min([first, *covering])


def _apply_pupil(session: Session, ctx: CaseContext, school: School, pupil: PupilRef, cases: list[Case], start: date,
                 status: Callable[[date], str | None], as_of: datetime) -> tuple[str, int | None]:
    """Bring one pupil's cases in line with the marks from ``start``; returns (note, a changed case)."""
    if any(c.state == CaseState.escalated.value and c.closed_on is None for c in cases):
        return "已移交校外，补报仅记录 (handed over: recorded only)", None
    calendar = ctx.calendar(school.calendar_key)
    runs = absence_runs(calendar.school_days(start, as_of.date()), status)
    existing = [c for c in cases if c.closed_on is None or c.closed_on >= start]
    notes, changed = [], None

    def flag(case: Case, what: str, days: list[date]) -> None:
        nonlocal changed
        _flag_event(session, case, what, days, as_of)
        notes.append(f"{what} #{case.id}")
        changed = changed or case.id

    for run in runs:
        end = run.ended or date.max
        overlap = [c for c in existing if c.opened_on < end and run.opened < (c.closed_on or date.max)]
        if len(overlap) > 1:
            for c in overlap:
                flag(c, "conflict", [run.opened])
            continue
        if not overlap:
            others = [c for c in cases if c.state in OPEN]
            if others and run.ended is None:  # two runs still open: the marks disagree with a case
                for c in others:
                    flag(c, "conflict", [run.opened])
                continue
            with _set_aside(session, others):  # a later open case: one open case per pupil at a time
                case_id = open_cases_bulk(session, ctx, school, run.opened, [(pupil, "unknown")], actor=SYSTEM,
                                          now=as_of)[0]
                case = session.get(Case, case_id)
                flag(case, "opened_late", [run.opened])
                if run.ended is not None:
                    _close_on(session, ctx, case, run, as_of)
                    flag(case, "closed_late", [run.ended])
            continue
        case = overlap[0]
        if case.state not in OPEN:
            if (case.opened_on, case.closed_on) != (run.opened, run.ended):
                flag(case, "conflict", [run.opened] + ([run.ended] if run.ended else []))
            continue
        if case.opened_on > run.opened:  # the late absence is the first day of this case's run
            case.opened_on = run.opened
            case.opened_seq = school_day_seq(session, case.calendar_key, run.opened)
            flag(case, "backdated", [run.opened])
        elif case.opened_on < run.opened:
            flag(case, "conflict", [run.opened])
            continue
        if run.ended is not None:
            _close_on(session, ctx, case, run, as_of)
            flag(case, "closed_late", [run.ended])
    for c in existing:  # an open case the marks no longer hold (its first day corrected): for review
        if c.state in OPEN and not any(
                c.opened_on < (r.ended or date.max) and r.opened < (c.closed_on or date.max) for r in runs):
            flag(c, "conflict", [c.opened_on])
    return "; ".join(notes) or "无需改动 (nothing to change)", changed


@contextmanager
def _set_aside(session: Session, cases: list[Case]) -> Iterator[None]:
    """Take ``cases`` out of the open states for the block (the same transaction; their rows are
    locked), so that an earlier run of the same pupil can be opened and closed in its place."""
    states = {c.id: c.state for c in cases}
    for c in cases:
        c.state = "set_aside"
    session.flush()
    yield
    for c in cases:
        c.state = states[c.id]
    session.flush()


def _close_on(session: Session, ctx: CaseContext, case: Case, run: Run, as_of: datetime) -> None:
    """The steps due on the school days before ``run.ended``, then the return or excuse on that day."""
    calendar = ctx.calendar(case.calendar_key)
    escalate_through(session, ctx, case, calendar.school_days_between(case.opened_on, run.ended) - 1, now=as_of)
    at = datetime.combine(run.ended, MORNING_CHECK)
    if run.status == PRESENT:
        close_cases(session, ctx, [case], "mark_returned", actor=SYSTEM, at=at, now=as_of, note="补报：晨检到校，复学")
    else:
        close_cases(session, ctx, [case], "excuse", actor=SYSTEM, at=at, now=as_of, note=f"补报：{run.status}",
                    reason=run.status)
    session.refresh(case)


def _flag_event(session: Session, case: Case, what: str, days: list[date], now: datetime) -> None:
    """A ``late_mark`` event in the case's history: bookkeeping, the state is unchanged."""
    case.version += 1
    case.updated_at = now
    session.add(CaseEvent(**event_row(
        case_id=case.id, seq=case.version, event="late_mark", from_state=case.state, to_state=case.state,
        actor=SYSTEM, at=now, now=now, reason=LATE_REASONS[what],
        payload={"change": what, "days": [d.isoformat() for d in days]})))
    session.flush()


LATE_REASONS = {
    "opened_late": "补报缺勤：按缺勤当日立案，待复核",
    "backdated": "补报缺勤：连续缺勤从更早一天算起，待复核",
    "closed_late": "补报到校或请假：按当日销号，待复核",
    "conflict": "补报与已办结的案件不一致，未改动，待复核",
}


def late_marks_for_review(session: Session, *, school_ids: list[int] | None = None, limit: int = 200) -> list[dict]:
    """The late marks, newest first, with what the sweep did with each (for a review list)."""
    q = select(LateMark).order_by(LateMark.id.desc()).limit(limit)
    if school_ids is not None:
        q = q.where(LateMark.school_id.in_(school_ids))
    return [{"id": m.id, "school_id": m.school_id, "pupil_id": m.pupil_id, "day": m.day, "status": m.status,
             "submission_id": m.submission_id, "recorded_at": m.recorded_at, "applied_at": m.applied_at,
             "case_id": m.case_id, "note": m.note} for m in session.scalars(q)]
