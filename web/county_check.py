"""A county's or township's morning-check file through the page and the API (issue 20 item 3).

A file whose rows name their school (学校代码 column) uploaded by a township or county account: every
row must belong to a school in the account's scope — the rows of any other school are refused, each
named by its row number, and the whole file with them (the one rule of every entry: a bad row refuses
the file, ``store.ingest.attendance_files.vet_checks``). Overwriting the day's marks or closing cases
needs the preview's confirmation. The file is then staged as received (``store.ingest.staged``) and one
``morning_check`` run names it by id and SHA-256, signed (``tasks.intake`` checks the submitter's scope
again), or, with no Prefect server, it is recorded here in one transaction
(``store.cases.intake.record_morning_checks``). A school account's file is its own school's only: a row
naming another school is refused by row (:func:`foreign_rows`).
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.access.accounts import Role, school_ids_in
from store.access.submission_check import time_refusal
from store.cases.context import CaseContext
from store.cases.intake import IntakeError, RowError, record_morning_checks
from store.ingest.attendance_files import ERRORS_KEPT, BadRows, NeedsConfirmation, ParsedAttendance, vet_checks
from store.ingest.spool import SheetView, batches, size_of
from store.models import School

from web.deps import ApiError, Principal, WebSettings
from web.services import CheckOutcome, ConfirmationNeeded, Deployments, row_errors, signed_submission

COUNTY_FILE_ROLES = (Role.township, Role.county)


def foreign_rows(parsed: ParsedAttendance, allowed: set[str]) -> tuple[list[RowError], int]:
    """The rows of schools outside ``allowed`` as row errors (the first ERRORS_KEPT, by row), and their count."""
    errors: list[RowError] = []
    count = 0
    for code in parsed.by_school:  # a spool: only the foreign schools' rows are read back
        if code in allowed:
            continue
        marks = parsed.by_school[code]
        count += len(marks)
        errors += [RowError(m.row, m.student_no, f"学校代码「{code}」不在您的管辖范围内，不能提交该校的晨检 "
                                                  f"(school {code} is outside your scope)") for m in marks[:ERRORS_KEPT]]
    errors.sort(key=lambda e: (e.row is None, e.row or 0))
    return errors[:ERRORS_KEPT], count


def school_file_rows(db: Session, who: Principal, parsed: ParsedAttendance) -> tuple[list, list[RowError], int]:
    """A school account's file: (its own school's marks, the file's row errors with every row naming
    another school refused by row, the count of bad rows beyond those listed)."""
    if not parsed.county:
        return parsed.marks, parsed.errors, parsed.more_errors
    own = db.scalar(select(School.code).where(School.id == who.user.school_id))
    foreign, n_foreign = foreign_rows(parsed, {own})
    errors = sorted(parsed.errors + foreign, key=lambda e: (e.row is None, e.row or 0))
    return parsed.by_school.get(own, []), errors[:ERRORS_KEPT], parsed.error_count + n_foreign - len(errors[:ERRORS_KEPT])


def submit_county_file(db: Session, who: Principal, *, settings: WebSettings, deployments: Deployments, data: bytes,
                       filename: str, parsed: ParsedAttendance, day: date, now: datetime,
                       confirm: bool | str = False) -> CheckOutcome:
    """Scope, vet (the one rule), stage and record a county file, or start its run; see the module's text."""
    if who.role not in COUNTY_FILE_ROLES:
        raise ApiError(403, "只有乡镇、县级账号可以上传含多所学校的晨检表 (only township and county accounts)")
    if not parsed.county:
        raise ApiError(422, "乡镇、县级账号上传的晨检表须有「学校代码」列，每行注明学校 (a 学校代码 column is required)")
    if (why := time_refusal(day, now, now)) is not None:
        raise ApiError(422, why)
    allowed = set(db.scalars(select(School.code).where(School.id.in_(school_ids_in(db, who.scope)))))
    known = set(db.scalars(select(School.code).where(School.code.in_(list(parsed.by_school)))))
    foreign, n_foreign = foreign_rows(parsed, allowed | (set(parsed.by_school) - known))  # unknown codes: vet_checks says so
    errors = sorted(parsed.errors + foreign, key=lambda e: (e.row is None, e.row or 0))[:ERRORS_KEPT]
    try:
        review = vet_checks(db, day=day, sheets=SheetView(parsed.by_school, [c for c in parsed.by_school
                                                                           if c in allowed or c not in known]),
                            complete=True, errors=errors, more_errors=parsed.error_count + n_foreign - len(errors),
                            confirm=confirm)
    except BadRows as exc:
        raise ApiError(422, str(exc), row_errors(exc.review.errors)) from None
    except NeedsConfirmation as exc:
        raise ConfirmationNeeded(str(exc), exc.review, day=day, marks=[], complete=True) from None
    del review
    from store.ingest.staged import stage_file

    codes = sorted(parsed.by_school)
    file_id, digest = stage_file(db, data, filename, by=who.actor, now=now)  # a run elsewhere parses it again
    params = signed_submission(settings, {
        "day": day.isoformat(), "school_code": None, "schools": codes, "file_id": file_id, "file_sha256": digest,
        "source": "upload", "submitted_by": who.actor, "submitted_at": now.isoformat(), "complete": True})
    db.commit()  # the staged file, for the run that reads it in its own transaction
    run = deployments.start(settings.morning_check_deployment, {settings.morning_check_parameter: params})
    marks = sum(size_of(parsed.by_school, c) for c in codes)
    label = f"{len(codes)} 所学校"
    if run is not None:
        return CheckOutcome(label, day, "run", run.flow_run_id, run.url, summary={"marks": marks, "schools": len(codes)},
                            submitted_at=now)
    try:  # no Prefect server: recorded here, all schools in one transaction, a batch of whole schools at a time
        results = []
        for batch in batches(parsed.by_school):
            results += record_morning_checks(db, CaseContext(db), batch, day=day, source="upload",
                                             submitted_by=who.actor, now=now, complete=True)
            del batch
    except IntakeError as exc:
        db.rollback()
        raise ApiError(422, str(exc)) from None
    db.commit()
    summary = {k: sum(r.summary()[k] for r in results) for k in ("marks", "continuing", "late")}
    summary |= {"schools": len(results), "duplicate": all(r.duplicate for r in results)}
    return CheckOutcome(label, day, "applied", summary=summary, opened=[c for r in results for c in r.opened],
                        returned=[c for r in results for c in r.returned],
                        excused=[c for r in results for c in r.excused],
                        errors=row_errors([e for r in results for e in r.errors][:ERRORS_KEPT]), submitted_at=now)


def staged_county_file(db: Session, who: Principal, file_id: int, sha256: str) -> tuple[bytes, str]:
    """The file this account staged at its preview (the page's 确认提交 names it): its bytes and name."""
    from store.ingest.staged import StagedFileMissing, staged_bytes
    from store.models.intake_files import StagedFile

    row = db.get(StagedFile, file_id) if 0 < file_id < 2**31 else None
    if row is None or row.created_by != who.actor[:64]:
        raise ApiError(422, "找不到待确认的晨检文件，请重新上传 (no such staged file)")
    try:
        return staged_bytes(db, file_id, sha256)
    except StagedFileMissing as exc:
        raise ApiError(422, str(exc)) from None


def stage_for_preview(db: Session, who: Principal, data: bytes, filename: str, now: datetime) -> tuple[int, str]:
    """The page's preview keeps the file (the confirmation names it by id and SHA-256, never re-sends 10⁵ rows)."""
    from store.ingest.staged import stage_file

    file_id, digest = stage_file(db, data, filename, by=who.actor, now=now)
    db.commit()
    return file_id, digest
