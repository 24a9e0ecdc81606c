"""The follow-up of a referred case (``escalated``: 移交跟踪) until the pupil returns.

On referral (``escalate_outside``) the case gets the first round of its policy's follow-up duties
(``[referral.<reason>]``, machines/policy_followup.py); each sweep gives it the next round of every duty
whose last round is done or overdue, due ``every_school_days`` school days after the sweep's day. A round
is a duty row of step ``escalated:<n>`` (UNIQUE(case_id, step, action) holds: a round is never written
twice). The set-based renewal here and the per-case reference (:func:`renew_per_case`) write the same rows
(tests/store/test_bulk_equivalence.py). A return or an excuse cancels the open rounds (store.cases.actions).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (Boolean, Column, DateTime, Integer, MetaData, String, Table, and_, case as sa_case, cast, exists,
                        func, insert, literal, select)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.schema import CreateTable

from machines.calendar import CalendarYearUnknown
from machines.policy import Policy
from machines.states import REFERRED_STATES, CaseState

from store.calendars import CalendarNotLoaded
from store.cases.context import CaseContext, effective_day
from store.db import is_postgres
from store.models import Case, Duty, SchoolClass

REFERRED = [s.value for s in REFERRED_STATES]
ROUND_PREFIX = f"{CaseState.escalated.value}:"  # the step of a follow-up round: "escalated:<n>"


def round_step(n: int) -> str:
    return f"{ROUND_PREFIX}{n}"


def referral_duty_rows(ctx: CaseContext, policy: Policy, reason: str | None, *, case_id: int, school_id: int,
                       class_id: int, calendar_key: str, day: date, now: datetime, rounds: dict[str, int] | None = None,
                       only: set[str] | None = None) -> list[dict[str, Any]]:
    """The next round of the follow-up duties of a case referred for ``reason`` (``rounds``: action → rounds
    written so far; ``only``: the actions due a new round), due ``every_school_days`` after ``day``."""
    rows = []
    for d in policy.follow_up_duties(reason):
        if only is not None and d.action.value not in only:
            continue
        rows.append({
            "case_id": case_id, "step": round_step((rounds or {}).get(d.action.value, 0) + 1), "action": d.action.value,
            "role": d.role, "owner_id": ctx.owners.resolve(school_id, class_id, d.role),
            "due_at": ctx.due_at(calendar_key, day, d.every_school_days, d.due_time),
            "status": "open", "created_at": now, "done_at": None, "done_late": False, "overdue_at": None,
        })
    return rows


def _groups(session: Session) -> list[tuple[str, int, str]]:
    return [tuple(r) for r in session.execute(
        select(Case.policy_name, Case.policy_version, Case.calendar_key).where(Case.state.in_(REFERRED)).distinct())]


def _answers(ctx: CaseContext, calendar_key: str, day: date, n: int) -> bool:
    try:
        ctx.school_day_after(calendar_key, day, n)
        return True
    except (CalendarYearUnknown, CalendarNotLoaded, LookupError):
        return False  # the calendar cannot answer (no holiday list, past its last term): the round waits


def _round_counts(session: Session, case_ids: list[int] | None = None) -> dict[tuple[int, str], tuple[int, bool]]:
    """(case, action) → (rounds written, one still open) for follow-up rounds."""
    q = (select(Duty.case_id, Duty.action, func.count(), func.max(sa_case((Duty.status == "open", 1), else_=0)))
         .where(Duty.step.like(ROUND_PREFIX + "%")).group_by(Duty.case_id, Duty.action))
    if case_ids is not None:
        q = q.where(Duty.case_id.in_(case_ids))
    return {(cid, action): (n, bool(live)) for cid, action, n, live in session.execute(q)}


def renew_per_case(session: Session, ctx: CaseContext, as_of: datetime) -> int:
    """The reference path: every referred case, one by one, gets the next round of each follow-up duty
    with no open round (the first round, if it has none)."""
    written = 0
    cases = session.scalars(select(Case).where(Case.state.in_(REFERRED)).order_by(Case.id)).all()
    counts = _round_counts(session, [c.id for c in cases])
    for c in cases:
        policy = ctx.policy(c.policy_name, c.policy_version)
        day = effective_day(policy, as_of)
        due = {d.action.value for d in policy.follow_up_duties(c.outcome_reason)
               if not counts.get((c.id, d.action.value), (0, False))[1]
               and _answers(ctx, c.calendar_key, day, d.every_school_days)}
        rows = referral_duty_rows(ctx, policy, c.outcome_reason, case_id=c.id, school_id=c.school_id,
                                  class_id=c.class_id, calendar_key=c.calendar_key, day=day, now=as_of,
                                  rounds={a: n for (cid, a), (n, _) in counts.items() if cid == c.id}, only=due)
        if rows:
            session.execute(insert(Duty), rows)
            written += len(rows)
    return written


_work = MetaData()
_plan = Table(  # (policy, calendar, reason, action) → the new round's role and deadline
    "fu_plan", _work, Column("policy_name", String(32), primary_key=True), Column("policy_version", Integer, primary_key=True),
    Column("calendar_key", String(32), primary_key=True), Column("reason", String(32), primary_key=True),
    Column("action", String(32), primary_key=True), Column("role", String(32)), Column("due_at", DateTime),
    prefixes=["TEMPORARY"])
_owners = Table("fu_owners", _work, Column("school_id", Integer, primary_key=True), Column("role", String(32), primary_key=True),
                Column("owner_id", Integer), prefixes=["TEMPORARY"])


def renew(session: Session, ctx: CaseContext, as_of: datetime) -> int:
    """The set-based renewal: one ``INSERT … SELECT`` for every referred case of every policy; Python
    computes only the deadlines per (policy, calendar, duty) and the owners per (school, role)."""
    groups = _groups(session)
    if not groups:
        return 0
    plan, roles = [], set()
    for name, version, cal in groups:
        policy = ctx.policy(name, version)
        day = effective_day(policy, as_of)
        for reason, spec in policy.referral.items():
            for d in spec.duties:
                if _answers(ctx, cal, day, d.every_school_days):
                    plan.append({"policy_name": name, "policy_version": version, "calendar_key": cal,
                                 "reason": reason.value, "action": d.action.value, "role": d.role,
                                 "due_at": ctx.due_at(cal, day, d.every_school_days, d.due_time)})
                    roles.add(d.role)
    if not plan:
        return 0
    conn = session.connection()
    postgres = is_postgres(conn)
    for t in (_plan, _owners):
        ddl = str(CreateTable(t, if_not_exists=True).compile(dialect=conn.dialect)).strip()
        conn.exec_driver_sql(ddl + (" ON COMMIT DELETE ROWS" if postgres else ""))
        conn.exec_driver_sql(f"DELETE FROM {t.name}")
    session.execute(insert(_plan), plan)
    schools = session.scalars(select(Case.school_id).where(Case.state.in_(REFERRED)).distinct()).all()
    session.execute(insert(_owners), [{"school_id": sid, "role": role, "owner_id": ctx.owners.resolve(sid, None, role)}
                                      for sid in schools for role in sorted(roles)])
    c, p, o, k, du = Case.__table__, _plan, _owners, SchoolClass.__table__, Duty.__table__
    prior = aliased(Duty.__table__, name="prior")
    rounds = (select(func.count()).select_from(prior)
              .where(prior.c.case_id == c.c.id, prior.c.action == p.c.action, prior.c.step.like(ROUND_PREFIX + "%"))
              .scalar_subquery())
    still_open = exists().where(prior.c.case_id == c.c.id, prior.c.action == p.c.action, prior.c.status == "open",
                                prior.c.step.like(ROUND_PREFIX + "%"))
    owner = sa_case((and_(p.c.role == "head_teacher", k.c.head_teacher_id.is_not(None)), k.c.head_teacher_id),
                    else_=o.c.owner_id)
    step = literal(ROUND_PREFIX, String(20)) + cast(rounds + 1, String(10))
    result = session.execute(insert(du).from_select(
        ["case_id", "step", "action", "role", "owner_id", "due_at", "status", "created_at", "done_at", "done_late",
         "overdue_at"],
        select(c.c.id, step, p.c.action, p.c.role, owner, p.c.due_at, literal("open", du.c.status.type),
               literal(as_of, DateTime), literal(None, DateTime), literal(False, Boolean), literal(None, DateTime))
        .select_from(c)
        .join(p, and_(p.c.policy_name == c.c.policy_name, p.c.policy_version == c.c.policy_version,
                      p.c.calendar_key == c.c.calendar_key, p.c.reason == c.c.outcome_reason))
        .join(o, and_(o.c.school_id == c.c.school_id, o.c.role == p.c.role))
        .outerjoin(k, k.c.id == c.c.class_id)
        .where(c.c.state.in_(REFERRED), ~still_open)))
    return result.rowcount or 0
