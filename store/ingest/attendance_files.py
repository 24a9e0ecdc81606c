"""Read a morning-check file (CSV or XLSX, as a school office exports it) into ``MarkIn`` rows.

What schools send: a title line or two, then a header row (学籍号, 姓名, 班级, 出勤状态, 缺勤原因…),
then one row per pupil; CSV in UTF-8 (with or without BOM) or GBK/GB18030 from Chinese Excel;
status words such as 到校 / √ / 缺勤 / 病假. Each data row keeps its row number as the spreadsheet
shows it, and every row that cannot be read becomes a :class:`~store.cases.intake.RowError` saying why,
so the clerk can fix that line and send the file again.

Used by the web upload and the ``baoxue attendance import`` command alike, as is :func:`vet_check`, the
one rule every entry (CLI, page, API) applies before a check is recorded: bad rows refuse the whole
file; overwriting the day's marks or closing open cases needs a confirmation.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import chain, islice
from typing import Iterator, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.states import OPEN_STATES, REASON_LABELS, DropoutReason

from store.bulk import driver_rows
from store.db import lean_pages
from store.cases.intake import LEAVE, IntakeResult, MarkIn, PupilRef, RowError, _day_state, _validate, normalise_status
from store.models import Case, Pupil, School
from store.ingest.spool import MarkSpool, batches, size_of
from store.ingest.tabular import TableError, check_size, csv_encoding, iter_csv, iter_xlsx

# header → field; matched after removing spaces, "*" and brackets ("学籍号（必填）" works).
HEADERS = {
    "student_no": ["学籍号", "全国学籍号", "学籍编号", "学号", "学生编号", "studentno", "student_no", "学生学籍号"],
    "name": ["姓名", "学生姓名", "name"],
    "class": ["班级", "班级名称", "class"],
    "status": ["出勤状态", "出勤", "状态", "晨检结果", "晨检", "考勤", "到校情况", "是否到校", "status"],
    "reason": ["缺勤原因", "原因", "辍学原因", "未到原因", "reason"],
    "day": ["日期", "晨检日期", "date", "day"],
    "school": ["学校代码", "学校标识码", "学校编号", "schoolcode", "school_code"],  # a county's export: rows name their school
}
EXTRA_STATUS = {
    "√": "present", "✓": "present", "✔": "present", "到": "present", "正常": "present", "已到": "present",
    "×": "unexcused", "✗": "unexcused", "✘": "unexcused", "缺": "unexcused", "未到校": "unexcused",
    "无故未到": "unexcused", "旷": "unexcused", "病": "sick_leave", "事": "personal_leave",
}
REASON_WORDS = {label: key for key, label in REASON_LABELS.items() if key in DropoutReason.__members__}
REASON_WORDS |= {"厌学": "study", "学业困难": "study", "贫困": "poverty", "打工": "working_away", "务工": "working_away",
                 "生病": "illness", "疾病": "illness", "心理": "psychological", "家庭": "family", "灾害": "disaster",
                 "意外": "disaster", "其他": "other", "不明": "unknown", "": "unknown"}


class AttendanceFileError(TableError):
    """The file as a whole cannot be read (wrong format, no header row…)."""


ERRORS_KEPT = 200  # row errors listed (a file of 10⁵ bad rows is counted, not listed whole)
NO_SCHOOL = ""     # the key of rows of a file without a 学校代码 column (one school's check)


@dataclass
class ParsedAttendance:
    """A morning-check file read in one streaming pass: only what the check needs is kept (one
    compact ``MarkIn`` per usable row, by school, in a spool file: ``store.ingest.spool``), never the
    file's rows or text; memory does not grow with the row count."""
    by_school: Mapping[str, list[MarkIn]] = field(default_factory=dict)  # school code (学校代码 column) → marks
    errors: list[RowError] = field(default_factory=list)  # the first ERRORS_KEPT row errors
    error_count: int = 0             # all row errors (``errors`` lists the first ERRORS_KEPT)
    rows: int = 0                    # data rows read (blank rows not counted)
    columns: dict[str, str] = field(default_factory=dict)  # field → header as written
    days: set[date] = field(default_factory=set)           # dates named in a 日期 column

    @property
    def marks(self) -> list[MarkIn]:
        """Every mark of the file (one school's check: the school named in a 学校代码 column, if any, is
        checked by the entry against the submitter's own)."""
        if len(self.by_school) == 1:
            return next(iter(self.by_school.values()))
        return [m for marks in self.by_school.values() for m in marks]

    @property
    def county(self) -> bool:
        """A file whose rows name their schools (a county's export)."""
        return "school" in self.columns

    @property
    def more_errors(self) -> int:
        return self.error_count - len(self.errors)

    def error(self, e: RowError) -> None:
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(e)


