"""What the pages and the API do, in one place so both behave alike.

- the morning check: scope the marks to the submitter, then start the ``morning_check``
  deployment run when a Prefect server is configured, else record it in-process with the same
  service (``store.cases.intake.record_morning_check``);
- a staff action on a case: permission, optimistic version check, facts, ``store.cases.actions`` (which
  checks the payload against its model);
- attachments: upload (``store.cases.attachments``: sniffed, capped), served only within scope;
- which actions the page offers for a case (the machine's, the role's, the policy's).

Never imports flows/: a run is started by deployment name.
"""
from __future__ import annotations

import csv
import io
import logging
import mimetypes
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from fastapi import UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.case_machine import ForbiddenEvent, allowed_events
from machines.payloads import PayloadInvalid
from machines.policy import Policy
from machines.states import REASON_LABELS, Action, CaseState, DropoutReason, ExcuseReason, OutsideReason
from machines.vocabulary import EVENT_LABELS  # noqa: F401 - the pages' and API's event labels
from machines.vocabulary import TEMPLATE_STATUS_WORDS
from store.cases import attachments
from store.reporting import dashboards as dash
from store.access.masking import full_document_for, mask_document
from store.access.scope import Scope
from store.ingest.tabular import csv_safe, xlsx_safe
from store.access.accounts import Role, may_fire
from store.models.attachments import Attachment
from store.ingest.check_result import check_result
from store.ingest.attendance_files import BadRows, NeedsConfirmation, ParsedAttendance, vet_check
from store.cases.actions import CaseConflict, apply_event, load_for_update, refuse_unapproved_leave
from store.cases.context import CaseContext
from store.cases.intake import IntakeError, MarkIn, RowError, record_morning_check
from store.access.submission_check import time_refusal
from store.models import Case, Pupil, School

from web.deps import FORBIDDEN, NOT_FOUND_CASE, SHANGHAI, ApiError, Principal, WebSettings

PHOTO_EVENTS = {"record_home_visit", "record_collective_visit"}
log = logging.getLogger("baoxue.web")


def recent_runs(deployments: Deployments) -> tuple[list[dict[str, Any]] | None, str | None]:
    """(runs, error): runs is None when no Prefect server is configured."""
    if not hasattr(deployments, "recent_runs"):
        return None, None
    try:
        return deployments.recent_runs(), None
    except Exception as exc:  # the server is configured but down
        return [], f"无法连接 Prefect 服务：{type(exc).__name__}"


def row_errors(errors: list[RowError]) -> list[dict[str, Any]]:
    return [{"row": e.row, "student_no": e.student_no, "message": e.message} for e in errors]


# -- deployments ------------------------------------------------------------------------------------
@dataclass
class RunStarted:
    flow_run_id: str
    url: str | None


class Deployments(Protocol):
    def start(self, name: str, parameters: dict[str, Any], *, idempotency_key: str | None = None) -> RunStarted | None:
        """Start a run of deployment ``name``; None when no Prefect server or no such deployment."""


class InProcess:
    """No Prefect server: every morning check is recorded by this process (tests, a laptop)."""

    def start(self, name: str, parameters: dict[str, Any], *, idempotency_key: str | None = None) -> None:
        return None

    def recent_runs(self, limit: int = 50) -> None:
        return None


