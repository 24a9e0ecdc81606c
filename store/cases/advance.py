"""The set-based advance: every due escalation and every overdue duty, in batches.

For each policy and school calendar in use, and each (source → target, day) pair that
:func:`machines.case_machine.escalation_pairs` reads off the machine for that policy, one
batch is moved and its history events, duties and document requests are written in the same
transaction, all with ``INSERT … SELECT`` from the moved rows staged in a temporary table (no row
goes to Python and back; see :func:`escalate_batch`). A case's streak is today's
school-day ordinal minus ``cases.opened_seq`` plus one, so "due" is a range on the index
``(policy, version, calendar, state, opened_seq)``: a sweep touches only the due rows, whatever
the number of open cases. On PostgreSQL the due rows are taken ``FOR UPDATE SKIP LOCKED`` so
concurrent runs split the work instead of doubling it; SQLite serialises writers (BEGIN
IMMEDIATE). ``UNIQUE(case_id, seq)`` on the history is the backstop: a transition can never be
written twice.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Callable

from sqlalchemy import (JSON, Boolean, Column, Date, DateTime, Integer, MetaData, String, Table, Text, and_, case as sa_case,
                        cast, delete, func, insert, literal, select, true, update)
from sqlalchemy.schema import CreateTable
from sqlalchemy.orm import Session, sessionmaker

from machines.calendar import CalendarYearUnknown
from machines.case_machine import escalation_pairs
from machines.policy_notices import wait_ends
from machines.states import CaseState, OPEN_STATES

from store.bulk import insert_rows
from store.calendars import CalendarNotLoaded, ensure_covered, last_seq_on_or_before
from store.cases.context import CaseContext, effective_day, escalation_at
from store.db import checkpoint, is_postgres, transaction
from store.cases.credit import credit_done_duties
from store.cases.effects import escalation_event_row, step_duty_rows
from store.cases.follow_up import renew
from store.cases.late_marks import apply_late_marks
from store.cases.leave_sweep import count_unapproved
from store.models import Case, CaseEvent, DocumentRequest, Duty, School, SchoolClass, SchoolDay

Progress = Callable[[str, int], None]

# Cases (or duties) per batch, one transaction each. PostgreSQL: small batches, so that several
# workers can share a sweep (SKIP LOCKED) and a lock is never held long. SQLite has one writer
# anyway, and every commit of a large batch ends in a WAL checkpoint that writes back the pages the
# batch touched: at 1 M open cases, 20 000 a batch moves 100 k due in 10 s instead of 13 s (5 000).
BATCH_SIZES = {"postgresql": 5_000, "sqlite": 20_000}


def default_batch_size(bind) -> int:
    """The batch size of the sweep for this database (``BATCH_SIZES``)."""
    return BATCH_SIZES.get(bind.dialect.name, 5_000)


@dataclass
class AdvanceReport:
    as_of: datetime
    transitions: Counter = field(default_factory=Counter)  # "source→target" → n
    overdue: int = 0
    late_marks: int = 0  # late marks applied before the sweep (store.cases.late_marks)
    follow_ups: int = 0  # follow-up rounds of referred cases raised (store.cases.follow_up)
    batches: int = 0
    escalated_case_ids: list[int] = field(default_factory=list)
    overdue_duty_ids: list[int] = field(default_factory=list)
    skipped: list[SkippedCalendar] = field(default_factory=list)  # calendars left out (their schools wait)

    @property
    def total_transitions(self) -> int:
        return sum(self.transitions.values())

    def as_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "transitions": dict(self.transitions),
                "total_transitions": self.total_transitions, "overdue": self.overdue, "late_marks": self.late_marks,
                "batches": self.batches, "follow_ups": self.follow_ups, "skipped": [k.as_dict() for k in self.skipped]}


def policy_groups(session: Session) -> list[tuple[str, int, str]]:
    """(policy name, version, calendar) of every open case, so each policy is swept on its own rules."""
    return [tuple(r) for r in session.execute(
        select(Case.policy_name, Case.policy_version, Case.calendar_key)
        .where(Case.state.in_([s.value for s in OPEN_STATES])).distinct()
    ).all()]


@dataclass(frozen=True)
class SweepStep:
    """One ladder move for the cases of one policy version and one school calendar."""

    policy_name: str
    policy_version: int
    calendar_key: str
    source: str
    target: str
    day: int
    max_opened_seq: int  # cases opened on or before this school day have reached ``day``
    requires: tuple[str, ...] = ()  # the target step's ``requires``: actions that must be on record …
    requires_count: int = 0         # … this many times, at or before ``as_of`` (seed 000: 经学校2次劝返)
    as_of: datetime | None = None
    # the target step waits after the case's actual entry into ``wait_state`` (Policy.waits_for: the legal
    # notice after the return notice's period): a case that entered it at or after ``wait_cutoff`` waits on
    wait_state: str | None = None
    wait_days: int = 0
    wait_cutoff: datetime | None = None

    @property
    def label(self) -> str:
        return f"{self.source}→{self.target}"


@dataclass(frozen=True)
class SkippedCalendar:
    """A school calendar the sweep left out: it cannot answer for the day or a deadline (no holiday list for
    ``year``); its schools' cases wait, the other calendars' move."""

    calendar_key: str
    year: int
    reason: str
    schools: tuple[str, ...] = ()  # the codes of the schools on this calendar

    def as_dict(self) -> dict:
        return {"calendar": self.calendar_key, "year": self.year, "reason": self.reason, "schools": list(self.schools)}


def _unknown_year(session: Session, ctx: CaseContext, calendar_key: str, today: date,
                  policy=None) -> CalendarYearUnknown | CalendarNotLoaded | None:
    """Why ``calendar_key`` cannot answer for ``today`` — or, for ``policy``, for the deadlines of the duties a
    move today would raise — if it is a year without a holiday list (None: it can)."""
    calendar = ctx.calendar(calendar_key)
    try:
        if policy is None:  # a calendar of schools without open cases: only its year matters
            if today.year not in calendar.holidays.years:
                raise CalendarYearUnknown(today.year, calendar_key)
            return None
        ensure_covered(session, {calendar_key: calendar}, today)
        longest = max((d.due_school_days for _, target, _ in escalation_pairs(policy)
                       for d in policy.step(target).duties), default=0) if policy else 0
        try:
            calendar.add_school_days(today, longest)
        except CalendarYearUnknown:
            raise
        except LookupError:  # past the last term: the per-case path says so, as before
            pass
    except (CalendarYearUnknown, CalendarNotLoaded) as exc:
        return exc
    return None


def plan(session: Session, ctx: CaseContext, as_of: datetime, skipped: list[SkippedCalendar] | None = None,
         ) -> list[SweepStep]:
    """Every move any open case could make at ``as_of``, in ladder order. A calendar that cannot answer for
    the day or for the deadlines of today's moves (a year without a holiday list: never escalate on a
    guess) raises — or, given ``skipped``, is left out and noted there with its schools, so that the other
    calendars' cases still move; every calendar a school uses is checked, with open cases or not."""
    steps: list[SweepStep] = []
    bad: dict[str, CalendarYearUnknown] = {}
    for name, version, calendar_key in sorted(policy_groups(session)):
        policy = ctx.policy(name, version)
        today = effective_day(policy, as_of)
        problem = bad.get(calendar_key) or _unknown_year(session, ctx, calendar_key, today, policy)
        if problem is not None:
            bad[calendar_key] = problem
            continue
        passed = last_seq_on_or_before(session, calendar_key, today)
        for source, target, day in escalation_pairs(policy):
            if passed - day + 1 >= 1:
                req = policy.step(target).requires
                steps.append(SweepStep(name, version, calendar_key, source.value, target.value, day, passed - day + 1,
                                       tuple(a.value for a in req.actions) if req else (), req.count if req else 0,
                                       as_of, **_wait_fields(session, policy, target, calendar_key, passed)))
    schools: dict[str, list[str]] = {}
    for code, key in session.execute(select(School.code, School.calendar_key).order_by(School.code)):
        schools.setdefault(key, []).append(code)
    for key in sorted(set(schools) - set(bad)):
        if key in ctx.calendars:
            problem = _unknown_year(session, ctx, key, as_of.date())
            if problem is not None:
                bad[key] = problem
    if bad and skipped is None:
        raise next(iter(bad.values()))
    for key, problem in sorted(bad.items()):
        skipped.append(SkippedCalendar(key, problem.year, str(problem), tuple(schools.get(key, ()))))
    return steps