def _key(header: object) -> str:
    text = str(header or "").strip().lower().replace("必填", "")
    for ch in " \t*＊:：()（）[]【】":
        text = text.replace(ch, "")
    return text


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


HEAD_ROWS = 15  # the header is looked for in the first rows (a title line or two may come first)


def iter_rows(data: bytes, filename: str = "") -> Iterator[tuple[int, list[str]]]:
    """(row number as the spreadsheet shows it, cells) of the first sheet or the CSV text, streamed:
    no row count (the file's byte size bounds it: BAOXUE_UPLOAD_MAX_MB, :func:`check_size`)."""
    check_size(data)
    name = (filename or "").lower()
    if data[:4] == b"PK\x03\x04" or name.endswith((".xlsx", ".xlsm")):
        return _xlsx_rows(data)
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" or name.endswith(".xls"):
        raise AttendanceFileError("不支持旧版 .xls 文件，请在 Excel 中另存为 .xlsx 或 CSV 后再上传 (.xls is not supported)")
    encoding = csv_encoding(data)
    head = codecs.getincrementaldecoder(encoding)(errors="ignore").decode(data[:16384])
    try:
        sniffed = csv.Sniffer().sniff(head[:4096], delimiters=",\t;，").delimiter
    except csv.Error:
        sniffed = ","
    # Only the delimiter is guessed (the sniffer's quoting guesses split a quoted cell holding a line
    # break), and a guess that shows no 学籍号 header in the first rows gives way to the next delimiter.
    first: str | None = None
    failure: TableError | None = None
    for delimiter in dict.fromkeys([sniffed, ",", "\t", ";", "，"]):
        try:
            rows = list(islice(_csv_rows(data, delimiter, encoding), HEAD_ROWS))
        except TableError as exc:
            failure = failure or exc
            continue
        if _has_header(rows):
            return _csv_rows(data, delimiter, encoding)
        first = delimiter if first is None else first
    if first is None:
        raise failure
    return _csv_rows(data, first, encoding)


def read_rows(data: bytes, filename: str = "") -> list[tuple[int, list[str]]]:
    """:func:`iter_rows` as a list (small files and tests)."""
    return list(iter_rows(data, filename))


def _csv_rows(data: bytes, delimiter: str, encoding: str) -> Iterator[tuple[int, list[str]]]:
    dialect = type("ClerkCsv", (csv.excel,), {"delimiter": delimiter})
    for n, row in enumerate(iter_csv(data, dialect, encoding), start=1):
        yield n, [c.strip() for c in row]


def _has_header(rows: list[tuple[int, list[str]]]) -> bool:
    wanted = {_key(a) for a in HEADERS["student_no"]}
    return any(_key(c) in wanted for _, cells in rows[:HEAD_ROWS] for c in cells)


def _xlsx_rows(data: bytes) -> Iterator[tuple[int, list[str]]]:
    try:
        yield from enumerate(iter_xlsx(data, _cell), start=1)
    except AttendanceFileError:
        raise
    except TableError as exc:
        raise AttendanceFileError(str(exc)) from None


def _find_header(rows: list[tuple[int, list[str]]]) -> tuple[int, dict[str, int], dict[str, str]]:
    for i, (_, cells) in enumerate(rows[:HEAD_ROWS]):
        keys = [_key(c) for c in cells]
        found: dict[str, int] = {}
        for fld, aliases in HEADERS.items():
            wanted = {_key(a) for a in aliases}
            for col, k in enumerate(keys):
                if k in wanted and fld not in found:
                    found[fld] = col
        if "student_no" in found:
            if "status" not in found:
                raise AttendanceFileError(
                    "表头缺少「出勤状态」列（可写 到校/缺勤/病假/事假）(header row has no status column)")
            return i, found, {f: cells[c] for f, c in found.items()}
    raise AttendanceFileError(
        "找不到表头：前几行中应有「学籍号」和「出勤状态」两列 (no header row with 学籍号 and 出勤状态 found)")


