"""API of leave, 免学/缓学, transfers, lesson counts and 放学未回家 (store.cases.leave, store.cases.lessons).

The response builders here are shared with the page (web/pages_leave.py): each checks that the pupil
is in the user's scope and that the user's account decides the request (store.cases.leave.may_decide).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.vocabulary import REQUEST_KIND_LABELS, decision_label
from store.access.accounts import Role
from store.cases import leave
from store.cases.attachments import AttachmentRefused
from store.cases.context import CaseContext
from store.cases.intake import IntakeError
from store.cases.lessons import LessonError, report_lesson_absence, report_not_home
from store.models import Pupil, School
from store.models.leave import LeaveRequest

from documents.exemption_decision import issue_decision
from web.deps import ApiError, DbId, Principal, get_db, get_now, roles, settings_of
from web.services import read_capped

router = APIRouter(prefix="/api", tags=["请假/转学 leave and transfers"])
SCHOOLS = (Role.head_teacher, Role.school_staff)
DECIDERS = (Role.head_teacher, Role.school_staff, Role.county)
READERS = (Role.head_teacher, Role.school_staff, Role.township, Role.county)
NOT_FOUND = "学生不存在，或不在您的管辖范围内 (pupil not found)"
NOT_FOUND_REQUEST = "申请不存在，或不在您的管辖范围内 (request not found)"


# -- shared with the page ---------------------------------------------------------------------------------
def pupil_in_scope(db: Session, who: Principal, student_no: str) -> Pupil:
    q = who.scope.apply(select(Pupil).where(Pupil.student_no == (student_no or "").strip()),
                        school_col=Pupil.school_id, class_col=Pupil.class_id)
    pupil = db.scalar(q)
    if pupil is None:
        raise ApiError(404, NOT_FOUND)
    return pupil


def visible(db: Session, who: Principal, *, decision: str | None = None) -> list[dict]:
    incoming = who.user.school_id if who.role is Role.school_staff else None
    return leave.listed(db, who.scope, incoming_school_id=incoming, decision=decision)


def request_in_view(db: Session, who: Principal, request_id: int) -> dict:
    found = next((r for r in leave.listed(db, who.scope, incoming_school_id=who.user.school_id
                                          if who.role is Role.school_staff else None, limit=10**6)
                  if r["id"] == request_id), None)
    if found is None:
        raise ApiError(404, NOT_FOUND_REQUEST)
    return found


def may_decide(who: Principal, r: dict) -> bool:
    return leave.may_decide(r, account_role=who.role.value, school_id=who.user.school_id, class_ids=who.scope.class_ids)


def apply(db: Session, who: Principal, *, student_no: str, kind: str, first_day: date, last_day: date | None,
          reason: str, now: datetime, source: str, to_school_code: str | None = None,
          to_school_name: str | None = None) -> LeaveRequest:
    pupil = pupil_in_scope(db, who, student_no)
    to_id = None
    if to_school_code:
        to_id = db.scalar(select(School.id).where(School.code == to_school_code.strip()))
        if to_id is None:
            raise ApiError(422, f"县内学校代码 {to_school_code} 不存在；县外学校请填写学校名称 (unknown school code)")
        if to_id == pupil.school_id:
            raise ApiError(422, "接收学校不能是本校 (the receiving school is this school)")
    try:
        return leave.apply_for(db, CaseContext(db), pupil_id=pupil.id, kind=kind, first_day=first_day,
                               last_day=last_day, source=source, actor=who.actor, now=now, reason=reason,
                               to_school_id=to_id, to_school_name=to_school_name)
    except (leave.LeaveError, LookupError) as exc:
        raise ApiError(422, str(exc)) from None


def decide(db: Session, who: Principal, request_id: int, *, approve: bool, note: str, now: datetime) -> LeaveRequest:
    r = request_in_view(db, who, request_id)
    if not may_decide(who, r) and r["decision"] == "pending":
        raise ApiError(403, "此申请不由您的账号审批 (your account does not decide this request)")
    policy = CaseContext(db).policies.get(db.scalar(select(School.policy_name).where(School.id == r["school_id"])))
    try:
        out = leave.decide(db, CaseContext(db), request_id, approve=approve, now=now, note=note,
                           actor=f"{who.actor}（{policy.role_label(r['role'])}）")
    except leave.LeaveError as exc:
        raise ApiError(409, str(exc)) from None
    if out.kind == "exemption":  # the county's decision is a document (免学/缓学审批决定书)
        issue_decision(db, out.id, actor=who.actor, now=now)
    return out


def attach(db: Session, who: Principal, request_id: int, data: bytes, filename: str, *, request: Request,
           now: datetime) -> LeaveRequest:
    r = request_in_view(db, who, request_id)
    if who.role not in SCHOOLS:
        raise ApiError(403, "只有学校账号可以上传假条或回执 (school accounts only)")
    settings = settings_of(request)
    try:
        return leave.attach_certificate(db, r["id"], data, filename, actor=who.actor, now=now,
                                        archive_dir=settings.archive_dir,
                                        max_bytes=settings.attachment_max_mb * 1024 * 1024)
    except AttachmentRefused as exc:
        raise ApiError(exc.status, str(exc)) from None


def info(r: LeaveRequest | dict) -> dict:
    d = r if isinstance(r, dict) else leave_row(r)
    return {**{k: d[k] for k in ("id", "kind", "first_day", "last_day", "days", "role", "due_at", "decision",
                                 "decided_by", "decided_at", "case_id", "to_school", "document_id")},
            "kind_label": REQUEST_KIND_LABELS[d["kind"]], "decision_label": decision_label(d["kind"], d["decision"]),
            "certificate": d["certificate"]}


def leave_row(r: LeaveRequest) -> dict:
    return {"id": r.id, "kind": r.kind, "first_day": r.first_day, "last_day": r.last_day, "days": r.days, "role": r.role,
            "due_at": r.due_at, "decision": r.decision, "decided_by": r.decided_by, "decided_at": r.decided_at,
            "case_id": r.case_id, "to_school": r.to_school_name or r.to_school_id, "certificate": r.cert_filename,
            "document_id": r.document_id}


def decision_file(db: Session, who: Principal, request_id: int, request: Request) -> FileResponse:
    """The 免学/缓学 decision's PDF, for whoever sees the request."""
    from documents.archive import file_path
    from store.models.documents import Document

    r = request_in_view(db, who, request_id)
    doc = db.get(Document, r["document_id"]) if r["document_id"] else None
    f = next((f for f in doc.files if f.fmt == "pdf"), None) if doc is not None else None
    path = file_path(f) if f is not None else None  # where the archive wrote it (documents.archive)
    if path is None or not path.is_file():
        raise ApiError(404, "尚无审批决定书 (no decision document yet)")
    return FileResponse(path, media_type=f.media_type, filename=f"exemption_decision-{request_id}.pdf")