def _required_events(step: SweepStep, case_id):
    """The history rows that count towards the target step's ``requires`` for ``case_id`` (correlated)."""
    ev = CaseEvent.__table__
    return (ev.c.case_id == case_id, ev.c.event.in_(step.requires), ev.c.at <= step.as_of)


def _wait_fields(session: Session, policy, target: CaseState, calendar_key: str, passed: int) -> dict:
    """The machine's ``waited`` guard as one cut-off per sweep step: ``passed`` school days are over, so a case
    whose entry into the awaited step fell on or before the school day numbered ``passed - days`` has waited
    ``days`` (the set-based form of ``store.cases.actions.step_waited``)."""
    wait = policy.waits_for(target)
    if wait is None:
        return {}
    state, days = wait
    last = session.scalar(select(SchoolDay.day).where(SchoolDay.calendar_key == calendar_key,
                                                      SchoolDay.seq == passed - days))
    cutoff = datetime.combine(last + timedelta(days=1), time.min) if last is not None else datetime.min
    return {"wait_state": state.value, "wait_days": days, "wait_cutoff": cutoff}


def _entered(step: SweepStep, case_id):
    """When the case actually entered the awaited step (its escalation event; correlated)."""
    ev = CaseEvent.__table__
    return select(func.max(ev.c.at)).where(ev.c.case_id == case_id, ev.c.event == "escalate",
                                           ev.c.to_state == step.wait_state).scalar_subquery()


