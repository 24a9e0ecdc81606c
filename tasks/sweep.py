"""Sweep tasks: the due escalations and overdue duties at one instant, batch after batch in a task run.

Idempotency key: the ledger itself. A batch selects cases still in the source state whose
streak has reached the step's day (and duties still ``open`` past due), moves them and writes
their history, duties and document requests in one transaction; ``UNIQUE(case_id, seq)`` and
``UNIQUE(case_id, kind, event_seq)`` are the backstop. A retried batch or a second sweep of the
same instant finds nothing left to do.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from store.cases import advance as bulk
from store.cases.context import CaseContext
from store.db import checkpoint, transaction
from store.reporting import sweep_summary as summaries

from tasks.runtime import DB_RETRIES, store


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


# A task run of the sweep takes batch after batch (one transaction each, ``FOR UPDATE SKIP LOCKED`` on
# PostgreSQL, so concurrent runs still share the work batch by batch) until none is left or it has run
# this long: at 1 M open cases a run holds a dozen batches of 5 000 instead of one (Prefect's own cost per
# task run, the context rebuilt per batch and the steps read to their end asked again, issue 20: 77 task
# runs on PostgreSQL, 29 on SQLite), while a failure still costs at most one run's batches to redo.
RUN_SECONDS = 20.0


@dataclass(frozen=True)
class BatchResult:
    """The batches of one task run, as the flow keeps them: how many rows moved and how many per
    ``"<school>|<value>"`` (the events' groups); ``more``: the run stopped before the work was done (its time
    was up, or a batch after the first failed: the flow asks again); ``done``: steps read to their end, not fed
    since (``store.cases.advance.escalate_many``). The ids stay in the database: a run's task results never
    hold a hundred thousand of them."""

    moved: int
    groups: dict[str, int]
    more: bool = False
    done: tuple[int, ...] = ()
    batches: int = 0


merge_groups = summaries.merge_groups  # the flow adds each run's groups to its own


def _batches(take, seconds: float, counting: list[float]) -> BatchResult:
    """``take()`` (one batch in its own transaction: ``(moved, groups, last)``) until ``last`` or ``seconds`` have
    passed. A failure in the first batch is the task's (Prefect retries it); one after it ends the run with what
    was committed, so the counts the flow reports stay those of the committed batches, and the flow asks again."""
    moved, groups, batches, t0 = 0, {}, 0, time.monotonic()
    log = get_run_logger()
    while True:
        try:
            n, got, last = take()
        except Exception as exc:
            if not batches:
                raise
            log.warning("sweep batch failed after %s committed batches (the flow asks again): %r", batches, exc)
            return BatchResult(moved, groups, more=True, batches=batches)
        batches += 1
        moved += n
        merge_groups(groups, got)
        if last or time.monotonic() - t0 >= seconds:
            log.info("%s batches, %s rows in %.1f s (%.1f s counting them by school)", batches, moved,
                     time.monotonic() - t0, counting[0])
            return BatchResult(moved, groups, more=not last, batches=batches)


@task(name="apply_escalations", **DB_RETRIES, cache_policy=NO_CACHE)
def apply_escalations(steps: list[bulk.SweepStep], as_of: datetime, limit: int, done: tuple[int, ...] = (),
                      seconds: float = RUN_SECONDS) -> BatchResult:
    """Move cases due for any of ``steps`` one step, ``limit`` a batch (their events, duties and documents in the
    batch's commit), batch after batch until none is due or ``seconds`` have passed — as
    ``store.cases.advance.advance`` does: one context (owners loaded once), steps read to their end (``done``) not
    asked again until a move feeds them. Returns the count and the moved cases by (school, new state), read in
    each batch's own transaction, and the steps done for the next run."""
    feeds = bulk.feeders(steps)
    left = set(done)
    ctx: list[CaseContext] = []

    def take():
        before = set(left)  # a batch rolled back must not leave a step marked done
        try:
            with transaction(store()) as s:
                if not ctx:
                    ctx.append(CaseContext(s))
                    ctx[0].owners.preload()  # the context outlives this session: everything it needs is cached
                moved = bulk.escalate_many(s, ctx[0], steps, as_of, limit, left)
                t = time.monotonic()
                groups = summaries.escalated_groups(s, sorted(i for i, _ in moved)) if moved else {}
                counting[0] += time.monotonic() - t
        except BaseException:
            left.clear()
            left.update(before)
            raise
        for k in {k for _, k in moved}:
            left.difference_update(feeds[k])
        return len(moved), groups, not moved

    counting = [0.0]
    out = _batches(take, seconds, counting)
    return BatchResult(out.moved, out.groups, out.more, tuple(sorted(left)), out.batches)


@task(name="mark_overdue", **DB_RETRIES, cache_policy=NO_CACHE)
def mark_overdue(as_of: datetime, limit: int, seconds: float = RUN_SECONDS) -> BatchResult:
    """Mark open duties past their deadline as overdue, ``limit`` a batch, until a batch comes back short (it
    credits the duties whose act is on record) or ``seconds`` have passed; the count and the duties by
    (school, action)."""

    counting = [0.0]

    def take():
        with transaction(store()) as s:
            ids = bulk.overdue_batch(s, as_of, limit)
            t = time.monotonic()
            groups = summaries.overdue_groups(s, ids)
            counting[0] += time.monotonic() - t
            return len(ids), groups, len(ids) < limit

    return _batches(take, seconds, counting)


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
def sweep_summary(as_of: datetime, overdue_rows: int = summaries.OVERDUE_ROWS, escalated: dict[str, int] | None = None,
                  overdue: int | None = None) -> dict:
    """What the ledger says after the sweep at ``as_of`` (names masked), for the artifact: counts grouped in SQL and
    the first ``overdue_rows`` overdue duties (``store.reporting.sweep_summary``). ``escalated`` (the run's moves,
    ``"<school>|<state>"`` → n) and ``overdue`` (duties it marked): the run's own counts, else read from the history."""
    with transaction(store()) as s:
        return summaries.sweep_summary(s, as_of, overdue_rows=overdue_rows, overdue_now=overdue,
                                       escalated_now=None if escalated is None else summaries.by_value(escalated))
