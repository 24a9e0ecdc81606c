"""The set-based advance: every due escalation and every overdue duty, in batches.

For each policy and school calendar in use, and each (source → target, day) pair that
:func:`machines.case_machine.escalation_pairs` reads off the machine for that policy, one
``UPDATE … FROM (due cases) RETURNING`` moves a batch, and the history events, duties and document
requests are written with ``executemany`` in the same transaction. A case's streak is today's
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
from datetime import datetime
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from machines.case_machine import escalation_pairs
from machines.policy import Policy
from machines.states import CaseState, OPEN_STATES

from .bulk import insert_rows
from .calendars import ensure_covered, last_seq_on_or_before
from .context import CaseContext, effective_day, escalation_at
from .db import is_postgres, transaction
from .effects import document_rows, escalation_event_row, step_duty_rows
from .models import Case, CaseEvent, DocumentRequest, Duty

Progress = Callable[[str, int], None]


@dataclass
class AdvanceReport:
    as_of: datetime
    transitions: Counter = field(default_factory=Counter)  # "source→target" → n
    overdue: int = 0
    batches: int = 0
    escalated_case_ids: list[int] = field(default_factory=list)
    overdue_duty_ids: list[int] = field(default_factory=list)

    @property
    def total_transitions(self) -> int:
        return sum(self.transitions.values())

    def as_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "transitions": dict(self.transitions),
                "total_transitions": self.total_transitions, "overdue": self.overdue, "batches": self.batches}


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

    @property
    def label(self) -> str:
        return f"{self.source}→{self.target}"


def plan(session: Session, ctx: CaseContext, as_of: datetime) -> list[SweepStep]:
    """Every move any open case could make at ``as_of``, in ladder order; raises if a calendar
    cannot answer for the day (never escalate on a guess)."""
    steps = []
    for name, version, calendar_key in sorted(policy_groups(session)):
        policy = ctx.policy(name, version)
        today = effective_day(policy, as_of)
        ensure_covered(session, {calendar_key: ctx.calendar(calendar_key)}, today)
        passed = last_seq_on_or_before(session, calendar_key, today)
        for source, target, day in escalation_pairs(policy):
            if passed - day + 1 >= 1:
                steps.append(SweepStep(name, version, calendar_key, source.value, target.value, day, passed - day + 1))
    return steps


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
    return q.with_for_update(skip_locked=True) if postgres else q


def escalate_batch(session: Session, ctx: CaseContext, step: SweepStep, as_of: datetime, limit: int) -> list[int]:
    """Move up to ``limit`` due cases one step; returns their ids.

    One statement selects, locks (PostgreSQL: SKIP LOCKED) and moves the batch:
    UPDATE cases … FROM (due cases) RETURNING, so no case is read twice and none can change in between.
    """
    policy = ctx.policy(step.policy_name, step.policy_version)
    due = due_cases_query(step, limit, postgres=is_postgres(session.bind)).subquery("due")
    c = Case.__table__
    rows = session.execute(
        update(c).where(c.c.id == due.c.id, c.c.state == step.source)
        .values(state=step.target, version=c.c.version + 1, updated_at=as_of)
        .returning(c.c.id, c.c.version, c.c.school_id, c.c.class_id, c.c.calendar_key, c.c.created_at, c.c.opened_on)
    ).all()
    if not rows:
        return []
    target = policy.step(CaseState(step.target))
    # one event row and one set of document rows per batch, copied per case (same values as effects builds)
    event = escalation_event_row(case_id=0, seq=0, source=CaseState(step.source), step=target, policy=policy,
                                 at=as_of, now=as_of)
    doc_kinds = document_rows(target.documents, case_id=0, event_seq=0, now=as_of)
    events, duties, docs = [], [], []
    for r in rows:
        # the school day the streak reached the step, and never before the case existed
        at = escalation_at(policy, ctx.school_day_after(r.calendar_key, r.opened_on, step.day - 1), r.created_at)
        seq = r.version  # RETURNING gives the new version
        events.append({**event, "case_id": r.id, "seq": seq, "at": at, "payload": dict(event["payload"])})
        duties += step_duty_rows(ctx, target, case_id=r.id, school_id=r.school_id, class_id=r.class_id,
                                 calendar_key=r.calendar_key, entry_day=at.date(), now=as_of)
        docs += [{**d, "case_id": r.id, "event_seq": seq} for d in doc_kinds]
    # COPY on PostgreSQL, the driver's executemany on SQLite: no per-row ORM or Core bookkeeping
    insert_rows(session, CaseEvent.__table__, events)
    insert_rows(session, Duty.__table__, duties)
    insert_rows(session, DocumentRequest.__table__, docs)
    return [r.id for r in rows]


def overdue_batch(session: Session, as_of: datetime, limit: int) -> list[int]:
    d = Duty.__table__
    # ORDER BY due_at, id follows ix_duties_status_due; ORDER BY id alone makes SQLite scan every duty
    q = select(d.c.id).where(d.c.status == "open", d.c.due_at <= as_of).order_by(d.c.due_at, d.c.id).limit(limit)
    if is_postgres(session.bind):
        q = q.with_for_update(skip_locked=True)
    ids = list(session.scalars(q))
    if ids:
        session.execute(update(d).where(d.c.id.in_(ids), d.c.status == "open").values(status="overdue", overdue_at=as_of))
    return ids


def advance(
    factory: sessionmaker[Session], as_of: datetime, *, batch_size: int = 5000, progress: Progress | None = None,
    calendars: dict | None = None, keep_ids: bool = True,
) -> AdvanceReport:
    """Apply every escalation due at ``as_of`` and mark every overdue duty. Safe to run twice."""
    report = AdvanceReport(as_of)
    with transaction(factory) as s:
        ctx = CaseContext(s, **({"calendars": calendars} if calendars else {}))
        steps = plan(s, ctx, as_of)
        ctx.owners.preload()  # the context outlives this session: everything it needs is cached
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
    return report