def _hold_for_wait(session: Session, ctx: CaseContext, step: SweepStep, policy) -> None:
    """The moved cases that entered the awaited step late reach the target at the morning check of the day its
    period ends, never before (as ``escalate_through``): computed per (calendar, entry day), a few rows."""
    entered = _entered(step, _moved.c.id)
    day = cast(entered, Date) if is_postgres(session.bind) else func.date(entered)
    for cal, entered_on in session.execute(select(_moved.c.calendar_key, day).distinct()).all():
        if entered_on is None:
            continue
        entered_on = date.fromisoformat(entered_on) if isinstance(entered_on, str) else entered_on
        until = wait_ends(policy, lambda d, n: ctx.school_day_after(cal, d, n), entered_on, step.wait_days)
        session.execute(update(_moved).where(_moved.c.calendar_key == cal, day == literal(entered_on, Date),
                                             _moved.c.created_at < until).values(created_at=until))


def due_cases_query(step: SweepStep, limit: int, *, postgres: bool):
    c = Case.__table__
    q = (
        select(c.c.id)
        .where(c.c.policy_name == step.policy_name, c.c.policy_version == step.policy_version,
               c.c.calendar_key == step.calendar_key, c.c.state == step.source,
               c.c.opened_seq <= step.max_opened_seq)
        .order_by(c.c.opened_seq, c.c.id)
        .limit(limit)
    )
    if step.requires:  # the machine's guard, other half: Policy.escalation_due(…, done)
        ev = CaseEvent.__table__
        q = q.where(select(func.count()).select_from(ev).where(*_required_events(step, c.c.id))
                    .scalar_subquery() >= step.requires_count)
    if step.wait_state:  # the guard's ``waited`` (Policy.waits_for): the earlier notice's period has run
        q = q.where(func.coalesce(_entered(step, c.c.id), datetime.min) < step.wait_cutoff)
    return q.with_for_update(skip_locked=True) if postgres else q


# -- the batch's working tables: per connection, emptied at the start of every batch -----------------
_work = MetaData()
_moved = Table(  # the cases a batch moved, with their new version
    "adv_moved", _work, Column("id", Integer, primary_key=True, autoincrement=False), Column("version", Integer),
    Column("school_id", Integer), Column("class_id", Integer), Column("calendar_key", String(32)),
    Column("created_at", DateTime), Column("opened_on", Date), prefixes=["TEMPORARY"])
_days = Table(  # (calendar, opened_on) → when the streak reached the step
    "adv_days", _work, Column("calendar_key", String(32), primary_key=True), Column("opened_on", Date, primary_key=True),
    Column("entry_at", DateTime), prefixes=["TEMPORARY"])
