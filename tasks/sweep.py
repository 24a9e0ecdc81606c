"""Sweep tasks: the due escalations and overdue duties at one instant, one batch per task run.

Idempotency key: the ledger itself. A batch selects cases still in the source state whose
streak has reached the step's day (and duties still ``open`` past due), moves them and writes
their history, duties and document requests in one transaction; ``UNIQUE(case_id, seq)`` and
``UNIQUE(case_id, kind, event_seq)`` are the backstop. A retried batch or a second sweep of the
same instant finds nothing left to do.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import func, select

from machines.identity import mask_name
from machines.states import CaseState, OPEN_STATES
from store.cases import advance as bulk
from store.cases.context import CaseContext
from store.db import checkpoint, transaction
from store.models import Case, CaseEvent, DocumentRequest, Duty, School
from store.reporting.queries import overdue_duties

from tasks.runtime import DB_RETRIES, store

OPEN = [s.value for s in OPEN_STATES]


def batch_size() -> int:
    """Cases per batch (one task run each) for this process's database: ``store.cases.advance.BATCH_SIZES``."""
    return bulk.default_batch_size(store().kw["bind"])


@task(name="apply_late_marks", **DB_RETRIES, cache_policy=NO_CACHE)
def apply_late_marks(as_of: datetime) -> int:
    """Marks sent after their day, applied in their place before anything escalates (store.cases.late_marks);
    one transaction under the schools' locks, so a retry or a second sweep applies each once."""
    from store.cases.late_marks import apply_late_marks as apply

    with transaction(store()) as s:
        return apply(s, CaseContext(s), as_of)


@task(name="plan_sweep", **DB_RETRIES, cache_policy=NO_CACHE)
def plan_sweep(as_of: datetime) -> tuple[list[bulk.SweepStep], list[dict]]:
    """Which ladder moves any open case could make now, per policy version and school calendar; and the
    calendars left out (a year without a holiday list) with their schools, whose cases wait."""
    skipped: list[bulk.SkippedCalendar] = []
    with transaction(store()) as s:
        steps = bulk.plan(s, CaseContext(s), as_of, skipped)
    return steps, [k.as_dict() for k in skipped]


@task(name="check_calendars", **DB_RETRIES, cache_policy=NO_CACHE)
def check_calendars(as_of: datetime) -> dict:
    """The calendars against the holiday lists: school days rewritten where a list was supplied since, the
    schools whose term reaches within 60 days into a year without one, and the operator's duties kept in
    step (one per calendar and year; done once the list is there)."""
    from store.calendar_watch import calendar_warnings, sync_calendar_duties
    from store.calendars import calendars, refresh_school_days

    with transaction(store()) as s:
        cals = calendars()
        rewritten = refresh_school_days(s, cals)
        warnings = calendar_warnings(s, cals, as_of.date())
        duties = sync_calendar_duties(s, warnings, as_of)
    return {"warnings": [{**w, "first_day": w["first_day"].isoformat()} for w in warnings],
            "duties": duties, "school_days_rewritten": rewritten}


