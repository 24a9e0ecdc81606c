"""晨检 (morning check): the school's attendance for a day opens, extends and closes cases.

DOMAIN.md §2 step 0: the head teacher reports a pupil missing without leave right after the
morning check; 教务处 registers it the same day. A pupil with an open case who is back in class
returns (复学); leave (病假/事假) or a completed transfer excuses the case.

Triggered, never scheduled: each submission from the web page, the API, the CLI, an upload or
the county SIS export is one run of the ``morning-check`` deployment with the submission as its
parameter.
"""
from __future__ import annotations

from prefect import flow, get_run_logger

from tasks.intake import MorningCheckSubmission, record_school_checks, validate_submission, verify_submission
from tasks.publish import progress_artifact, publish_morning_check, update_progress
from tasks.runtime import resolve_as_of

SCHOOLS_PER_TASK = 1_000  # a county's schools in one task: its set-based passes and one commit
ROWS_PER_TASK = 100_000   # …and at most about this many of its rows (whole schools: a school's check is one unit):
                          # a county file of 10⁵ rows is one task, one transaction; a larger one, chunks of this size
TOTALS = ("marks", "opened", "continuing", "returned", "excused", "errors")


def chunks(sheets: list, *, rows: int | None = None, schools: int | None = None) -> list[list]:
    """The sheets in units of work: whole schools, at most ``schools`` of them and, once a chunk holds a
    school, no more than about ``rows`` marks (a school larger than that is a chunk of its own)."""
    rows, schools = rows or ROWS_PER_TASK, schools or SCHOOLS_PER_TASK
    out: list[list] = []
    size = 0
    for sheet in sheets:
        n = len(sheet.marks)
        if not out or len(out[-1]) >= schools or (size + n > rows and out[-1]):
            out.append([])
            size = 0
        out[-1].append(sheet)
        size += n
    return out


@flow(name="morning_check", flow_run_name="morning-check-{submission.day}", log_prints=False)
def morning_check(submission: MorningCheckSubmission) -> dict:
    logger = get_run_logger()
    now = resolve_as_of(submission.submitted_at)

    # 1. Signed by the web app, from an account that may act on those schools, for a day within
    #    policy (a run started straight through the Prefect API is refused here); then it must
    #    name real schools and known attendance marks.
    verify_submission(submission)
    sheets = validate_submission(submission)

    # 2. Each school's check: unexcused absences open a case or extend its streak, pupils who are
    #    back return, leave excuses. A check that changes no recorded mark of the day changes nothing;
    #    a check for a past day is recorded and applied in its place by the next sweep. A county file
    #    is recorded set-based, whole schools up to ROWS_PER_TASK rows a task (one unit of work each), with a
    #    result per school as if each had submitted alone.
    #    A chunk is committed as it is recorded (each school's check idempotent: a retried chunk or a
    #    re-submitted file records nothing twice); the run's progress artifact and log follow it.
    results = []
    units = chunks(sheets)
    total = sum(len(sheet.marks) for sheet in sheets)
    progress = progress_artifact(submission.day.isoformat(), len(units))
    done = 0
    for n, unit in enumerate(units, start=1):
        results += record_school_checks(unit, day=submission.day, source=submission.source,
                                        submitted_by=submission.submitted_by, now=now, complete=submission.complete)
        done += sum(len(sheet.marks) for sheet in unit)
        if len(units) > 1:
            logger.info("晨检进度 progress: %d/%d 行 rows, %d/%d 批 chunks", done, total, n, len(units))
            update_progress(progress, 100.0 * n / len(units))

    totals = {k: sum(int(r.get(k, 0)) for r in results) for k in TOTALS}
    rejected = [r for r in results if r.get("rejected")]
    for r in rejected:
        logger.warning("school %s: %s", r["school"], r["rejected"])
    logger.info("morning check %s: %s", submission.day, totals)

    # 3. Operators see what the check did (a table artifact and a baoxue.morning_check.recorded event).
    publish_morning_check(submission.day.isoformat(), submission.source, results, totals)
    return {"day": submission.day.isoformat(), "schools": results, **totals, "rejected": len(rejected)}