_due = Table(  # (calendar, opened_on, duty) → its deadline
    "adv_duty_due", _work, Column("calendar_key", String(32), primary_key=True),
    Column("opened_on", Date, primary_key=True), Column("action", String(32), primary_key=True),
    Column("role", String(32)), Column("due_at", DateTime), prefixes=["TEMPORARY"])
_owners = Table(  # (school, role) → who owes the duty when the class names nobody
    "adv_owners", _work, Column("school_id", Integer, primary_key=True), Column("role", String(32), primary_key=True),
    Column("owner_id", Integer), prefixes=["TEMPORARY"])
_kinds = Table("adv_kinds", _work, Column("kind", String(40), primary_key=True), prefixes=["TEMPORARY"])
_WORK_TABLES = (_moved, _days, _due, _owners, _kinds)


def _work_tables(session: Session) -> None:
    """Create (if this connection has not got them: a rolled-back savepoint may have taken them) and
    empty the batch's temporary tables — on PostgreSQL in one round trip."""
    conn = session.connection()
    postgres = is_postgres(conn)
    sql = []
    for t in _WORK_TABLES:
        ddl = str(CreateTable(t, if_not_exists=True).compile(dialect=conn.dialect)).strip()
        sql += [ddl + (" ON COMMIT DELETE ROWS" if postgres else ""), f"DELETE FROM {t.name}"]
    if postgres:  # no parameters: psycopg sends the statements as one simple query
        conn.exec_driver_sql("; ".join(sql))
    else:  # in-process: nothing to save, and sqlite3 runs one statement per call
        for stmt in sql:
            conn.exec_driver_sql(stmt)