# -- the API -----------------------------------------------------------------------------------------------------
class LeaveBody(BaseModel):
    student_no: str = Field(min_length=1, max_length=32, description="学籍号")
    kind: Literal["sick_leave", "personal_leave", "exemption"] = Field(description="病假/事假/免学缓学")
    first_day: date
    last_day: date | None = None
    reason: str = Field("", max_length=200, description="事由")


class DecisionBody(BaseModel):
    approve: bool = Field(description="true 批准/确认转入，false 不予批准")
    note: str = Field("", max_length=200)


class TransferBody(BaseModel):
    student_no: str = Field(min_length=1, max_length=32)
    day: date
    to_school_code: str | None = Field(None, max_length=32, description="县内接收学校代码")
    to_school_name: str | None = Field(None, max_length=64, description="县外接收学校名称")


class LessonBody(BaseModel):
    student_no: str = Field(min_length=1, max_length=32)
    lesson: int = Field(ge=1, le=12, description="第几节")
    subject: str = Field("", max_length=32)
    day: date | None = None


class NotHomeBody(BaseModel):
    student_no: str = Field(min_length=1, max_length=32)
    parent_name: str = Field(min_length=1, max_length=32)
    parent_phone: str | None = Field(None, max_length=20)
    note: str = Field("", max_length=200)
    day: date | None = None