@task(name="publish_calendar_check", cache_policy=NO_CACHE)
def publish_calendar_check(as_of: datetime, check: dict, skipped: list[dict]) -> str:
    """What operators see: a Markdown artifact (key ``calendar-check``) naming the schools, the missing years
    and the calendars this sweep left out; events ``baoxue.calendar.year_missing`` and
    ``baoxue.sweep.calendar_skipped``. Returns the Markdown."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.events import emit_event

    lines = [f"## 校历检查 calendar check — {as_of:%Y-%m-%d %H:%M}", ""]
    for k in skipped:
        lines.append(f"- **本次未推进 skipped**: 校历 `{k['calendar']}`（{len(k['schools'])} 所学校 schools: "
                     f"{', '.join(k['schools']) or '—'}）— {k['reason']}")
        emit_event(event="baoxue.sweep.calendar_skipped", resource={"prefect.resource.id": f"baoxue.calendar.{k['calendar']}"},
                   payload={"as_of": as_of.isoformat(), **k})
    for w in check["warnings"]:
        lines.append(f"- **{w['year']} 年节假日表缺失 missing holiday list**: 校历 `{w['calendar']}` 自 {w['first_day']} 起"
                     f"进入 {w['year']} 年；学校 schools: {', '.join(s['code'] + ' ' + s['name'] for s in w['schools'])}。"
                     f"请提供 `holidays-{w['year']}.toml` — supply `holidays-{w['year']}.toml`")
        emit_event(event="baoxue.calendar.year_missing", resource={"prefect.resource.id": f"baoxue.calendar.{w['calendar']}"},
                   payload={"year": w["year"], "first_day": w["first_day"], "schools": [s["code"] for s in w["schools"]]})
    if len(lines) == 2:
        lines.append("所有学校的校历在 60 天内均有节假日表 — every school's calendar has its holiday lists for the next 60 days.")
    markdown = "\n".join(lines)
    create_markdown_artifact(key="calendar-check", markdown=markdown,
                             description="校历与节假日表 school calendars against the holiday lists")
    return markdown


@task(name="apply_escalations", **DB_RETRIES, cache_policy=NO_CACHE)
def apply_escalations(step: bulk.SweepStep, as_of: datetime, limit: int) -> list[int]:
    """Move up to ``limit`` due cases one step; their events, duties and documents in the same commit."""
    with transaction(store()) as s:
        return bulk.escalate_batch(s, CaseContext(s), step, as_of, limit)


@task(name="mark_overdue", **DB_RETRIES, cache_policy=NO_CACHE)
def mark_overdue(as_of: datetime, limit: int) -> list[int]:
    """Mark up to ``limit`` open duties past their deadline as overdue."""
    with transaction(store()) as s:
        return bulk.overdue_batch(s, as_of, limit)


@task(name="renew_follow_ups", **DB_RETRIES, cache_policy=NO_CACHE)
def renew_follow_ups(as_of: datetime) -> int:
    """Referred cases (移交跟踪): the next round of each follow-up duty whose last round is done or overdue
    (one set-based statement, ``store.cases.follow_up.renew``; idempotent)."""
    from store.cases.follow_up import renew

    with transaction(store()) as s:
        return renew(s, CaseContext(s), as_of)


@task(name="write_back", **DB_RETRIES, cache_policy=NO_CACHE)
def write_back() -> None:
    """SQLite: the sweep's write-ahead log written back into the database file now, so the run pays
    for its own writes (``store.db.checkpoint``, as ``store.cases.advance.advance`` does); PostgreSQL: nothing."""
    checkpoint(store())


@task(name="sweep_summary", **DB_RETRIES, cache_policy=NO_CACHE)
def sweep_summary(as_of: datetime, overdue_rows: int = 200) -> dict:
    """What the ledger says after the sweep at ``as_of`` (names masked), for the artifact."""
    with transaction(store()) as s:
        moved = s.execute(
            select(CaseEvent.to_state, func.count()).where(CaseEvent.event == "escalate", CaseEvent.recorded_at == as_of)
            .group_by(CaseEvent.to_state)).all()
        by_state = dict(s.execute(select(Case.state, func.count()).group_by(Case.state)).all())
        by_school = s.execute(
            select(School.code, School.name, Case.state, func.count()).join(School, School.id == Case.school_id)
            .where(Case.state.in_(OPEN)).group_by(School.code, School.name, Case.state).order_by(School.code)).all()
        queued_docs = s.scalar(select(func.count()).select_from(DocumentRequest).where(DocumentRequest.status == "queued"))
        late = overdue_duties(s, as_of, masked=True)
        overdue_now = s.scalar(select(func.count()).select_from(Duty).where(Duty.overdue_at == as_of))
    schools: dict[str, dict] = {}
    for code, name, state, n in by_school:
        row = schools.setdefault(code, {"school": name, "code": code, **{st: 0 for st in OPEN}, "open": 0})
        row[state] = n
        row["open"] += n
    for d in late:
        d["owner"] = mask_name(d["owner"]) if d["owner"] else "—"
    return {
        "as_of": as_of.isoformat(sep=" "),
        "escalated_now": {st: n for st, n in moved},
        "overdue_now": overdue_now or 0,
        "cases_by_state": {st.value: by_state.get(st.value, 0) for st in CaseState},
        "by_school": list(schools.values()),
        "overdue_duties": len(late),
        "overdue_rows": late[:overdue_rows],
        "documents_queued": queued_docs or 0,
    }


@task(name="describe_changes", **DB_RETRIES, cache_policy=NO_CACHE)
def describe_changes(case_ids: list[int], duty_ids: list[int]) -> dict:
    """(school, new state) → case ids and (school, action) → duty ids, for the Prefect events."""
    out: dict = {"escalated": {}, "overdue": {}}
    with transaction(store()) as s:
        for i in range(0, len(case_ids), 1000):
            for cid, state, code in s.execute(select(Case.id, Case.state, School.code).join(School, School.id == Case.school_id)
                                              .where(Case.id.in_(case_ids[i:i + 1000]))):
                out["escalated"].setdefault(f"{code}|{state}", []).append(cid)
        for i in range(0, len(duty_ids), 1000):
            for did, action, code in s.execute(
                    select(Duty.id, Duty.action, School.code).join(Case, Case.id == Duty.case_id)
                    .join(School, School.id == Case.school_id).where(Duty.id.in_(duty_ids[i:i + 1000]))):
                out["overdue"].setdefault(f"{code}|{action}", []).append(did)
    return out


def count_by(items: dict[str, list[int]]) -> Counter:
    return Counter({k: len(v) for k, v in items.items()})