def status_of(raw: str) -> str | None:
    raw = (raw or "").strip()
    return EXTRA_STATUS.get(raw) or normalise_status(raw)


def reason_of(raw: str) -> str:
    raw = (raw or "").strip()
    if raw in DropoutReason.__members__:
        return raw
    if raw in REASON_WORDS:
        return REASON_WORDS[raw]
    return next((key for word, key in REASON_WORDS.items() if word and word in raw), "other")


def _day(raw: str) -> date | None:
    raw = raw.strip().replace("/", "-").replace(".", "-").replace("年", "-").replace("月", "-").replace("日", "")
    try:
        return date.fromisoformat("-".join(p.zfill(2) for p in raw.split("-")))
    except ValueError:
        return None


def parse_attendance(data: bytes, *, filename: str = "") -> ParsedAttendance:
    """Every data row as a ``MarkIn`` (status in the store's words) under its school (a 学校代码
    column, else :data:`NO_SCHOOL`), or a row error saying why not; one streaming pass, no row count."""
    if not data:
        raise AttendanceFileError("文件是空的 (the file is empty)")
    rows = iter_rows(data, filename)
    head = list(islice(rows, HEAD_ROWS))
    start, cols, headers = _find_header(head)
    out = ParsedAttendance(by_school=MarkSpool(), columns=headers)  # rows go to a spool file a chunk at a time
    spool = out.by_school
    get = lambda cells, fld: cells[cols[fld]].strip() if fld in cols and cols[fld] < len(cells) else ""
    # the few distinct words of a county file's status and reason columns, looked up once each
    statuses: dict[str, str | None] = {}
    reasons: dict[str, str] = {}
    one_school = "school" not in cols
    if one_school:
        spool.declare(NO_SCHOOL)
    for number, cells in chain(head[start + 1:], rows):
        if not any(c.strip() for c in cells):
            continue
        out.rows += 1  # no row count: the file's byte size bounds it (BAOXUE_UPLOAD_MAX_MB)
        student_no, raw_status = get(cells, "student_no"), get(cells, "status")
        if not student_no:
            out.error(RowError(number, "", "学籍号为空 (student number missing)"))
            continue
        if raw_status not in statuses:
            statuses[raw_status] = status_of(raw_status)
        status = statuses[raw_status]
        if not raw_status:
            out.error(RowError(number, student_no, "出勤状态为空，请填写 到校/缺勤/病假/事假 (status missing)"))
            continue
        if status is None:
            out.error(RowError(number, student_no,
                               f"无法识别的出勤状态「{raw_status}」，请填写 到校/缺勤/病假/事假 (unknown status)"))
            continue
        if one_school:
            code = NO_SCHOOL
        else:
            code = get(cells, "school")
            if not code:
                out.error(RowError(number, student_no, "学校代码为空 (school code missing)"))
                continue
        if "day" in cols and (raw_day := get(cells, "day")):
            day = _day(raw_day)
            if day is None:
                out.error(RowError(number, student_no, f"日期「{raw_day}」无法识别 (bad date)"))
                continue
            out.days.add(day)
        if status == "unexcused":
            raw_reason = get(cells, "reason")
            if raw_reason not in reasons:
                reasons[raw_reason] = reason_of(raw_reason)
            reason = reasons[raw_reason]
        else:
            reason = "unknown"
        spool.add(code, (student_no, status, reason, number))
    return out


def read_marks(data: bytes, filename: str = "") -> tuple[list[MarkIn], list[RowError]]:
    """The marks and row errors of a file (the CLI's ``attendance import``); raises ``TableError``."""
    parsed = parse_attendance(data, filename=filename)
    return parsed.marks, parsed.errors


# -- what a morning check would change, before it is applied (one rule for the CLI, the pages, the API) ----
# The rule for a file with bad rows: the whole file is refused and every bad row is listed with its row
# number and reason (README「晨检上传」). Keeping the good rows would record an unreadable row's pupil as
# present (a whole check lists everyone) and close their case — the harm the check is there to prevent.

