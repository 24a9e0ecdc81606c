"""Morning-check tasks: check a submission, record one school's marks or many schools' at once.

Idempotency key: the submission's content hash (``store.cases.intake.content_hash``): recording the same
school's same marks for the same day again is recognised and changes nothing, so a retried task
or a duplicated flow run opens no case twice.

Nothing in a submission is taken on trust (anyone who reaches the Prefect API can start a run):
:func:`verify_submission` refuses one the web app did not sign, one whose submitter may not act
on those schools or pupils, and one whose day or time is outside policy
(``store.access.submission_check``), before anything is recorded.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Literal

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field
from sqlalchemy import select

from store.cases.context import CaseContext
from store.db import transaction
from store.cases.intake import IntakeError, IntakeResult, MarkIn, normalise_status, record_morning_check, record_morning_checks
from store.models import School
from store.access.signing import sign
from store.access.submission_check import PURPOSE, refusal

from tasks.runtime import DB_RETRIES, clock, store


class MarkRow(BaseModel):
    student_no: str = Field(min_length=1, max_length=32)
    status: str = Field(description="present | unexcused | sick_leave | … or 到校/缺勤/病假/事假 …")
    reason: str = "unknown"
    school_code: str | None = Field(None, description="only in a county SIS export spanning schools")
    row: int | None = None


class MorningCheckSubmission(BaseModel):
    """One morning check as submitted from the web page, the API, the CLI, an upload or the SIS."""

    day: date
    school_code: str | None = Field(None, description="None: a county SIS export, each row names its school")
    schools: list[str] = Field([], description="SIS export: every school it covers (a school without rows is all present)")
    marks: list[MarkRow] = []
    source: Literal["web", "api", "cli", "upload", "sis", "demo"] = "api"
    submitted_by: str = "unknown"
    submitted_at: datetime | None = None
    complete: bool = Field(True, description="a whole check: pupils not listed are present")
    file_id: int | None = Field(None, description="a county file staged by the entry (store.ingest.staged): its rows "
                                                  "are the marks (a run's parameters are capped at 512 kB)")
    file_sha256: str | None = Field(None, description="the staged file's SHA-256, signed with the rest")
    signature: str | None = Field(None, description="the web app's HMAC of the other fields; unsigned is refused")

    def content(self) -> dict:
        """What the signature covers: every field but the signature, as JSON values."""
        return self.model_dump(mode="json", exclude={"signature"})

    def signed(self, secret: str | None = None) -> "MorningCheckSubmission":
        """This submission signed with ``secret`` (default: the settings' secret_key)."""
        return self.model_copy(update={"signature": sign(PURPOSE, self.content(), secret=secret)})


class Rows:
    """A school's rows (``MarkIn`` tuples) as one opaque task parameter. Prefect walks a task's parameters
    element by element (``visit_collection``, twice per task: to resolve them and to record its inputs),
    which for a county file's 10⁵ rows took longer than recording them; it does not look inside this."""

    __slots__ = ("_marks", "_source", "_code", "_size")

    def __init__(self, marks: list[MarkIn] | None = None, *, source=None, code: str = "", size: int = 0):
        """``marks``, or the rows of school ``code`` in ``source`` (a parse's spool,
        ``store.ingest.spool``), read back each time they are asked for and never kept: a county file's
        sheets are held by the flow for the whole run, their rows only by the task recording them."""
        self._marks, self._source, self._code = marks, source, code
        self._size = len(marks) if marks is not None else size

    @property
    def marks(self) -> list[MarkIn]:
        return self._marks if self._marks is not None else self._source[self._code]

    def __len__(self) -> int:
        return self._size


class SchoolSheet(BaseModel):
    """One school's part of a submission, its rows held by :class:`Rows` (built with ``model_construct``)."""
    school_code: str
    marks: Rows = Field(json_schema_extra={"type": "array"})

    model_config = {"arbitrary_types_allowed": True}


class SubmissionRejected(ValueError):
    pass


@task(name="verify_submission", cache_policy=NO_CACHE)
def verify_submission(submission: MorningCheckSubmission) -> None:
    """Refuse (record nothing) a submission not signed by the web app, from an account that does
    not exist, is deactivated or may not act on its schools, or for a day outside policy."""
    with transaction(store()) as s:
        why = refusal(s, submission.content(), submission.signature, now=clock().now())
    if why is not None:
        raise SubmissionRejected(why)


def _staged_sheets(submission: MorningCheckSubmission) -> list[SchoolSheet]:
    """The rows of the submission's staged file by school (hash checked; parsed by the entry in this
    process, else parsed again streaming: ``store.ingest.staged.staged_parse``); a file with a bad row,
    a row of a school the signed submission does not name, or an unknown school is refused whole."""
    from store.ingest.attendance_files import bad_rows_message, parse_attendance
    from store.ingest.staged import StagedFileMissing, staged_parse

    if submission.marks:
        raise SubmissionRejected("晨检文件与逐行提交不能同时使用 (a file submission carries no inline marks)")
    try:
        with transaction(store()) as s:
            parsed = staged_parse(s, submission.file_id, submission.file_sha256 or "", parse_attendance)
    except StagedFileMissing as exc:
        raise SubmissionRejected(str(exc)) from None
    if parsed.error_count:
        raise SubmissionRejected(bad_rows_message(parsed.error_count, len(parsed.errors)) + "; " + "; ".join(
            f"row {e.row}: {e.message}" for e in parsed.errors[:20]))
    from store.ingest.spool import size_of

    named = [submission.school_code] if submission.school_code else submission.schools
    sheets: dict[str, Rows] = {code: Rows([]) for code in named}  # a named school without rows: all present
    for key in parsed.by_school:
        code = key or submission.school_code
        if code not in sheets:
            raise SubmissionRejected(f"文件中的学校代码 {code} 不在提交的学校之中 (school not named by the submission)")
        # the parse's MarkIn rows as they are (statuses already in the store's words), read from its spool
        # by the task that records them (ROWS_PER_TASK at a time), never all at once
        sheets[code] = Rows(source=parsed.by_school, code=key, size=size_of(parsed.by_school, key))
    with transaction(store()) as s:
        known = set(s.scalars(select(School.code).where(School.code.in_(list(sheets)))))
    if unknown := sorted(set(sheets) - known):
        raise SubmissionRejected(f"学校代码不存在 unknown school code(s): {', '.join(unknown)}")
    return [SchoolSheet.model_construct(school_code=code, marks=rows) for code, rows in sorted(sheets.items())]


@task(name="validate_submission", cache_policy=NO_CACHE)
def validate_submission(submission: MorningCheckSubmission) -> list[SchoolSheet]:
    """Split the submission (its marks, or its staged file's rows) by school and refuse what cannot be
    recorded at all."""
    if submission.file_id is not None:
        return _staged_sheets(submission)
    problems = []
    by_school: dict[str, list[MarkRow]] = defaultdict(list)
    for i, m in enumerate(submission.marks):
        code = submission.school_code or m.school_code
        if not code:
            problems.append(f"row {m.row or i + 1}: 缺少学校代码 (no school code)")
            continue
        if normalise_status(m.status) is None:
            problems.append(f"row {m.row or i + 1}: 未知出勤状态 '{m.status}' (unknown status)")
        by_school[code].append(m)
    for code in ([submission.school_code] if submission.school_code else submission.schools):
        by_school.setdefault(code, [])  # an all-present check still counts (everyone back)
    with transaction(store()) as s:
        known = set(s.scalars(select(School.code).where(School.code.in_(list(by_school)))))
    unknown = sorted(set(by_school) - known)
    if unknown:
        problems.append(f"学校代码不存在 unknown school code(s): {', '.join(unknown)}")
    if problems:
        raise SubmissionRejected("; ".join(problems[:20]))
    return [SchoolSheet.model_construct(school_code=code, marks=Rows([MarkIn(m.student_no, m.status, m.reason, m.row)
                                                                      for m in marks]))
            for code, marks in sorted(by_school.items())]


def _marks(sheet: SchoolSheet) -> list[MarkIn]:
    return sheet.marks.marks


def _outcome(result: IntakeResult) -> dict:
    out = result.summary()
    out.update(submission_id=result.submission_id, opened_ids=result.opened, returned_ids=result.returned,
               excused_ids=result.excused,
               row_errors=[{"row": e.row, "student_no": e.student_no, "message": e.message} for e in result.errors[:50]])
    return out


def _record_one(sheet: SchoolSheet, *, day: date, source: str, submitted_by: str, now: datetime, complete: bool) -> dict:
    try:
        with transaction(store()) as s:
            result = record_morning_check(s, CaseContext(s), school_code=sheet.school_code, day=day, marks=_marks(sheet),
                                          source=source, submitted_by=submitted_by, now=now, complete=complete)
    except IntakeError as exc:
        return {"school": sheet.school_code, "day": day.isoformat(), "rejected": str(exc), "opened": 0,
                "returned": 0, "excused": 0, "continuing": 0, "errors": 0, "marks": 0, "duplicate": False}
    return _outcome(result)


@task(name="record_school_check", **DB_RETRIES, cache_policy=NO_CACHE)
def record_school_check(sheet: SchoolSheet, *, day: date, source: str, submitted_by: str, now: datetime,
                        complete: bool = True) -> dict:
    """Record one school's marks: open cases, extend streaks, return the pupils who are back."""
    return _record_one(sheet, day=day, source=source, submitted_by=submitted_by, now=now, complete=complete)


@task(name="record_school_checks", **DB_RETRIES, cache_policy=NO_CACHE)
def record_school_checks(sheets: list[SchoolSheet], *, day: date, source: str, submitted_by: str, now: datetime,
                         complete: bool = True) -> list[dict]:
    """Record many schools' marks in one unit of work, set-based (``store.cases.intake.record_morning_checks``:
    each school its own submission, duplicate check and result, as recorded one by one). A file
    that cannot be recorded whole (a school for which the day is not a school day) is recorded
    school by school instead, so that only that school is rejected."""
    try:
        with transaction(store()) as s:
            results = record_morning_checks(s, CaseContext(s), {sheet.school_code: _marks(sheet) for sheet in sheets},
                                            day=day, source=source, submitted_by=submitted_by, now=now,
                                            complete=complete)
    except IntakeError:
        return [_record_one(sheet, day=day, source=source, submitted_by=submitted_by, now=now, complete=complete)
                for sheet in sheets]
    return [_outcome(r) for r in results]