def escalate_batch(session: Session, ctx: CaseContext, step: SweepStep, as_of: datetime, limit: int) -> list[int]:
    """Move up to ``limit`` due cases one step; returns their ids.

    Everything happens in the database, in one transaction: the batch is taken (PostgreSQL:
    ``FOR UPDATE SKIP LOCKED``, one ``WITH moved AS (UPDATE … RETURNING …) INSERT INTO adv_moved``;
    SQLite, which holds the write lock since ``BEGIN IMMEDIATE``: the due rows copied into
    ``adv_moved``, then one UPDATE of those ids), and the history events, duties and document
    requests are written with ``INSERT … SELECT`` from the moved rows. Python computes only what the
    school calendar and the duty owners decide — per (calendar, opening day) and per (school, role),
    a few dozen rows a batch — never a row per case.
    """
    policy = ctx.policy(step.policy_name, step.policy_version)
    target = policy.step(CaseState(step.target))
    postgres = is_postgres(session.bind)
    _work_tables(session)
    c = Case.__table__
    moved_cols = [_moved.c.id, _moved.c.version, _moved.c.school_id, _moved.c.class_id, _moved.c.calendar_key,
                  _moved.c.created_at, _moved.c.opened_on]
    due = due_cases_query(step, limit, postgres=postgres).subquery("due")
    if postgres:  # UPDATE … FROM (due): a nested loop on the primary key (IN (…) plans a scan of cases)
        moved = (update(c).where(c.c.id == due.c.id, c.c.state == step.source)
                 .values(state=step.target, version=c.c.version + 1, updated_at=as_of)
                 .returning(c.c.id, c.c.version, c.c.school_id, c.c.class_id, c.c.calendar_key, c.c.created_at,
                            c.c.opened_on).cte("moved"))
        session.execute(insert(_moved).from_select(moved_cols, select(moved)))
    else:
        session.execute(insert(_moved).from_select(moved_cols, select(
            c.c.id, c.c.version + 1, c.c.school_id, c.c.class_id, c.c.calendar_key, c.c.created_at, c.c.opened_on)
            .join(due, due.c.id == c.c.id)))
        session.execute(update(c).where(c.c.id.in_(select(_moved.c.id)))
                        .values(state=step.target, version=c.c.version + 1, updated_at=as_of))
    if step.requires:  # not before the condition held: the required action's n-th record (as escalate_through)
        ev = CaseEvent.__table__
        met = (select(ev.c.at).where(*_required_events(step, _moved.c.id)).order_by(ev.c.at, ev.c.seq)
               .offset(step.requires_count - 1).limit(1).scalar_subquery())
        session.execute(update(_moved).where(met > _moved.c.created_at).values(created_at=met))
    if step.wait_state:  # nor before the earlier notice's period has run
        _hold_for_wait(session, ctx, step, policy)
    # the calendar's answers for the batch's opening days, the owners for its schools
    opened = session.execute(select(_moved.c.calendar_key, _moved.c.opened_on).distinct()).all()
    if not opened:
        return []
    days, dues = [], []
    for cal, opened_on in opened:
        entry = ctx.school_day_after(cal, opened_on, step.day - 1)
        days.append({"calendar_key": cal, "opened_on": opened_on, "entry_at": escalation_at(policy, entry, datetime.min)})
        dues += [{"calendar_key": cal, "opened_on": opened_on, "action": d.action.value, "role": d.role,
                  "due_at": ctx.due_at(cal, entry, d.due_school_days, d.due_time)} for d in target.duties]
    session.execute(insert(_days), days)
    roles = sorted({d.role for d in target.duties})
    if roles:
        session.execute(insert(_owners), [
            {"school_id": sid, "role": role, "owner_id": ctx.owners.resolve(sid, None, role)}
            for sid in session.scalars(select(_moved.c.school_id).distinct()) for role in roles])
        session.execute(insert(_due), dues)
    kinds = list(dict.fromkeys(target.documents))
    if kinds:
        session.execute(insert(_kinds), [{"kind": k} for k in kinds])
    # history: one escalation event per moved case, at max(the day's morning check, the case's creation)
    event = escalation_event_row(case_id=0, seq=0, source=CaseState(step.source), step=target, policy=policy,
                                 at=as_of, now=as_of)
    m, d = _moved, _days
    late = m.c.created_at > d.c.entry_at  # a case created after the morning its streak reached the step
    at = sa_case((late, m.c.created_at), else_=d.c.entry_at)
    const = lambda name, col: literal(event[name], col.type)  # noqa: E731
    ev = CaseEvent.__table__
    session.execute(insert(ev).from_select(
        ["case_id", "seq", "event", "from_state", "to_state", "actor", "at", "recorded_at", "reason", "payload",
         "idempotency_key"],
        select(m.c.id, m.c.version, const("event", ev.c.event), const("from_state", ev.c.from_state),
               const("to_state", ev.c.to_state), const("actor", ev.c.actor), at, literal(as_of, DateTime),
               const("reason", ev.c.reason), literal(event["payload"], JSON), literal(None, String))
        .join(d, and_(d.c.calendar_key == m.c.calendar_key, d.c.opened_on == m.c.opened_on))))
    # duties: owner = the class's head teacher for that role, else the school's (or its township's…) named person
    if target.duties:
        dd, k, o, du = _due, SchoolClass.__table__, _owners, Duty.__table__
        owner = sa_case((and_(dd.c.role == "head_teacher", k.c.head_teacher_id.is_not(None)), k.c.head_teacher_id),
                        else_=o.c.owner_id)
        session.execute(insert(du).from_select(
            ["case_id", "step", "action", "role", "owner_id", "due_at", "status", "created_at", "done_at", "done_late",
             "overdue_at"],
            select(m.c.id, literal(step.target, du.c.step.type), dd.c.action, dd.c.role, owner, dd.c.due_at,
                   literal("open", du.c.status.type), literal(as_of, DateTime), literal(None, DateTime),
                   literal(False, Boolean), literal(None, DateTime))
            .join(d, and_(d.c.calendar_key == m.c.calendar_key, d.c.opened_on == m.c.opened_on))
            .join(dd, and_(dd.c.calendar_key == m.c.calendar_key, dd.c.opened_on == m.c.opened_on))
            .join(o, and_(o.c.school_id == m.c.school_id, o.c.role == dd.c.role))
            .outerjoin(k, k.c.id == m.c.class_id)
            .where(~late)))
        # the rare late-created case: its duties count from the day it was created (as the per-case path)
        rest = session.execute(select(m.c.id, m.c.school_id, m.c.class_id, m.c.calendar_key, m.c.created_at)
                               .join(d, and_(d.c.calendar_key == m.c.calendar_key, d.c.opened_on == m.c.opened_on))
                               .where(late)).all()
        insert_rows(session, du, [row for r in rest for row in step_duty_rows(
            ctx, target, case_id=r.id, school_id=r.school_id, class_id=r.class_id, calendar_key=r.calendar_key,
            entry_day=r.created_at.date(), now=as_of)])
        credit_done_duties(session, du.c.case_id.in_(select(m.c.id)))  # an act recorded before the step: done
    if kinds:
        dr = DocumentRequest.__table__
        session.execute(insert(dr).from_select(
            ["case_id", "kind", "event_seq", "status", "requested_at", "document_id", "error"],
            select(m.c.id, _kinds.c.kind, m.c.version, literal("queued", dr.c.status.type), literal(as_of, DateTime),
                   literal(None, Integer), literal(None, Text)).select_from(m).join(_kinds, true())))
    return list(session.scalars(select(m.c.id).order_by(m.c.id)))