class PrefectDeployments:
    """Starts deployment runs on the Prefect server in ``PREFECT_API_URL`` (none: in-process)."""

    def __init__(self, ui_url: str | None = None):
        self._ui_url = ui_url

    @staticmethod
    def api_url() -> str | None:
        from prefect.settings import get_current_settings

        return get_current_settings().api.url

    def ui_url(self) -> str | None:
        if self._ui_url:
            return self._ui_url.rstrip("/")
        from prefect.settings import get_current_settings

        s = get_current_settings()
        if s.ui_url:
            return str(s.ui_url).rstrip("/")
        api = self.api_url()
        return api[: -len("/api")] if api and api.endswith("/api") else None

    def run_url(self, flow_run_id: str) -> str | None:
        ui = self.ui_url()
        return f"{ui}/runs/flow-run/{flow_run_id}" if ui else None

    def start(self, name: str, parameters: dict[str, Any], *, idempotency_key: str | None = None) -> RunStarted | None:
        if not self.api_url():
            return None
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound

        try:
            run = run_deployment(name, parameters=parameters, timeout=0, idempotency_key=idempotency_key,
                                 as_subflow=False)
        except ObjectNotFound:
            return None
        except Exception as exc:  # server unreachable: record here; a resubmission is a no-op by content hash
            log.warning("could not start deployment %s (%s); applying in-process", name, exc)
            return None
        return RunStarted(str(run.id), self.run_url(str(run.id)))

    def run_state(self, flow_run_id: str) -> str | None:
        """The run's state type (COMPLETED, FAILED…), None when no server is configured."""
        if not self.api_url():
            return None
        from uuid import UUID

        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(flow_run_id))
        return run.state.type.value if run.state else None

    def recent_runs(self, limit: int = 50) -> list[dict[str, Any]] | None:
        """The latest flow runs with their UI links; None when no Prefect server is configured."""
        if not self.api_url():
            return None
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.sorting import FlowRunSort

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=limit)
            flows = {f.id: f.name for f in client.read_flows(limit=200)}
        return [{"id": str(r.id), "name": r.name, "flow": flows.get(r.flow_id, ""), "state": r.state_name,
                 "start": r.start_time, "url": self.run_url(str(r.id))} for r in runs]


# -- the morning check ----------------------------------------------------------------------------
@dataclass
class CheckOutcome:
    school: str
    day: date
    mode: str  # "run" (a deployment run was started) | "applied" (recorded here)
    flow_run_id: str | None = None
    run_url: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    opened: list[int] = field(default_factory=list)
    returned: list[int] = field(default_factory=list)
    excused: list[int] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    submitted_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"school": self.school, "day": self.day.isoformat(), "mode": self.mode, "flow_run_id": self.flow_run_id,
                "run_url": self.run_url, "summary": self.summary, "opened_case_ids": self.opened,
                "returned_case_ids": self.returned, "excused_case_ids": self.excused, "errors": self.errors}


def school_for_check(db: Session, who: Principal, school_code: str | None) -> School:
    """The school a morning check is for: the submitter's own (schools report their own checks)."""
    if who.role not in (Role.head_teacher, Role.school_staff):
        raise ApiError(403, FORBIDDEN)
    school = db.get(School, who.user.school_id)
    if school_code and school_code != school.code:
        raise ApiError(403, f"只能提交本校（{school.name}）的晨检 (you may submit only your own school's check)")
    return school


def _scoped_marks(db: Session, who: Principal, school: School, marks: list[MarkIn]) -> tuple[list[MarkIn], list[RowError], bool]:
    """A head teacher's check covers their classes: other pupils are refused, unlisted ones of their
    classes are present, and the school's other classes are left alone (``complete`` = False)."""
    if who.role is not Role.head_teacher:
        return marks, [], True
    mine = {no: cls for no, cls in db.execute(select(Pupil.student_no, Pupil.class_id).where(
        Pupil.school_id == school.id, Pupil.class_id.in_(who.scope.class_ids or []), Pupil.enrolled))}
    kept, refused = [], []
    for m in marks:
        if m.student_no.strip() in mine:
            kept.append(m)
        else:
            refused.append(RowError(m.row, m.student_no, "不是您所带班级的学生 (pupil not in your classes)"))
    listed = {m.student_no.strip() for m in kept}
    kept += [MarkIn(no, "present") for no in sorted(mine) if no not in listed]
    return kept, refused, False


def signed_submission(settings: WebSettings, params: dict[str, Any]) -> dict[str, Any]:
    """The flow's parameter: the submission with its signature (``secret_key``); a worker records
    only what carries one (``tasks.intake.verify_submission``)."""
    from tasks.intake import MorningCheckSubmission

    return MorningCheckSubmission(**params).signed(settings.secret_key).model_dump(mode="json", exclude_none=True)


class ConfirmationNeeded(ApiError):
    """A check that would overwrite the day's marks or close open cases, sent without confirmation:
    nothing was applied; the page shows the preview (``review``) and asks again with its token."""

    def __init__(self, message: str, review, *, day: date, marks: list[MarkIn], complete: bool):
        super().__init__(409, message, preview=review.as_dict())
        self.review, self.day, self.marks, self.complete = review, day, marks, complete


