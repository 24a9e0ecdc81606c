"""The set-based advance: every due escalation and every overdue duty, in batches.

For each policy and school calendar in use, :func:`plan` reads the (source → target, day) pairs
:func:`machines.case_machine.escalation_pairs` takes off the machine for that policy; a batch then
moves the due cases of ALL those steps at once — one ``UNION ALL`` of each step's range
(:func:`due_predicate`, the one place that says what "due" is) — and writes their history events,
duties and document requests in the same transaction, with ``INSERT … SELECT`` from the moved rows
staged in a temporary table joined to a table of the batch's steps (no row goes to Python and back;
see :func:`escalate_many`). A case's streak is today's school-day ordinal minus ``cases.opened_seq``
plus one, so "due" is a range on the index ``(policy, version, calendar, state, opened_seq)``: a sweep
touches only the due rows, whatever the number of open cases. On PostgreSQL the due rows are taken
``FOR UPDATE SKIP LOCKED`` so concurrent runs split the work instead of doubling it; SQLite
serialises writers (BEGIN IMMEDIATE) and checkpoints its WAL once per run (``store.db.one_checkpoint``).
``UNIQUE(case_id, seq)`` on the history is the backstop: a transition can never be written twice.
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Callable, Sequence

from sqlalchemy import (ARRAY, JSON, Boolean, Column, Date, DateTime, Integer, MetaData, String, Table, Text, and_, case as sa_case,
                        bindparam, cast, exists, func, insert, literal, select, tuple_, union_all,
                        update)
from sqlalchemy.schema import CreateTable
from sqlalchemy.orm import Session, sessionmaker

from machines.calendar import CalendarYearUnknown
from machines.case_machine import escalation_pairs
from machines.policy_notices import wait_ends
from machines.states import Action, CaseState, OPEN_STATES

from store.bulk import insert_rows
from store.calendars import CalendarNotLoaded, ensure_covered, last_seq_on_or_before
from store.cases.context import CaseContext, effective_day, escalation_at
from store.db import is_postgres, one_checkpoint, transaction
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
    """(policy name, version, calendar) of every open case, so each policy is swept on its own rules.

    SQLite reads the distinct prefixes off ``ix_cases_due`` by itself; PostgreSQL's DISTINCT reads every
    case, so there it is a skip scan of that index: one seek per (policy, version, calendar) there is —
    a few — and one for its open cases, whatever the number of cases."""
    c = Case.__table__
    if not is_postgres(session.bind):
        return [tuple(r) for r in session.execute(
            select(c.c.policy_name, c.c.policy_version, c.c.calendar_key)
            .where(c.c.state.in_([s.value for s in OPEN_STATES])).distinct()).all()]
    key = (c.c.policy_name, c.c.policy_version, c.c.calendar_key)
    after = [bindparam(f"k{i}", type_=k.type) for i, k in enumerate(key)]
    first = select(*key).order_by(*key).limit(1)
    following = first.where(tuple_(*key) > tuple_(*after))
    has_open = select(literal(1)).where(exists(select(c.c.id).where(
        *(k == v for k, v in zip(key, after)), c.c.state.in_([s.value for s in OPEN_STATES]))))
    groups, row = [], session.execute(first).first()
    while row is not None:
        params = {f"k{i}": v for i, v in enumerate(row)}
        if session.scalar(has_open, params):
            groups.append(tuple(row))
        row = session.execute(following, params).first()
    return groups


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


def _entered(step: SweepStep, case_id, correlate=None):
    """When the case actually entered the awaited step (its escalation event; correlated)."""
    ev = CaseEvent.__table__
    q = select(func.max(ev.c.at)).where(ev.c.case_id == case_id, ev.c.event == "escalate",
                                        ev.c.to_state == step.wait_state)
    return (q.correlate(correlate) if correlate is not None else q).scalar_subquery()


def _hold_for_wait(session: Session, ctx: CaseContext, step: SweepStep, step_no: int, policy) -> None:
    """The moved cases of ``step`` that entered the awaited step late reach the target at the morning check of
    the day its period ends, never before (as ``escalate_through``): computed per (calendar, entry day)."""
    entered = _entered(step, _moved.c.id)
    day = cast(entered, Date) if is_postgres(session.bind) else func.date(entered)
    mine = _moved.c.step_no == step_no
    for cal, entered_on in session.execute(select(_moved.c.calendar_key, day).where(mine).distinct()).all():
        if entered_on is None:
            continue
        entered_on = date.fromisoformat(entered_on) if isinstance(entered_on, str) else entered_on
        until = wait_ends(policy, lambda d, n: ctx.school_day_after(cal, d, n), entered_on, step.wait_days)
        session.execute(update(_moved).where(mine, _moved.c.calendar_key == cal, day == literal(entered_on, Date),
                                             _moved.c.created_at < until).values(created_at=until))


def due_predicate(step: SweepStep, cases=None) -> list:
    """THE escalation predicate of ``step`` on ``cases`` (the ``cases`` table or an alias of it): the one
    place that says which cases are due for a move, used by every sweep statement (one step or all)."""
    c = cases if cases is not None else Case.__table__
    conds = [c.c.policy_name == step.policy_name, c.c.policy_version == step.policy_version,
             c.c.calendar_key == step.calendar_key, c.c.state == step.source, c.c.opened_seq <= step.max_opened_seq]
    if step.requires:  # the machine's guard, other half: Policy.escalation_due(…, done)
        ev = CaseEvent.__table__
        conds.append(select(func.count()).select_from(ev).where(*_required_events(step, c.c.id))
                     .correlate(c).scalar_subquery() >= step.requires_count)
    if step.wait_state:  # the guard's ``waited`` (Policy.waits_for): the earlier notice's period has run
        conds.append(func.coalesce(_entered(step, c.c.id, correlate=c), datetime.min) < step.wait_cutoff)
    return conds


def due_cases_query(step: SweepStep, limit: int, *, postgres: bool):
    """The ids of up to ``limit`` cases due for ``step``, in opening order (one step)."""
    c = Case.__table__
    q = select(c.c.id).where(*due_predicate(step, c)).order_by(c.c.opened_seq, c.c.id).limit(limit)
    return q.with_for_update(skip_locked=True) if postgres else q


def _as_steps(steps: SweepStep | Sequence[SweepStep]) -> list[SweepStep]:
    return [steps] if isinstance(steps, SweepStep) else list(steps)


def due_many_query(steps: Sequence[SweepStep], limit: int, *, postgres: bool):
    """Up to ``limit`` cases due for any of ``steps`` — ``(id, step_no)``, ``step_no`` the step's place in
    ``steps`` — in ONE statement: a ``UNION ALL`` of each step's range on ``ix_cases_due`` (a case is in
    one state, so it matches one step at most), read until the limit. PostgreSQL: the rows are then
    joined back to ``cases`` and taken ``FOR UPDATE SKIP LOCKED`` (a UNION cannot be locked itself), the
    state checked again on the locked row."""
    c = Case.__table__
    parts = [select(c.c.id, literal(k, Integer).label("step_no"), literal(st.source, String).label("source"))
             .where(*due_predicate(st, c)) for k, st in enumerate(steps)]
    u = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("u")
    if not postgres:
        return select(u.c.id, u.c.step_no).limit(limit)
    k = c.alias("k")
    return (select(k.c.id, u.c.step_no).join(u, and_(u.c.id == k.c.id, k.c.state == u.c.source)).limit(limit)
            .with_for_update(of=k, skip_locked=True))


# -- the batch's working tables: per connection, emptied at the start of every batch -----------------
_work = MetaData()
_steps = Table(  # the batch's steps: what a move to each writes (constants of its event)
    "adv_steps", _work, Column("step_no", Integer, primary_key=True, autoincrement=False),
    Column("source", String(20)), Column("target", String(20)), Column("event", String(32)),
    Column("actor", String(64)), Column("reason", String(255)), Column("payload", JSON), prefixes=["TEMPORARY"])
_moved = Table(  # the cases a batch moved, with their step and new version
    "adv_moved", _work, Column("id", Integer, primary_key=True, autoincrement=False), Column("step_no", Integer),
    Column("version", Integer), Column("school_id", Integer), Column("class_id", Integer),
    Column("calendar_key", String(32)), Column("created_at", DateTime), Column("opened_on", Date), prefixes=["TEMPORARY"])
_days = Table(  # (step, calendar, opened_on) → when the streak reached the step
    "adv_days", _work, Column("step_no", Integer, primary_key=True, autoincrement=False),
    Column("calendar_key", String(32), primary_key=True), Column("opened_on", Date, primary_key=True),
    Column("entry_at", DateTime), prefixes=["TEMPORARY"])
_due = Table(  # (step, calendar, opened_on, duty) → its deadline
    "adv_duty_due", _work, Column("step_no", Integer, primary_key=True, autoincrement=False),
    Column("calendar_key", String(32), primary_key=True),
    Column("opened_on", Date, primary_key=True), Column("action", String(32), primary_key=True),
    Column("role", String(32)), Column("due_at", DateTime), prefixes=["TEMPORARY"])
_owners = Table(  # (school, role) → who owes the duty when the class names nobody
    "adv_owners", _work, Column("school_id", Integer, primary_key=True), Column("role", String(32), primary_key=True),
    Column("owner_id", Integer), prefixes=["TEMPORARY"])
_kinds = Table("adv_kinds", _work, Column("step_no", Integer, primary_key=True, autoincrement=False),
               Column("kind", String(40), primary_key=True), prefixes=["TEMPORARY"])
# PostgreSQL compiles a statement whose estimated cost passes ``jit_above_cost`` to machine code: the
# sweep's statements read a few thousand rows, and their estimates (a LIMIT over a range with a
# correlated subquery) pass it — 0.3–0.7 s of compilation for a statement that runs in 10 ms.
NO_JIT = "SET LOCAL jit = off"
# SQLite: a multi-row UPDATE that could fail half-way (a NOT NULL column: ON CONFLICT ABORT) keeps a statement
# journal — the original image of every page it changes, written to a temporary file — so that it can be undone
# alone. The sweep's UPDATEs (the cases moved, the duties marked overdue) run in a batch's transaction that is
# rolled back whole on any error anyway: ``OR ROLLBACK`` says so, and SQLite keeps no statement journal for them
# (at 100 k open, 24 k of the 95 k pages a run wrote; the inserts keep theirs: their foreign keys need one).
NO_STATEMENT_JOURNAL = "OR ROLLBACK"
_WORK_TABLES = (_steps, _moved, _days, _due, _owners, _kinds)


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
        conn.exec_driver_sql("; ".join([NO_JIT] + sql))
    else:  # in-process: nothing to save, and sqlite3 runs one statement per call
        for stmt in sql:
            conn.exec_driver_sql(stmt)



@contextmanager
def _hash_joins(session: Session):
    """PostgreSQL: the statement inside joins the batch's rows (``adv_moved``, thousands) to its small working
    tables, which have no statistics: the planner's guess of one row each made it probe them by index once per
    row and table (and ``classes`` once per duty) — a fifth to a third of the duties INSERT's time at 1 M open
    (pgesc; the documents' INSERT, one join, was hashed already).
    Hash joins instead, for that statement only (``SET LOCAL``, back to the default after it)."""
    if not is_postgres(session.bind):
        yield
        return
    conn = session.connection()
    conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
    try:
        yield
    finally:
        conn.exec_driver_sql("SET LOCAL enable_nestloop TO DEFAULT")


def _insert_columns(session: Session, table: Table, names: Sequence[str], rows: list[tuple]) -> None:
    """Insert ``rows`` (tuples in the order of ``names``) into a working table: on PostgreSQL one statement whose
    parameters are one array a column (``unnest``), not one VALUES row a row (a batch's owners: ~1,300 rows, 0.9 s
    over a sweep of 100 k at 1 M open); on SQLite (in-process) ``executemany``."""
    if not rows:
        return
    if not is_postgres(session.bind):
        session.execute(insert(table), [dict(zip(names, r)) for r in rows])
        return
    cols = [table.c[n] for n in names]
    arrays = [cast(bindparam(f"a{i}", value=[r[i] for r in rows], type_=ARRAY(col.type)), ARRAY(col.type))
              for i, col in enumerate(cols)]
    session.execute(insert(table).from_select(names, select(func.unnest(*arrays).table_valued(*names).render_derived())))


def _move_steps_pg(session: Session, steps: list[SweepStep], as_of: datetime, limit: int, moved_cols,
                   done: set[int] | None = None) -> None:
    """PostgreSQL: lock and move each step's due rows in ONE statement a step, straight off its index range —
    ``WITH moved AS (UPDATE cases … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING …)``
    into ``adv_moved`` — until ``limit`` cases are moved. The steps go in reverse ladder order, so a case a
    step moved into the next step's source is not taken again in the same batch (each statement sees the
    batch's earlier moves); ``adv_moved`` is checked too. A lock taken through a join of all the steps'
    ranges re-checks that whole join for every row another worker changed (minutes at 1 M open): each
    statement here locks one index range. A step in ``done`` came back short in an earlier batch and nothing has
    entered its source since (:func:`feeders`): it is not read again — a step whose range holds many cases
    that are not due (a ``requires`` or a notice's wait) costs a scan of them per statement (0.35 s a batch
    at 1 M open). A step that comes back short now, with no due case left that another worker holds locked
    (:func:`_still_due`), is added to ``done``."""
    c = Case.__table__
    r = c.alias("r")  # the range read (and locked): an alias, so that it is not correlated to the UPDATE
    left = limit
    for k in reversed(range(len(steps))):
        if done is not None and k in done:
            continue
        st = steps[k]
        pick = (select(r.c.id).where(*due_predicate(st, r)).limit(left).with_for_update(skip_locked=True)
                .scalar_subquery())
        moved = (update(c).where(c.c.id.in_(pick), c.c.state == st.source,
                                 ~exists(select(_moved.c.id).where(_moved.c.id == c.c.id)))
                 .values(state=st.target, version=c.c.version + 1, updated_at=as_of)
                 .returning(c.c.id, literal(k, Integer).label("step_no"), c.c.version, c.c.school_id, c.c.class_id,
                            c.c.calendar_key, c.c.created_at, c.c.opened_on).cte("moved"))
        ins = insert(_moved).from_select(moved_cols, select(moved)).cte("ins")
        got = session.scalar(select(func.count()).select_from(moved).add_cte(ins))
        if done is not None and got < left and not _still_due(session, st):
            done.add(k)
        left -= got
        if left <= 0:
            break


def _still_due(session: Session, step: SweepStep) -> bool:
    """Whether a case is still due for ``step`` after the statement that came back short: one that statement
    skipped, locked by another worker (``SKIP LOCKED``). Such a step is not read to its end — the other worker
    may roll back — so it is not marked ``done`` and the next batch reads it again (issue 20, pgwrites). A
    plain read (no lock, no wait) of the step's range; this batch's own moves no longer match its source."""
    r = Case.__table__.alias("r")
    return bool(session.scalar(select(exists(select(r.c.id).where(*due_predicate(step, r))))))


def feeders(steps: Sequence[SweepStep]) -> dict[int, set[int]]:
    """For each step, the steps whose source is its target (same policy version and calendar): a case it
    moves may be due for them in the next batch (a sweep that catches up)."""
    key = lambda st: (st.policy_name, st.policy_version, st.calendar_key)  # noqa: E731
    return {j: {i for i, b in enumerate(steps) if key(b) == key(a) and b.source == a.target}
            for j, a in enumerate(steps)}


def escalate_batch(session: Session, ctx: CaseContext, steps: SweepStep | Sequence[SweepStep], as_of: datetime,
                   limit: int) -> list[int]:
    """Move up to ``limit`` cases due for ``steps`` (one step or all of a sweep's) one step; returns their ids."""
    return sorted(i for i, _ in escalate_many(session, ctx, _as_steps(steps), as_of, limit))


def escalate_many(session: Session, ctx: CaseContext, steps: list[SweepStep], as_of: datetime,
                  limit: int, done: set[int] | None = None) -> list[tuple[int, int]]:
    """Move up to ``limit`` cases due for any of ``steps`` one step; returns ``(case id, step_no)`` pairs.

    Everything happens in the database, in one transaction and one statement per table: the batch is
    taken across all the steps (PostgreSQL: one locking ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
    LOCKED LIMIT n) RETURNING`` a step into ``adv_moved``, :func:`_move_steps_pg`; SQLite, which holds
    the write lock since ``BEGIN IMMEDIATE``: the due rows copied into ``adv_moved``, then one
    ``UPDATE … FROM adv_moved``), and the history events, duties and document requests are written
    with ``INSERT … SELECT`` from the moved rows joined to the step table ``adv_steps``. Python computes
    only what the school calendar and the duty owners decide — per (step, calendar, opening day) and
    per (school, role), a few dozen rows a batch — never a row per case. A case a batch moved may be
    due for its next step too (a sweep that catches up): the next batch takes it, as the ladder would.
    """
    if not steps:
        return []
    postgres = is_postgres(session.bind)
    if done is not None and not postgres:
        done = None  # SQLite reads every step in one statement
    if done is not None and len(done) == len(steps):
        return []
    _work_tables(session)
    policies = [ctx.policy(st.policy_name, st.policy_version) for st in steps]
    targets = [p.step(CaseState(st.target)) for p, st in zip(policies, steps)]
    step_rows = []
    for k, (st, policy, target) in enumerate(zip(steps, policies, targets)):
        event = escalation_event_row(case_id=0, seq=0, source=CaseState(st.source), step=target, policy=policy,
                                     at=as_of, now=as_of)
        step_rows.append({"step_no": k, "source": st.source, "target": st.target, "event": event["event"],
                          "actor": event["actor"], "reason": event["reason"], "payload": event["payload"]})
    session.execute(insert(_steps), step_rows)
    c, s = Case.__table__, _steps
    moved_cols = [_moved.c.id, _moved.c.step_no, _moved.c.version, _moved.c.school_id, _moved.c.class_id,
                  _moved.c.calendar_key, _moved.c.created_at, _moved.c.opened_on]
    if postgres:
        _move_steps_pg(session, steps, as_of, limit, moved_cols, done)
    else:
        due = due_many_query(steps, limit, postgres=False).subquery("due")
        session.execute(insert(_moved).from_select(moved_cols, select(
            c.c.id, due.c.step_no, c.c.version + 1, c.c.school_id, c.c.class_id, c.c.calendar_key, c.c.created_at,
            c.c.opened_on).join(due, due.c.id == c.c.id)))
        session.execute(update(c).prefix_with(NO_STATEMENT_JOURNAL)
                        .where(c.c.id == _moved.c.id, s.c.step_no == _moved.c.step_no)
                        .values(state=s.c.target, version=_moved.c.version, updated_at=as_of))
    ev = CaseEvent.__table__
    for k, st in enumerate(steps):
        if st.requires:  # not before the condition held: the required action's n-th record (as escalate_through)
            met = (select(ev.c.at).where(*_required_events(st, _moved.c.id)).order_by(ev.c.at, ev.c.seq)
                   .offset(st.requires_count - 1).limit(1).scalar_subquery())
            session.execute(update(_moved).where(_moved.c.step_no == k, met > _moved.c.created_at)
                            .values(created_at=met))
        if st.wait_state:  # nor before the earlier notice's period has run
            _hold_for_wait(session, ctx, st, k, policies[k])
    # the calendar's answers for the batch's (step, opening day)s, the owners for its schools
    opened = session.execute(select(_moved.c.step_no, _moved.c.calendar_key, _moved.c.opened_on).distinct()).all()
    if not opened:
        return []
    days, dues, roles, kinds = [], [], set(), []
    for k, cal, opened_on in opened:
        st, policy, target = steps[k], policies[k], targets[k]
        entry = ctx.school_day_after(cal, opened_on, st.day - 1)
        days.append({"step_no": k, "calendar_key": cal, "opened_on": opened_on,
                     "entry_at": escalation_at(policy, entry, datetime.min)})
        dues += [{"step_no": k, "calendar_key": cal, "opened_on": opened_on, "action": d.action.value, "role": d.role,
                  "due_at": ctx.due_at(cal, entry, d.due_school_days, d.due_time)} for d in target.duties]
        roles |= {d.role for d in target.duties}
    for k in sorted({k for k, _, _ in opened}):
        kinds += [{"step_no": k, "kind": kind} for kind in dict.fromkeys(targets[k].documents)]
    session.execute(insert(_days), days)
    if roles:
        owners = [(sid, role, ctx.owners.resolve(sid, None, role))
                  for sid in session.scalars(select(_moved.c.school_id).distinct()) for role in sorted(roles)]
        _insert_columns(session, _owners, ("school_id", "role", "owner_id"), owners)
    if dues:
        session.execute(insert(_due), dues)
    if kinds:
        session.execute(insert(_kinds), kinds)
    # history: one escalation event per moved case, at max(the day's morning check, the case's creation)
    m, d = _moved, _days
    on_day = and_(d.c.step_no == m.c.step_no, d.c.calendar_key == m.c.calendar_key, d.c.opened_on == m.c.opened_on)
    late = m.c.created_at > d.c.entry_at  # a case created after the morning its streak reached the step
    at = sa_case((late, m.c.created_at), else_=d.c.entry_at)
    with _hash_joins(session):
        session.execute(insert(ev).from_select(
            ["case_id", "seq", "event", "from_state", "to_state", "actor", "at", "recorded_at", "reason", "payload",
             "idempotency_key"],
            select(m.c.id, m.c.version, s.c.event, s.c.source, s.c.target, s.c.actor, at, literal(as_of, DateTime),
                   s.c.reason, s.c.payload, literal(None, String))
            .join(s, s.c.step_no == m.c.step_no).join(d, on_day)))
    # duties: owner = the class's head teacher for that role, else the school's (or its township's…) named person
    if dues:
        dd, kl, o, du = _due, SchoolClass.__table__, _owners, Duty.__table__
        owner = sa_case((and_(dd.c.role == "head_teacher", kl.c.head_teacher_id.is_not(None)), kl.c.head_teacher_id),
                        else_=o.c.owner_id)
        with _hash_joins(session):
            session.execute(insert(du).from_select(
                ["case_id", "step", "action", "role", "owner_id", "due_at", "status", "created_at", "done_at",
                 "done_late", "overdue_at"],
                select(m.c.id, s.c.target, dd.c.action, dd.c.role, owner, dd.c.due_at,
                       literal("open", du.c.status.type), literal(as_of, DateTime), literal(None, DateTime),
                       literal(False, Boolean), literal(None, DateTime))
                .join(s, s.c.step_no == m.c.step_no).join(d, on_day)
                .join(dd, and_(dd.c.step_no == m.c.step_no, dd.c.calendar_key == m.c.calendar_key,
                               dd.c.opened_on == m.c.opened_on))
                .join(o, and_(o.c.school_id == m.c.school_id, o.c.role == dd.c.role))
                .outerjoin(kl, kl.c.id == m.c.class_id)
                .where(~late)))
        # the rare late-created case: its duties count from the day it was created (as the per-case path)
        rest = session.execute(select(m.c.id, m.c.step_no, m.c.school_id, m.c.class_id, m.c.calendar_key,
                                      m.c.created_at).join(d, on_day).where(late)).all()
        insert_rows(session, du, [row for r in rest for row in step_duty_rows(
            ctx, targets[r.step_no], case_id=r.id, school_id=r.school_id, class_id=r.class_id,
            calendar_key=r.calendar_key, entry_day=r.created_at.date(), now=as_of)])
        # an act recorded before the step: its duty is done at once. Which moved cases have one is read off
        # their history (:func:`_acted`); the few found are credited (store.cases.credit)
        acts = sorted({a for t in targets for a in (d.action.value for d in t.duties)})
        acted = list(session.scalars(select(m.c.id).where(_acted(session, acts, m.c.id))))
        for i in range(0, len(acted), 5000):
            credit_done_duties(session, du.c.case_id.in_(acted[i:i + 5000]))
    if kinds:
        dr = DocumentRequest.__table__
        session.execute(insert(dr).from_select(
            ["case_id", "kind", "event_seq", "status", "requested_at", "document_id", "error"],
            select(m.c.id, _kinds.c.kind, m.c.version, literal("queued", dr.c.status.type), literal(as_of, DateTime),
                   literal(None, Integer), literal(None, Text)).select_from(m)
            .join(_kinds, _kinds.c.step_no == m.c.step_no)))
    # fetched at once (``all``: the driver's fetchall), not a row at a time: 5,000 rows a batch
    return [tuple(r) for r in session.execute(select(m.c.id, m.c.step_no)).all()]


# Whether a case has its act on record was read per case through UNIQUE(case_id, seq) and the event rows
# themselves (``event`` is not in that index): a random page of ``case_events`` per moved case or due duty,
# whatever the acts on record — at 910 k open, 0.6 s of reads for 10 k moved cases (loaded machine), against
# 0.01 s at 10 k open. While the recorded acts are few (fewer than ``ACTS_FEW``: one capped count on the
# covering index ``ix_case_events_event_at (event, at, case_id)``), they are read off that index once per
# statement and matched against the batch instead; past that, the per-case probe as before. Same answer.
# SQLite only: PostgreSQL's NOT IN (subquery) is hashed only while it fits in work_mem, else re-read per row.
ACTS_FEW = 50_000


def _acted(session: Session, acts: Sequence[str], case_id, action=None):
    """A condition on ``case_id`` (correlated): an event of one of ``acts`` — or of ``action``, the duty's own
    column, when given — is on the case's history."""
    ev = CaseEvent.__table__
    some = select(ev.c.case_id).where(ev.c.event.in_(acts)).limit(ACTS_FEW).subquery()
    if not is_postgres(session.bind) and session.scalar(select(func.count()).select_from(some)) < ACTS_FEW:
        if action is None:
            return case_id.in_(select(ev.c.case_id).where(ev.c.event.in_(acts)))
        return tuple_(case_id, action).in_(select(ev.c.case_id, ev.c.event).where(ev.c.event.in_(acts)))
    on = [ev.c.case_id == case_id] + [ev.c.event.in_(acts) if action is None else ev.c.event == action]
    return exists(select(ev.c.id).where(*on))


def overdue_batch(session: Session, as_of: datetime, limit: int) -> list[int]:
    """Mark up to ``limit`` open duties past their deadline overdue; returns their ids. One statement:
    ``UPDATE duties … WHERE id IN (SELECT … [FOR UPDATE SKIP LOCKED] LIMIT n) RETURNING id``. A duty
    whose act is on record is never overdue: it is left out here, and credited (done) by the batch that
    finds fewer than ``limit`` — the few such duties left once the others are marked."""
    d = Duty.__table__
    p = d.alias("p")
    acted = _acted(session, [a.value for a in Action], p.c.case_id, p.c.action)
    # the order of ix_duties_status_due (status, due_at): SQLite's entries follow (due_at, id) within it,
    # PostgreSQL's do not, and ordering by id there walks ix_duties_undone_due through every overdue duty
    pick = select(p.c.id).where(p.c.status == "open", p.c.due_at <= as_of, ~acted).limit(limit)
    if is_postgres(session.bind):
        session.connection().exec_driver_sql(NO_JIT)
        pick = pick.order_by(p.c.status, p.c.due_at).with_for_update(skip_locked=True)
    else:  # ORDER BY id alone makes SQLite scan every duty
        pick = pick.order_by(p.c.due_at, p.c.id)
    ids = sorted(session.scalars(update(d).prefix_with(NO_STATEMENT_JOURNAL, dialect="sqlite")
                                 .where(d.c.id.in_(pick.scalar_subquery()))
                                 .values(status="overdue", overdue_at=as_of).returning(d.c.id)))
    if len(ids) < limit:
        credit_done_duties(session, d.c.status == "open", d.c.due_at <= as_of)
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

    done: set[int] = set()  # PostgreSQL: steps read to their end, not fed since (escalate_many)
    feeds = feeders(steps)
    with one_checkpoint(factory) as batches:  # SQLite: one WAL checkpoint for the whole run, at its end
        while steps:  # every step at once, one statement a batch (escalate_many), until none is due
            with transaction(batches) as s:
                moved = escalate_many(s, ctx, steps, as_of, batch_size, done)
            if not moved:
                break
            report.batches += 1
            counts = Counter(k for _, k in moved)
            for k in counts:
                done -= feeds[k]
            for k, n in sorted(counts.items()):
                report.transitions[steps[k].label] += n
            if keep_ids:
                report.escalated_case_ids += sorted(i for i, _ in moved)
            if progress:
                progress("escalate", len(moved))
        while True:
            with transaction(batches) as s:
                ids = overdue_batch(s, as_of, batch_size)
            if ids:
                report.batches += 1
                report.overdue += len(ids)
                if keep_ids:
                    report.overdue_duty_ids += ids
                if progress:
                    progress("overdue", len(ids))
            if len(ids) < batch_size:  # the last batch (it credited the duties whose act is on record)
                break
    if progress:
        progress("checkpoint", 0)
    with transaction(factory) as s:  # referred cases: the next follow-up rounds, once the overdue are marked
        report.follow_ups = renew(s, CaseContext(s, **({"calendars": calendars} if calendars else {})), as_of)
    return report
