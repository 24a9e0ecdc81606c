"""`baoxue attendance import FILE --date D` without ``--school``: a county's export (rows name their school
in a 学校代码 column) through the ``morning_check`` flow, as the county SIS feed goes.

The file is read in one streaming pass (``store.ingest.attendance_files.parse_attendance``: no row count,
its byte size is the limit, BAOXUE_UPLOAD_MAX_MB); the one rule of every entry is applied to the whole
file (``vet_checks``: a bad row refuses it, every bad row counted and the first 200 listed; overwriting
the day's marks or closing cases needs --confirm); then the file is staged as received
(``store.ingest.staged``) and the submission naming it, signed with the server's key, is one run of the
``morning_check`` flow (schools recorded set-based, up to 100,000 rows a task and a commit, progress in the
run's log and a progress artifact). A file sent again records nothing twice.

The run is this command's own, in this process: it sends no Prefect flow heartbeat (the heartbeat lets a
server mark crashed a run whose worker host died; here the user's terminal shows the command dying, and
the file sent again records nothing twice), which saves the up to 1 s the engine waits for the heartbeat
thread at the end of a run (deploy.deployments.no_heartbeat; served and worker runs keep it).
"""
from __future__ import annotations

import json
from datetime import date, datetime

import typer

from cli.common import console, err, factory


def import_county_file(data: bytes, filename: str, parsed, *, day: date, by: str, when: datetime, confirm: bool,
                       json_out: bool) -> dict:
    from store.db import settings, transaction
    from store.ingest.attendance_files import BadRows, NeedsConfirmation, vet_checks
    from store.ingest.staged import stage_file

    with transaction(factory()) as s:
        try:
            vet_checks(s, day=day, sheets=parsed.by_school, complete=True, errors=parsed.errors,
                       more_errors=parsed.more_errors, confirm=confirm)
        except (BadRows, NeedsConfirmation) as exc:
            _refused(exc, json_out)
        file_id, digest = stage_file(s, data, filename, by=by, now=when, parsed=parsed)  # the run takes this parse
    submission = county_submission(sorted(parsed.by_school), file_id, digest, day=day, by=by, when=when,
                                   secret=settings().secret_key)
    del parsed, data  # the run checks the staged file's hash and takes the parse handed over with it
    from deploy.deployments import no_heartbeat
    from flows.morning_check import morning_check

    with no_heartbeat():  # the run lives and ends in this foreground command (see the module's text)
        result = morning_check(submission)
    if json_out:
        print(json.dumps({k: v for k, v in result.items() if k != "schools"}
                         | {"schools": [{k: r.get(k) for k in ("school", "marks", "opened", "returned", "excused",
                                                                 "continuing", "errors", "duplicate", "rejected")}
                                        for r in result["schools"]]}, ensure_ascii=False))
    else:
        console.print(f"县级晨检 county file {result['day']}: {len(result['schools'])} 所学校 schools, "
                      f"{result['marks']} 行 marks; 新开案件 opened {result['opened']}, 复学 returned {result['returned']}, "
                      f"排除 excused {result['excused']}, 持续缺勤 continuing {result['continuing']}"
                      + (f"; 重复提交未改动 duplicate {sum(r.get('duplicate', False) for r in result['schools'])} 所"
                         if any(r.get("duplicate") for r in result["schools"]) else ""))
        for r in result["schools"]:
            if r.get("rejected"):
                err.print(f"  {r['school']}: {r['rejected']}")
    from cli.fast_exit import after_success

    after_success()  # committed and shown: no interpreter finalization of Prefect's modules at exit (cli/fast_exit.py)
    return result


def county_submission(schools: list[str], file_id: int, digest: str, *, day: date, by: str, when: datetime,
                      secret: str):
    """The signed flow parameter of a staged county file: every school it names, the file's id and
    SHA-256 (a run's parameters are capped at 512 kB: the rows stay in the database)."""
    from tasks.intake import MorningCheckSubmission

    return MorningCheckSubmission(day=day, school_code=None, schools=schools, file_id=file_id, file_sha256=digest,
                                  source="upload", submitted_by=by, submitted_at=when, complete=True).signed(secret)


def _refused(exc, json_out: bool):
    if not json_out:
        for e in exc.review.errors:
            err.print(f"第 {e.row} 行 row {e.row} {e.student_no}: {e.message}")
        if not exc.review.error_count:
            err.print("确认无误后加 --confirm 重新执行 (run again with --confirm to apply)")
    emit_refusal(exc, json_out)


def emit_refusal(exc, json_out: bool):
    """A check refused by the one rule: the message (and, with --json, the preview and rows); exit 2."""
    review = exc.review
    if json_out:
        print(json.dumps({"refused": True, "message": str(exc), "error_count": review.error_count, **review.as_dict(),
                          "row_errors": [{"row": e.row, "student_no": e.student_no, "reason": e.message}
                                         for e in review.errors]}, ensure_ascii=False))
    else:
        err.print(str(exc))
    raise typer.Exit(2)