def submit_morning_check(
    db: Session, who: Principal, *, settings: WebSettings, deployments: Deployments, school_code: str | None,
    day: date, marks: list[MarkIn], source: str, now: datetime, complete: bool = True,
    errors: list[RowError] | None = None, confirm: bool | str = False, more_errors: int = 0,
) -> CheckOutcome:
    """Scope, vet (``store.ingest.attendance_files.vet_check``: bad rows refuse the whole check; a change to
    the day's record needs ``confirm``) and record a morning check, or start its deployment run."""
    school = school_for_check(db, who, school_code)
    if (why := time_refusal(day, now, now)) is not None:  # the rule the flow applies again
        raise ApiError(422, why)
    marks, refused, whole = _scoped_marks(db, who, school, marks)
    complete = complete and whole
    try:
        vet_check(db, school_code=school.code, day=day, marks=marks, complete=complete,
                  errors=list(errors or []) + refused, more_errors=more_errors, confirm=confirm)
    except BadRows as exc:
        raise ApiError(422, str(exc), row_errors(exc.review.errors)) from None
    except NeedsConfirmation as exc:
        raise ConfirmationNeeded(str(exc), exc.review, day=day, marks=marks, complete=complete) from None
    params = signed_submission(settings, {
        "day": day.isoformat(), "school_code": school.code, "source": source, "submitted_by": who.actor,
        "submitted_at": now.isoformat(), "complete": complete,
        **_run_marks(db, who, deployments, school, marks, now)})
    run = deployments.start(settings.morning_check_deployment, {settings.morning_check_parameter: params})
    if run is not None:
        return CheckOutcome(school.name, day, "run", run.flow_run_id, run.url, summary={"marks": len(marks)},
                            submitted_at=now)
    try:
        result = record_morning_check(db, CaseContext(db), school_code=school.code, day=day, marks=marks, source=source,
                                      submitted_by=who.actor, now=now, complete=complete)
    except IntakeError as exc:
        db.rollback()
        raise ApiError(422, str(exc)) from None
    db.commit()
    return CheckOutcome(school.name, day, "applied", summary=result.summary(), opened=result.opened,
                        returned=result.returned, excused=result.excused, errors=row_errors(result.errors),
                        submitted_at=now)


INLINE_MARKS = 3_000  # marks carried in a run's parameters (Prefect refuses parameters over 512 kB: ≈5,000 marks)


def _run_marks(db: Session, who: Principal, deployments: Deployments, school: School, marks: list[MarkIn],
               now: datetime) -> dict[str, Any]:
    """The marks as the run's parameter: inline, or, for a large check that a Prefect server will run, a
    CSV of them staged in the database (``store.ingest.staged``) named by id and SHA-256 (signed with the
    rest). A head teacher's check (a class) is always inline: the worker re-checks its pupils one by one."""
    api = getattr(deployments, "api_url", None)
    if len(marks) <= INLINE_MARKS or who.role is Role.head_teacher or not (api and api()):
        return {"marks": [{"student_no": m.student_no, "status": m.status, "reason": m.reason, "row": m.row}
                          for m in marks]}
    from store.ingest.staged import stage_file

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["学籍号", "出勤状态", "缺勤原因"])
    w.writerows((m.student_no, m.status, m.reason) for m in marks)
    file_id, digest = stage_file(db, buf.getvalue().encode("utf-8"), f"morning-check-{school.code}-{now:%Y%m%d%H%M}.csv",
                                 by=who.actor, now=now)
    db.commit()  # the worker reads it in its own transaction
    return {"marks": [], "file_id": file_id, "file_sha256": digest}


def check_status(db: Session, who: Principal, deployments: Deployments, *, day: date, at: datetime,
                 run_id: str | None = None) -> dict[str, Any]:
    """The submitter's check of ``day`` sent at ``at``: its figures and case links once recorded
    (``store.ingest.check_result``); while not, the run's state if a Prefect server tells it."""
    school = school_for_check(db, who, None)
    result = check_result(db, school_id=school.id, day=day, submitted_by=who.actor, at=local_time(at))
    if result is not None:
        return result
    state = None
    if run_id and hasattr(deployments, "run_state"):
        try:
            state = deployments.run_state(run_id)
        except Exception:  # the server is down: keep waiting
            state = None
    if state == "COMPLETED":  # recorded nothing new: the day's record already said this
        return {"done": True, "duplicate": True, "message": "与之前提交的内容相同，未作改动"}
    if state in ("FAILED", "CRASHED", "CANCELLED"):
        return {"done": True, "failed": True, "message": "处理失败，请稍后重新提交或联系县教育局管理员"}
    return {"done": False, "message": "正在处理…"}