@router.get("/leave", summary="请假/免学/转学申请（管辖范围内）")
def leave_list(pending: bool = Query(False), who: Principal = Depends(roles(*READERS)), db: Session = Depends(get_db)):
    return [info(r) | {"student_no": None if who.masked else r["student_no"], "may_decide": may_decide(who, r)}
            for r in visible(db, who, decision="pending" if pending else None)]


@router.post("/leave", status_code=201, summary="请假或免学/缓学申请（按制度分级审批）")
def leave_apply(body: LeaveBody, who: Principal = Depends(roles(*SCHOOLS)), db: Session = Depends(get_db),
                now: datetime = Depends(get_now)):
    r = apply(db, who, student_no=body.student_no, kind=body.kind, first_day=body.first_day, last_day=body.last_day,
              reason=body.reason, now=now, source="api")
    db.commit()
    return info(r)


@router.post("/leave/{request_id}/certificate", summary="上传假条、医疗证明或转学回执（照片或 PDF）")
def leave_certificate(request_id: DbId, request: Request, file: UploadFile = File(...),
                      who: Principal = Depends(roles(*SCHOOLS)), db: Session = Depends(get_db),
                      now: datetime = Depends(get_now)):
    r = attach(db, who, request_id, read_capped(file.file, settings_of(request)), file.filename or "", request=request,
               now=now)
    db.commit()
    return info(r)


@router.post("/leave/{request_id}/decision", summary="审批：批准/不予批准；转入确认")
def leave_decision(request_id: DbId, body: DecisionBody, who: Principal = Depends(roles(*DECIDERS)),
                   db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    r = decide(db, who, request_id, approve=body.approve, note=body.note, now=now)
    db.commit()
    return info(r)


@router.get("/leave/{request_id}/decision.pdf", summary="免学/缓学审批决定书 PDF")
def leave_decision_pdf(request_id: DbId, request: Request, who: Principal = Depends(roles(*READERS)),
                       db: Session = Depends(get_db)):
    return decision_file(db, who, request_id, request)


@router.post("/transfers", status_code=201, summary="转出登记（须填接收学校；逾期未确认转入即立案）")
def transfer_out(body: TransferBody, who: Principal = Depends(roles(Role.school_staff)), db: Session = Depends(get_db),
                 now: datetime = Depends(get_now)):
    r = apply(db, who, student_no=body.student_no, kind="transfer", first_day=body.day, last_day=None, reason="转出",
              now=now, source="api", to_school_code=body.to_school_code, to_school_name=body.to_school_name)
    db.commit()
    return info(r)


@router.post("/lesson-absences", status_code=201, summary="科任教师课前清点：某节课发现学生未到")
def lesson_absence(body: LessonBody, who: Principal = Depends(roles(*SCHOOLS)), db: Session = Depends(get_db),
                   now: datetime = Depends(get_now)):
    pupil = pupil_in_scope(db, who, body.student_no)
    code = db.scalar(select(School.code).where(School.id == pupil.school_id))
    try:
        out = report_lesson_absence(db, CaseContext(db), school_code=code, student_no=pupil.student_no,
                                    day=body.day or now.date(), lesson=body.lesson, subject=body.subject,
                                    actor=who.actor, now=now)
    except (LessonError, IntakeError, LookupError) as exc:  # LookupError: a day outside the school calendar
        db.rollback()
        raise ApiError(422, str(exc)) from None
    db.commit()
    return {"report_id": out.report_id, "duplicate": out.duplicate, "case_id": out.case_id}


@router.post("/not-home", status_code=201, summary="家长报告放学未回家（学校当日查找）")
def not_home(body: NotHomeBody, who: Principal = Depends(roles(*SCHOOLS)), db: Session = Depends(get_db),
             now: datetime = Depends(get_now)):
    pupil = pupil_in_scope(db, who, body.student_no)
    try:
        report, new = report_not_home(db, CaseContext(db), pupil_id=pupil.id, day=body.day or now.date(),
                                      parent_name=body.parent_name, parent_phone=body.parent_phone, note=body.note,
                                      actor=who.actor, now=now)
    except LessonError as exc:
        raise ApiError(422, str(exc)) from None
    db.commit()
    return {"report_id": report.id, "new": new, "duty_id": report.duty_id}
