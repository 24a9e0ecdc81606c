"""升级计时 (the ladder's timers): move every case whose absence streak reached the next step, and
mark every duty whose deadline passed (DOMAIN.md §3).

Deadlines live in the database, not in waiting flow runs: this sweep runs each school day after
the morning check (09:30) and every hour of the school day (07:00–18:00, Asia/Shanghai) and fires
whatever is due at its instant, in batches. Run twice for the same instant, it changes nothing.

0. Check the calendars against the holiday lists (a year missing within 60 days: an artifact, an
   event, an operator duty); a calendar that cannot answer today is skipped, its schools named.
1. For each ladder move of each policy in use (absent → family_contacted → visited →
   collective_visit → township_notice → judicial_notice), move the due cases batch by batch; the
   step's duties and documents are written with the move.
2. Mark the duties past their deadline overdue; give referred cases (移交跟踪) their next follow-up round.
3. Hand the queued documents to the renderers.
4. Tell operators: a table artifact (by school, by step, the first 200 overdue duties, names masked) and
   events, one per new state / action with its count by school, never one per case or per school
   (baoxue.case.escalated, baoxue.duty.overdue, baoxue.sweep.completed).
"""
from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger

from tasks.census import sync_handoffs
from tasks.oversight import refresh_watch_list
from tasks.prevention import apply_prevention_rules
from tasks.publish import publish_sweep
from tasks.render import request_rendering
from tasks.runtime import resolve_as_of, run_name
from tasks.sweep import (
    apply_escalations, apply_late_marks, batch_size as store_batch_size, check_calendars, mark_overdue, plan_sweep,
    merge_groups, publish_calendar_check, renew_follow_ups, sweep_summary, write_back,
)


@flow(name="advance_cases", log_prints=False, flow_run_name=run_name("sweep"))
def advance_cases(as_of: datetime | None = None, batch_size: int | None = None, render: bool = True) -> dict:
    logger = get_run_logger()
    as_of = resolve_as_of(as_of)
    batch_size = batch_size or store_batch_size()  # the database's default (store.cases.advance.BATCH_SIZES)

    # 0. The calendars: a holiday list supplied since is used; a year without one within 60 days is reported,
    #    and a calendar that cannot answer today is left out (its schools named) while the others move.
    calendar_check = check_calendars(as_of)
    # 0b. Marks sent after their day (a late morning check): applied in their place first, so that a
    #     late absence moves a case only by the steps that were really due (store.cases.late_marks).
    late_marks = apply_late_marks(as_of)
    steps, skipped = plan_sweep(as_of)

    # 1. Escalation timers: every ladder move at once, batch after batch (one transaction each), a task run
    #    holding as many batches as fit in tasks.sweep.RUN_SECONDS. A run hands back its count and its moves
    #    by (school, new state), never its ids (the task results of a run stay small).
    escalated, overdue, moved_to, overdue_by = 0, 0, {}, {}
    done: tuple[int, ...] = ()  # steps read to their end (store.cases.advance.escalate_many)
    while steps:  # every step at once, one statement a batch (store.cases.advance.escalate_many), until none is due
        run = apply_escalations(steps, as_of, batch_size, done)
        escalated += run.moved
        merge_groups(moved_to, run.groups)
        done = run.done
        if not run.more:  # its last batch found nothing due (a case moved may be due for its next step: asked)
            break

    # 2. Duty deadlines (SLA): open duties past due become overdue.
    while True:
        run = mark_overdue(as_of, batch_size)
        overdue += run.moved
        merge_groups(overdue_by, run.groups)
        if not run.more:
            break
    # 2a. Referred cases (移交跟踪, seed 000 §二.5): the next follow-up round where the last is done or overdue.
    follow_ups = renew_follow_ups(as_of)
    if escalated or overdue or late_marks or follow_ups:
        write_back()

    # 2b. Prevention: boarders' gate alerts and truancy tiers (seed 000 §二.3, seed 001 第六条), one set-based task.
    prevention = apply_prevention_rules(as_of)
    # 2c. At-risk pupils (seed 000 §一.3): the watch list refreshed by the policy's rules (idempotent).
    watch = refresh_watch_list(as_of)
    # 2d. 送达回证: a receipt to acknowledge for every paper issued to an outside body since the last sweep.
    handoffs = sync_handoffs(as_of)

    summary = sweep_summary(as_of, escalated=moved_to, overdue=overdue)  # this run's moves, as its batches counted

    # 3. The new steps' documents were queued with the moves: have them rendered.
    rendering = request_rendering(summary["documents_queued"]) if render else {"requested": 0}

    # 4. What operators see: events for automations, a table artifact (names masked).
    publish_sweep(summary, {"escalated": moved_to, "overdue": overdue_by}, escalated, overdue)
    publish_calendar_check(as_of, calendar_check, skipped)
    for k in skipped:
        logger.warning("sweep %s: calendar %s skipped (schools %s): %s", as_of, k["calendar"], k["schools"], k["reason"])
    logger.info("sweep %s: escalated %s, overdue %s", as_of, escalated, overdue)
    return {"as_of": as_of.isoformat(), "late_marks": late_marks, "escalated": escalated, "overdue": overdue,
            "follow_ups": follow_ups,
            "escalated_by_step": summary["escalated_now"], "cases_by_state": summary["cases_by_state"],
            "documents_queued": summary["documents_queued"], "rendering": rendering, "prevention": prevention,
            "watch_list": watch, "handoffs": handoffs, "skipped": skipped, "calendar_warnings": calendar_check["warnings"]}