def day_of_file(parsed: ParsedAttendance, given: date | None, today: date) -> date:
    if given is not None:
        if parsed.days and parsed.days != {given}:
            raise ApiError(422, f"文件中的日期 {sorted(d.isoformat() for d in parsed.days)} 与所选日期 {given} 不一致 (dates differ)")
        return given
    if len(parsed.days) > 1:
        raise ApiError(422, "文件中有多个日期，请每天单独上传 (one day per file)")
    return next(iter(parsed.days), today)


# -- actions on a case -----------------------------------------------------------------------------
def readable_case(db: Session, who: Principal, case_id: int, *, for_update: bool = False) -> Case:
    """The case if ``who`` may read it; otherwise 404 (as if it did not exist)."""
    if db.scalar(who.scope.apply(select(Case.id).where(Case.id == case_id))) is None:
        raise ApiError(404, NOT_FOUND_CASE)
    return load_for_update(db, case_id) if for_update else db.get(Case, case_id)


@dataclass
class ActionForm:
    event: str
    label: str
    reasons: list[tuple[str, str]] = field(default_factory=list)  # excuse / escalate_outside choices
    photos: bool = False
    due: bool = False  # a duty of this action is open or overdue on the case


def offered_actions(who: Principal, case: Case, policy: Policy, open_duty_actions: set[str]) -> list[ActionForm]:
    """The buttons for a case: the machine allows it in this state, the role may fire it, and for
    escalate_outside the policy allows at least one reason from this step."""
    if CaseState(case.state).is_final:
        return []
    out = []
    for event in allowed_events(case.state):
        if event == "escalate" or not may_fire(who.user, event, policy):
            continue
        reasons: list[tuple[str, str]] = []
        if event == "excuse":
            reasons = [(r.value, REASON_LABELS[r.value]) for r in ExcuseReason]
        elif event == "record_reason":  # 查明辍学原因: seed 002's classes, the current one first
            reasons = sorted(((r.value, REASON_LABELS[r.value]) for r in DropoutReason if r is not DropoutReason.unknown),
                             key=lambda rl: rl[0] != case.reason)
        elif event == "escalate_outside":
            reasons = [(r.value, REASON_LABELS[r.value]) for r in OutsideReason if policy.outside_allowed(case.state, r)]
            if not reasons:
                continue
        out.append(ActionForm(event, EVENT_LABELS.get(event, event), reasons, event in PHOTO_EVENTS,
                              event in open_duty_actions))
    return sorted(out, key=lambda a: (not a.due, EVENT_ORDER.index(a.event) if a.event in EVENT_ORDER else 99))


EVENT_ORDER = [a.value for a in Action] + ["mark_returned", "excuse", "escalate_outside"]


def ensure_may_fire(db: Session, who: Principal, case: Case, event: str, ctx: CaseContext | None = None) -> None:
    """403 unless ``who`` may fire ``event`` on ``case`` (under the case's policy)."""
    ctx = ctx or CaseContext(db)
    if event == "escalate" or not may_fire(who.user, event, ctx.policy(case.policy_name, case.policy_version)):
        raise ApiError(403, f"{FORBIDDEN}：{EVENT_LABELS.get(event, event)}")