@dataclass
class CheckReview:
    """What a check would do to the day's record: the bad rows (nothing is applied while there are
    any), the marks already recorded that day it would change, the open cases it would close."""
    school_code: str
    day: date
    errors: list[RowError] = field(default_factory=list)  # the first ERRORS_KEPT bad rows, by row number
    error_count: int = 0          # every bad row (the file's and the roster's)
    overwritten: int = 0          # absences/leaves already recorded that day whose status this check changes
    returned: list[int] = field(default_factory=list)   # open cases it closes as 返校
    excused: list[int] = field(default_factory=list)    # open cases it closes as 补假排除

    @property
    def closing(self) -> list[int]:
        return sorted(self.returned + self.excused)

    @property
    def needs_confirmation(self) -> bool:
        return bool(self.overwritten or self.returned or self.excused)

    @property
    def message(self) -> str:
        return f"将覆盖 {self.overwritten} 条已上报记录，{len(self.closing)} 个案件将结案"

    @property
    def token(self) -> str:
        """What the user saw and confirmed: a confirmation given for another preview is no confirmation."""
        body = f"{self.school_code}|{self.day}|{self.overwritten}|{self.returned}|{self.excused}"
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def as_dict(self) -> dict:
        return {"overwritten": self.overwritten, "returned_case_ids": self.returned, "excused_case_ids": self.excused,
                "closing": len(self.closing), "message": self.message, "confirm_token": self.token}


class CheckRefused(ValueError):
    """Nothing of the check was applied: bad rows (``review.errors``) or a change not confirmed."""

    def __init__(self, message: str, review: CheckReview):
        super().__init__(message)
        self.review = review


def bad_rows_message(count: int, listed: int) -> str:
    shown = f"（列出前 {listed} 行）" if listed < count else ""
    return (f"文件中有 {count} 行有误{shown}，整份晨检未保存，请修改这些行后重新提交 "
            f"({count} rows with errors, nothing saved)")


class BadRows(CheckRefused):
    pass


class NeedsConfirmation(CheckRefused):
    pass


def review_check(session: Session, *, school_code: str, day: date, marks: list[MarkIn], complete: bool = True,
                 errors: list[RowError] | None = None, more_errors: int = 0) -> CheckReview:
    """What ``marks`` would change if recorded as the check of ``day`` (reads, writes nothing): the file's
    own ``errors`` and the rows the school's roster refuses; the day's marks it overwrites; the open
    cases it closes (a pupil with an open case who is now present or on leave). ``more_errors``: the
    file's bad rows beyond those listed in ``errors`` (counted, not listed)."""
    review = CheckReview(school_code, day, errors=list(errors or []))
    review.error_count = len(review.errors) + more_errors
    school_id = session.scalar(select(School.id).where(School.code == school_code))
    if school_id is None:
        return review
    _review_schools(session, {school_code: school_id}, {school_code: marks}, {school_code: review}, day=day,
                    complete=complete)
    review.errors.sort(key=lambda e: (e.row is None, e.row or 0))
    del review.errors[ERRORS_KEPT:]
    return review


def _review_schools(session: Session, ids: dict[str, int], sheets: dict[str, list[MarkIn]],
                    reviews: dict[str, CheckReview], *, day: date, complete: bool) -> None:
    """Fill each school's review, set-based: the rosters, the day's marks and the open cases of all the
    schools are read with one query each (a county file: 10² schools, 10⁵ rows)."""
    by_id = {sid: code for code, sid in ids.items()}
    school_ids = list(by_id)
    rosters: dict[int, dict[str, PupilRef]] = {sid: {} for sid in school_ids}
    ref = PupilRef._make
    for sid, no, *pupil in driver_rows(session, select(Pupil.school_id, Pupil.student_no, Pupil.id, Pupil.class_id)
                                       .where(Pupil.school_id.in_(school_ids))):
        rosters[sid][no] = ref(pupil)
    status: dict[int, dict[int, str]] = {}
    for code, sid in ids.items():
        review = reviews[code]
        probe = IntakeResult(0, code, day)
        good = _validate(sheets[code], rosters.pop(sid), probe)
        review.error_count += len(probe.errors)
        review.errors += probe.errors[:ERRORS_KEPT]
        status[sid] = {pid: st for pid, (_, st, _) in good.items()}
        del good, probe
    for sid, recorded in _day_state(session, school_ids, day).items():
        review, own = reviews[by_id[sid]], status[sid]
        for pid, (_, old) in recorded.marks.items():  # an absence or leave recorded that day, changed (a present
            new = own.get(pid, "present" if complete else old)  # mark turned absent only adds what the day lacked)
            if old != "present" and new != old:
                review.overwritten += 1
    for cid, sid, pid in session.execute(select(Case.id, Case.school_id, Case.pupil_id).where(
            Case.school_id.in_(school_ids), Case.state.in_([s.value for s in OPEN_STATES]), Case.opened_on <= day)
            .order_by(Case.id)):
        own = status[sid]
        if pid not in own and not complete:
            continue
        new = own.get(pid, "present")
        if new == "present":
            reviews[by_id[sid]].returned.append(cid)
        elif new in LEAVE:
            reviews[by_id[sid]].excused.append(cid)