def overdue_batch(session: Session, as_of: datetime, limit: int) -> list[int]:
    d = Duty.__table__
    # ORDER BY due_at, id follows ix_duties_status_due; ORDER BY id alone makes SQLite scan every duty
    q = select(d.c.id).where(d.c.status == "open", d.c.due_at <= as_of).order_by(d.c.due_at, d.c.id).limit(limit)
    if is_postgres(session.bind):
        q = q.with_for_update(skip_locked=True)
    while True:  # a batch whose every duty had its act recorded (now done) is followed by the next one
        ids = list(session.scalars(q))
        if not ids:
            return []
        credited = credit_done_duties(session, d.c.id.in_(ids))  # never overdue when its act is recorded
        if credited:
            ids = list(session.scalars(select(d.c.id).where(d.c.id.in_(ids), d.c.status == "open")
                                       .order_by(d.c.due_at, d.c.id)))
        if ids:
            session.execute(update(d).where(d.c.id.in_(ids), d.c.status == "open")
                            .values(status="overdue", overdue_at=as_of))
            return ids


def advance(
    factory: sessionmaker[Session], as_of: datetime, *, batch_size: int | None = None, progress: Progress | None = None,
    calendars: dict | None = None, keep_ids: bool = True,
) -> AdvanceReport:
    """Apply every escalation due at ``as_of``, mark every overdue duty, then raise the next follow-up round
    of every referred case whose last round is done or overdue. Safe to run twice."""
    report = AdvanceReport(as_of)
    batch_size = batch_size or default_batch_size(factory.kw["bind"])
    with transaction(factory) as s:  # marks sent late first, in their place (store.cases.late_marks)
        ctx = CaseContext(s, **({"calendars": calendars} if calendars else {}))
        count_unapproved(s, ctx, as_of)  # unapproved leave and transfers count (store.cases.leave)
        report.late_marks = apply_late_marks(s, ctx, as_of)
    with transaction(factory) as s:
        ctx = CaseContext(s, **({"calendars": calendars} if calendars else {}))
        steps = plan(s, ctx, as_of, report.skipped)
        ctx.owners.preload()  # the context outlives this session: everything it needs is cached

    def write_back(label: str) -> None:  # SQLite: the batches' WAL written back within the run (store.db)
        checkpoint(factory)
        if progress:
            progress(label, 0)

    for step in steps:
        while True:
            with transaction(factory) as s:
                ids = escalate_batch(s, ctx, step, as_of, batch_size)
            if not ids:
                break
            report.batches += 1
            report.transitions[step.label] += len(ids)
            if keep_ids:
                report.escalated_case_ids += ids
            if progress:
                progress(step.label, len(ids))
    if report.total_transitions:
        write_back("checkpoint")
    while True:
        with transaction(factory) as s:
            ids = overdue_batch(s, as_of, batch_size)
        if not ids:
            break
        report.batches += 1
        report.overdue += len(ids)
        if keep_ids:
            report.overdue_duty_ids += ids
        if progress:
            progress("overdue", len(ids))
    if report.overdue:
        write_back("overdue")
    with transaction(factory) as s:  # referred cases: the next follow-up rounds, once the overdue are marked
        report.follow_ups = renew(s, CaseContext(s, **({"calendars": calendars} if calendars else {})), as_of)
    return report