def record_action(
    db: Session, who: Principal, case_id: int, event: str, *, now: datetime, at: datetime | None = None,
    note: str = "", payload: dict[str, Any] | None = None, reason: str | None = None,
    idempotency_key: str | None = None, expected_version: int | None = None,
) -> dict[str, Any]:
    """Fire ``event`` on a case in scope, as ``who``; commit and return the new state."""
    case = readable_case(db, who, case_id, for_update=True)
    ctx = CaseContext(db)
    ensure_may_fire(db, who, case, event, ctx)
    at = at or now
    if at > now:
        raise ApiError(422, "办理时间不能晚于现在 (the time is in the future)")
    if at.date() < case.opened_on:
        raise ApiError(422, "办理时间早于案件登记日 (before the case was opened)")
    facts = {"reason": reason} if event in ("excuse", "escalate_outside") else {}
    if event == "record_reason" and reason:  # the API's and the form's 原因 field is the action's detail
        payload = {**(payload or {}), "reason": reason}
    try:
        refuse_unapproved_leave(db, case, event, reason)
        applied = apply_event(db, ctx, case, event, actor=who.actor, at=at, now=now, note=note[:255],
                              payload=payload or {}, idempotency_key=idempotency_key,
                              expected_version=expected_version, **facts)
    except CaseConflict as exc:  # another clerk's action came first (a retry of ours is a duplicate, not this)
        db.rollback()
        raise ApiError(409, "案件已被他人更新，请刷新页面后再操作 (the case changed since you opened it)",
                       version=exc.current) from None
    except ForbiddenEvent as exc:
        db.rollback()
        raise ApiError(409, _forbidden_message(exc, event)) from None
    except PayloadInvalid as exc:  # unknown field, missing caption, oversize text, another case's photo
        db.rollback()
        raise ApiError(422, str(exc), exc.errors) from None
    db.commit()
    return {"case_id": case.id, "event": event, "state": case.state, "state_label": CaseState(case.state).label,
            "version": case.version, "seq": applied.event.seq, "duplicate": applied.duplicate}


def _forbidden_message(exc: ForbiddenEvent, event: str) -> str:
    label = CaseState(exc.state).label if exc.state in CaseState.__members__ else exc.state
    return f"案件当前处于「{label}」，不能进行「{EVENT_LABELS.get(event, event)}」操作 ({exc})"


# -- attachments ----------------------------------------------------------------------------------------
def ensure_may_attach(db: Session, who: Principal, case: Case) -> None:
    """403 unless ``who`` may record an action with photos on ``case`` (a visit)."""
    policy = CaseContext(db).policy(case.policy_name, case.policy_version)
    if not any(may_fire(who.user, e, policy) for e in PHOTO_EVENTS):
        raise ApiError(403, f"{FORBIDDEN}：上传附件")


def read_capped(file: BinaryIO, settings: WebSettings) -> bytes:
    """At most one byte more than the attachment cap (``attachments.save`` refuses what is over)."""
    return file.read(settings.attachment_max_mb * 1024 * 1024 + 1)


def upload_attachment(db: Session, who: Principal, case: Case, data: bytes, filename: str, *, settings: WebSettings,
                      now: datetime, images_only: bool = False) -> Attachment:
    """Keep an upload as an attachment of ``case`` (no commit): only images/PDF by their bytes, capped."""
    try:
        return attachments.save(db, case.id, data, filename, actor=who.actor, now=now, archive_dir=settings.archive_dir,
                                max_bytes=settings.attachment_max_mb * 1024 * 1024, images_only=images_only)
    except attachments.AttachmentRefused as exc:
        db.rollback()
        raise ApiError(exc.status, str(exc)) from None


def attachment_info(a: Attachment) -> dict[str, Any]:
    return {"id": a.id, "case_id": a.case_id, "media_type": a.media_type, "size": a.size, "sha256": a.sha256,
            "filename": a.filename, "url": f"/api/attachments/{a.id}"}


def attachment_response(db: Session, who: Principal, attachment_id: int, settings: WebSettings) -> FileResponse:
    """An attachment's bytes to a reader whose scope holds its case (else 404, as for none), with the
    sniffed type, a Content-Disposition and (middleware) nosniff."""
    a = attachments.readable(db, who.scope, attachment_id)
    found = attachments.locate(db, a.case_id, a.id, settings.archive_dir) if a is not None else None
    if found is None or found.path is None:
        raise ApiError(404, "附件不存在，或不在您的管辖范围内 (attachment not found)")
    inline = a.media_type in attachments.IMAGES
    return FileResponse(found.path, media_type=a.media_type, filename=f"attachment-{a.id}.{attachments.ALLOWED[a.media_type]}",
                        content_disposition_type="inline" if inline else "attachment")