def vet_check(session: Session, *, school_code: str, day: date, marks: list[MarkIn], complete: bool = True,
              errors: list[RowError] | None = None, more_errors: int = 0, confirm: bool | str = False) -> CheckReview:
    """The check every entry (CLI, page, API) runs before recording a morning check: a file with a bad
    row is refused whole (:class:`BadRows`, every row listed); a check that overwrites marks recorded
    that day or closes open cases needs ``confirm`` (True, or the preview's ``token``), else
    :class:`NeedsConfirmation` with the preview. Nothing is written either way."""
    review = review_check(session, school_code=school_code, day=day, marks=marks, complete=complete, errors=errors,
                          more_errors=more_errors)
    if review.error_count:
        raise BadRows(bad_rows_message(review.error_count, len(review.errors)), review)
    if review.needs_confirmation and not (confirm is True or (isinstance(confirm, str) and confirm == review.token)):
        raise NeedsConfirmation(f"{review.message}，请确认后再提交；未作任何改动 (confirmation needed, nothing saved)",
                                review)
    return review


def vet_checks(session: Session, *, day: date, sheets: dict[str, list[MarkIn]], complete: bool = True,
               errors: list[RowError] | None = None, more_errors: int = 0, confirm: bool | str = False) -> CheckReview:
    """:func:`vet_check` for a county file (``sheets``: school code → its rows): every school's check is
    reviewed, a bad row of any school (or a school code that does not exist) refuses the whole file
    (:class:`BadRows`, the first ERRORS_KEPT rows listed, all counted), and the overwrites and closings
    of all schools together need one ``confirm``. Nothing is written either way."""
    total = CheckReview("*", day, errors=list(errors or []))
    total.error_count = len(total.errors) + more_errors
    ids = dict(session.execute(select(School.code, School.id).where(School.code.in_(list(sheets)))).all())
    for code in sorted(sheets):
        if code not in ids:
            n = size_of(sheets, code)
            first = sheets[code][0] if n else None
            total.error_count += n
            total.errors.append(RowError(first.row if first else None, first.student_no if first else "",
                                         f"学校代码「{code}」不存在，该校 {n} 行均未读取 (unknown school code)"))
    # the known schools reviewed a batch of whole schools at a time (one query per table and batch, not four
    # per school; about BATCH_ROWS rows held at once, whatever the file's length), summed into one preview
    # (the roster is read once, so through a small page cache: lean_pages)
    with lean_pages(session):
        for batch in batches(sheets, [code for code in sheets if code in ids]):
            reviews = {code: CheckReview(code, day) for code in batch}
            _review_schools(session, {code: ids[code] for code in batch}, batch, reviews, day=day, complete=complete)
            del batch
            for review in reviews.values():
                total.error_count += review.error_count
                total.errors += review.errors
                total.overwritten += review.overwritten
                total.returned += review.returned
                total.excused += review.excused
            del reviews
            total.errors.sort(key=lambda e: (e.row is None, e.row or 0))
            del total.errors[ERRORS_KEPT:]
    total.errors.sort(key=lambda e: (e.row is None, e.row or 0))
    del total.errors[ERRORS_KEPT:]
    total.returned.sort()
    total.excused.sort()
    if total.error_count:
        raise BadRows(bad_rows_message(total.error_count, len(total.errors)), total)
    if total.needs_confirmation and not (confirm is True or (isinstance(confirm, str) and confirm == total.token)):
        raise NeedsConfirmation(f"{total.message}，请确认后再提交；未作任何改动 (confirmation needed, nothing saved)", total)
    return total