def media_type_of(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


# -- response builders shared by the API (web/api.py) and the pages (web/pages*.py) -------------------
def read_upload(file: UploadFile, settings: WebSettings) -> bytes:
    """The uploaded table's bytes, at most BAOXUE_UPLOAD_MAX_MB (the API's and the pages' uploads; sync:
    endpoints doing database work run in the thread pool)."""
    data = file.file.read(settings.upload_max_mb * 1024 * 1024 + 1)
    if len(data) > settings.upload_max_mb * 1024 * 1024:
        raise ApiError(413, f"文件超过 {settings.upload_max_mb}MB（上限：设置 BAOXUE_UPLOAD_MAX_MB）(file too large)")
    return data


# -- morning check ----------------------------------------------------------------------------------


def template_response(db: Session, who: Principal, fmt: str, day: date) -> Response:
    """The morning-check table of the reader's pupils, pre-filled with what is recorded for ``day`` (a pupil
    already marked 无故缺勤 stays so: the file sent back unchanged changes nothing), else 到校."""
    header = ["学籍号", "姓名", "班级", "出勤状态", "缺勤原因"]
    recorded = {m["student_no"]: m["status"] for m in dash.absences_on(db, who.scope, day)}
    rows = [[p["student_no"], p["name"], p["class"], TEMPLATE_STATUS_WORDS.get(recorded.get(p["student_no"], "present"), "到校"), ""]
            for p in dash.pupils_in(db, who.scope)]
    name = f"morning-check-{day.isoformat()}"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows([[csv_safe(v) for v in r] for r in rows])
        return Response(("\ufeff" + buf.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "晨检"
    sheet.append(header)
    for r in rows:
        sheet.append(r)
    for col, width in zip("ABCDE", (26, 10, 16, 10, 14)):
        sheet.column_dimensions[col].width = width
    xlsx_safe(book)
    out = io.BytesIO()
    book.save(out)
    return Response(out.getvalue(), media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})


# -- cases --------------------------------------------------------------------------------------------


def local_time(at: datetime | None) -> datetime | None:
    """A time with a UTC offset ("…+08:00", "…Z") as the store keeps times: naive Asia/Shanghai wall clock."""
    if at is None or at.tzinfo is None:
        return at
    try:
        return at.astimezone(SHANGHAI).replace(tzinfo=None)
    except OverflowError:
        raise ApiError(422, "办理时间超出范围 (time out of range)") from None


def _archive_path(settings: WebSettings, rel: str) -> Path:
    root = settings.archive_dir.resolve()
    path = (root / rel).resolve()
    if root not in path.parents or not path.is_file():
        raise ApiError(404, "文件不存在或尚未生成 (file not found)")
    return path


# -- documents ------------------------------------------------------------------------------------


def html_preview(doc, settings: WebSettings, data: dict | None = None) -> str:
    """The issued document as HTML, rendered from the exact data it was issued with (Document.data),
    or from ``data`` (that data masked)."""
    from documents.render import render_html

    try:
        return render_html(doc.data if data is None else data, standalone=True, archive_dir=settings.archive_dir)
    except Exception as exc:  # a document issued under an older template may no longer render
        raise ApiError(500, f"文书预览生成失败，请下载 PDF ({type(exc).__name__})") from None


def document_response(db, who, document_id: int, fmt: str, settings: WebSettings) -> FileResponse:
    """An issued document's file, or its HTML preview, under the one masking rule (store.access.masking):
    a reader who may not read a case document in full gets a masked preview and no file."""
    doc = dash.document_in_scope(db, document_id, who.scope)
    if doc is None:
        raise ApiError(404, "文书不存在，或不在您的管辖范围内 (document not found)")
    if doc.case_id is not None and not full_document_for(who.user, doc.kind):
        if fmt != "html":
            raise ApiError(403, "该文书含学生和家长的个人信息，县级账号只能查看脱敏预览（HTML）"
                                "(masked preview only: open the HTML preview)")
        return HTMLResponse(html_preview(doc, settings, data=mask_document(doc.data)))
    f = next((f for f in doc.files if f.fmt == fmt), None)
    if f is None and fmt == "html":
        return HTMLResponse(html_preview(doc, settings))
    if f is None:
        raise ApiError(404, f"该文书没有 {fmt.upper()} 文件 (no {fmt} rendition)")
    from web.downloads import content_disposition, document_file_name  # Chinese names (issue 18)

    return FileResponse(_archive_path(settings, f.path), media_type=f.media_type, headers={
        "Content-Disposition": content_disposition(document_file_name(doc, fmt), inline=fmt == "html")})


# -- duties, stuck cases, overview -----------------------------------------------------------------


def parse_month(month: str | None, today: date) -> tuple[date, date, str]:
    if not month:
        return today.replace(day=1), today, f"{today:%Y-%m}"
    try:
        y, m = (int(p) for p in month.split("-"))
        start = date(y, m, 1)
    except (ValueError, OverflowError):  # "2026-13", "x", a year past 9999 digits long
        raise ApiError(422, f"月份格式应为 2026-11，收到「{month}」(month must look like 2026-11)") from None
    return start, date(y, m, monthrange(y, m)[1]), f"{y:04d}-{m:02d}"


def monthly_figures(db: Session, who: Principal, month: str | None, now: datetime) -> dict[str, Any]:
    """The month's figures of the schools in scope and per school (store.reporting.reports.reader_figures: the
    filed figures of a filed month, else the ledger's)."""
    from store.reporting.reports import ReportPeriod, reader_figures

    start, end, label = parse_month(month, now.date())
    schools = dash.schools_in(db, who.scope)
    name = {Role.school_staff: schools[0]["name"] if schools else "", Role.county: "全县"}.get(who.role, "")
    if who.role is Role.township:
        name = schools[0]["township"] if schools else ""
    total = reader_figures(db, [s["id"] for s in schools], name, ReportPeriod("monthly", label, start, end), now)
    return {"month": label, "start": start.isoformat(), "end": end.isoformat(), "total": total,
            "schools": total["schools"], "filed_at": total.get("filed_at")}


def report_file_response(db, who, filing_id: int, fmt: str, settings) -> FileResponse:
    filing = next((f for f in dash.report_filings(db, who.scope) if f.id == filing_id), None)
    if filing is None or fmt not in (filing.files or {}):
        raise ApiError(404, "报告不存在，或不在您的管辖范围内 (report not found)")
    from web.downloads import content_disposition, report_file_name  # 城关镇2026年11月控辍保学月报表.pdf (issue 18)

    path = _archive_path(settings, filing.files[fmt])
    return FileResponse(path, media_type=media_type_of(path.name), headers={
        "Content-Disposition": content_disposition(report_file_name(filing, fmt, filing.files[fmt]))})


def late_report_data(db: Session, who: Principal, month: str | None, now: datetime) -> dict[str, Any]:
    """Morning checks in after the policy's escalation time or missing, per school (each on its own
    calendar and policy), and the month's report filings."""
    from store.cases.context import CaseContext

    start, end, label = parse_month(month, now.date())
    scope = who.scope if who.role is not Role.operator else dash.EVERYTHING
    ctx = CaseContext(db)
    groups: dict[tuple[str, str], list[int]] = {}
    for school in dash.schools_in(db, scope):
        groups.setdefault((school["policy"], school["calendar"]), []).append(school["id"])
    checks, deadlines, school_days = [], set(), 0
    for (policy_name, calendar_key), ids in groups.items():
        deadline = ctx.policies.get(policy_name).escalation_time
        last = min(end, now.date() if now.time() >= deadline else now.date() - timedelta(days=1))
        days = ctx.calendar(calendar_key).school_days(start, last) if last >= start else []
        checks += dash.morning_check_status(db, Scope(school_ids=frozenset(ids)), days, deadline=deadline)
        deadlines.add(deadline.strftime("%H:%M"))
        school_days = max(school_days, len(days))
    checks.sort(key=lambda c: c["code"])
    filings = [{"level": f.level, "scope": f.scope_name, "code": f.scope_code, "due_on": f.due_on,
                "filed_at": f.filed_at, "late": f.late} for f in dash.report_filings(db, scope, period=label)]
    return {"month": label, "deadline": "/".join(sorted(deadlines)) or "09:00", "school_days": school_days,
            "morning_checks": [{k: v for k, v in c.items() if k not in ("policy", "calendar")} for c in checks],
            "monthly_reports": filings}


def own_duties(db: Session, who: Principal, now: datetime) -> list[dict[str, Any]]:
    """The reader's own open duties of every kind; an account with no staff record: a head teacher sees
    their classes' duties (as before), an office none (it owns nothing by name). One more than the home
    page lists (store.duties.mine.LIMIT) is read, so the page can say that there are more."""
    staff = who.user.staff_id
    if staff is None and who.role is not Role.head_teacher:
        return []
    from store.duties.mine import LIMIT, owned_duties

    return owned_duties(db, now, owner_id=staff, scope=who.scope, masked=who.masked, limit=LIMIT + 1)
