"""The REST API under /api (OpenAPI at /docs). Every route reads through the caller's scope.

Errors are JSON ``{"message": "…", "errors": [{"row": 3, "student_no": "…", "message": "…"}]}``
with a message in Chinese that a school clerk understands; uploads list every bad row.
"""
from __future__ import annotations

import csv
import io
import json
from calendar import monthrange
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Path as PathParam, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from machines.states import CaseState
from store.reporting import dashboards as dash
from store.access.accounts import ROLE_LABELS, Role
from store.ingest.attendance_files import parse_attendance
from store.cases.intake import MarkIn
from store.access.masking import full_document_for, mask_document
from store.access.scope import Scope
from store.reporting.queries import case_detail, list_cases
from store.ingest.tabular import TableError, csv_safe, xlsx_safe

from web.deps import (
    NOT_FOUND_CASE, OFFICES, PUPIL_READERS, SHANGHAI, ApiError, Principal, WebSettings, api_user, get_db, get_now, roles,
    settings_of,
)
from web.deps import DbId
from web.county_check import COUNTY_FILE_ROLES, school_file_rows, submit_county_file
from web.services import (
    document_response, late_report_data, local_time, monthly_figures, parse_month, read_upload, report_file_response,
    template_response,
    attachment_info, attachment_response, day_of_file, ensure_may_attach, ensure_may_fire, media_type_of,
    offered_actions, read_capped, readable_case, recent_runs, record_action, submit_morning_check,
    upload_attachment,
)

router = APIRouter(prefix="/api")
# a row id in a path: beyond 32 bits it cannot exist, and the databases would refuse the query (a 500)
SCHOOLS = (Role.head_teacher, Role.school_staff)
SCHOOL_AND_OFFICES = (Role.school_staff, Role.township, Role.county)


# -- who am I ---------------------------------------------------------------------------------------
@router.get("/me", tags=["登录 auth"], summary="当前用户和管辖范围 (who am I)")
def me(who: Principal = Depends(api_user), db: Session = Depends(get_db)):
    return {"username": who.user.username, "display_name": who.user.display_name, "role": who.role.value,
            "role_label": ROLE_LABELS[who.role],
            "schools": [{"code": s["code"], "name": s["name"]} for s in dash.schools_in(db, who.scope)]
            if who.role is not Role.operator else [],
            "classes": sorted(who.scope.class_ids) if who.scope.class_ids is not None else None}


# -- roster -----------------------------------------------------------------------------------------
@router.post("/roster", tags=["学籍 roster"], summary="导入学籍花名册 CSV/XLSX (roster import)")
def roster_import(request: Request,
                        file: UploadFile = File(..., description="花名册：学校代码, 学籍号, 姓名, 身份证号, 年级, 班级, 监护人…"),
                        who: Principal = Depends(roles(Role.school_staff, Role.county)),
                        db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    from store.ingest.roster import import_roster

    data = read_upload(file, settings_of(request))
    try:
        result = import_roster(db, data, file.filename or "roster.csv",
                               only_school_id=who.user.school_id if who.role is Role.school_staff else None,
                               now=now)
    except TableError as exc:
        db.rollback()
        raise ApiError(422, str(exc)) from None
    db.commit()
    errors = [{"row": n, "message": m} for n, m in result.errors]
    message = f"新增 {result.added} 人，更新 {result.updated} 人" + (f"，{len(errors)} 行有误未导入" if errors else "")
    return {"message": message, "added": result.added, "updated": result.updated, "errors": errors}


class MarkBody(BaseModel):
    student_no: str = Field(min_length=1, max_length=32, description="学籍号")
    status: str = Field(description="到校/缺勤/病假/事假/免学/转学 or present/unexcused/sick_leave/…")
    reason: str = Field("unknown", description="缺勤原因分类 family/study/poverty/… (optional)")


class MorningCheckBody(BaseModel):
    school_code: str | None = Field(None, description="学校代码；学校账号可省略")
    day: date | None = Field(None, description="晨检日期，默认今天")
    marks: list[MarkBody] = Field(description="学生出勤；完整晨检中未列出的学生视为到校")
    complete: bool = Field(True, description="全校完整晨检（未列出者视为到校）；班主任账号只覆盖本班")
    confirm: bool = Field(False, description="确认覆盖当日已上报记录、结案（未确认时返回 409 和预览，不作任何改动）")


def _check_response(outcome, response: Response) -> dict[str, Any]:
    response.status_code = 202 if outcome.mode == "run" else 200
    body = outcome.as_dict()
    body["message"] = (f"已提交，晨检流程运行中（{outcome.flow_run_id}）" if outcome.mode == "run" else
                       f"{outcome.school} {outcome.day} 晨检已记录：新登记缺勤 {len(outcome.opened)} 人，"
                       f"返校 {len(outcome.returned)} 人" + (f"，{len(outcome.errors)} 行有误" if outcome.errors else ""))
    return body


@router.post("/morning-checks", tags=["晨检 morning check"], summary="提交晨检 JSON（启动 morning_check 流程）")
def morning_check_json(body: MorningCheckBody, request: Request, response: Response,
                       who: Principal = Depends(roles(*SCHOOLS)), db: Session = Depends(get_db),
                       now: datetime = Depends(get_now)):
    marks = [MarkIn(m.student_no, m.status, m.reason, row=i) for i, m in enumerate(body.marks, start=1)]
    outcome = submit_morning_check(db, who, settings=settings_of(request), deployments=request.app.state.deployments,
                                   school_code=body.school_code, day=body.day or now.date(), marks=marks, source="api",
                                   now=now, complete=body.complete, confirm=body.confirm)
    return _check_response(outcome, response)


@router.post("/morning-checks/upload", tags=["晨检 morning check"],
             summary="上传晨检表 CSV/XLSX（启动 morning_check 流程），错误逐行列出")
def morning_check_upload(request: Request, response: Response,
                               file: UploadFile = File(..., description="晨检表：学籍号、出勤状态[、缺勤原因、日期]"),
                               school_code: str | None = Form(None), day: date | None = Form(None),
                               complete: Literal["true", "false", "1", "0", "on", "off"] = Form(
                                   "true", description="全校完整晨检（未列出者视为到校）"),  # a bool Form field left out reads False
                               confirm: Literal["true", "false", "1", "0", "on", "off"] = Form(
                                   "false", description="确认覆盖当日已上报记录、结案（未确认时返回 409 和预览，不作任何改动）"),
                               who: Principal = Depends(roles(*SCHOOLS, *COUNTY_FILE_ROLES)), db: Session = Depends(get_db),
                               now: datetime = Depends(get_now)):
    data = read_upload(file, settings_of(request))
    try:
        parsed = parse_attendance(data, filename=file.filename or "")
    except TableError as exc:
        raise ApiError(422, str(exc)) from None
    if who.role in COUNTY_FILE_ROLES:  # a county or township file: rows name their schools (web.county_check)
        return _check_response(submit_county_file(
            db, who, settings=settings_of(request), deployments=request.app.state.deployments, data=data,
            filename=file.filename or "", parsed=parsed, day=day_of_file(parsed, day, now.date()), now=now,
            confirm=confirm in ("true", "1", "on")), response)
    marks, errors, more = school_file_rows(db, who, parsed)
    outcome = submit_morning_check(db, who, settings=settings_of(request), deployments=request.app.state.deployments,
                                   school_code=school_code, day=day_of_file(parsed, day, now.date()), marks=marks,
                                   source="upload", now=now, complete=complete in ("true", "1", "on"),
                                   errors=errors, more_errors=more, confirm=confirm in ("true", "1", "on"))
    return _check_response(outcome, response)


@router.get("/morning-checks/template", tags=["晨检 morning check"], summary="下载预填好的晨检表 (CSV/XLSX)")
def morning_check_template(fmt: Literal["csv", "xlsx"] = "xlsx", who: Principal = Depends(roles(*SCHOOLS)),
                           db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    return template_response(db, who, fmt, now.date())


@router.get("/cases", tags=["案件 cases"], summary="案件列表 (cases in your scope)")
def cases(state: CaseState | None = None, school_code: str | None = None, open_only: bool = False,
          stuck: bool = False, limit: int = Query(500, ge=1, le=5000),
          who: Principal = Depends(roles(*PUPIL_READERS)), db: Session = Depends(get_db),
          now: datetime = Depends(get_now)):
    return list_cases(db, scope=who.scope, school_code=school_code, state=state.value if state else None,
                      stuck_at=now if stuck else None, open_only=open_only, limit=limit, masked=who.masked)


@router.get("/cases/{case_id}", tags=["案件 cases"], summary="案件详情：经过、职责、三帮一、可办理的操作")
def case(case_id: DbId, who: Principal = Depends(roles(*PUPIL_READERS)), db: Session = Depends(get_db)):
    return case_payload(db, who, case_id)


def case_payload(db: Session, who: Principal, case_id: int) -> dict[str, Any]:
    from store.cases.context import CaseContext

    detail = case_detail(db, case_id, scope=who.scope, masked=who.masked)
    if detail is None:
        raise ApiError(404, NOT_FOUND_CASE)
    row = readable_case(db, who, case_id)
    policy = CaseContext(db).policy(row.policy_name, row.policy_version)
    due = {d["action"] for d in detail["duties"] if d["status"] in ("open", "overdue")}
    detail["allowed_actions"] = [{"event": a.event, "label": a.label, "reasons": [r for r, _ in a.reasons],
                                  "photos": a.photos, "due": a.due} for a in offered_actions(who, row, policy, due)]
    detail["documents"] = _jsonable(dash.case_documents(db, case_id))
    return detail


def _jsonable(rows):
    return json.loads(json.dumps(rows, default=lambda v: v.isoformat(sep=" ") if isinstance(v, datetime) else str(v)))


@router.get("/cases/{case_id}/history", tags=["案件 cases"], summary="案件经过（只增不改的历史）")
def history(case_id: DbId, who: Principal = Depends(roles(*PUPIL_READERS)), db: Session = Depends(get_db)):
    detail = case_detail(db, case_id, scope=who.scope, masked=who.masked)
    if detail is None:
        raise ApiError(404, NOT_FOUND_CASE)
    return detail["events"]


class ActionBody(BaseModel):
    event: str = Field(description="record_phone_call | record_home_visit | record_collective_visit | "
                                   "serve_township_notice | serve_legal_notice | assign_helpers | record_reason | "
                                   "mark_returned | excuse | escalate_outside | a referred (escalated) case's follow-up: "
                                   "record_follow_up | record_police_search | record_guardian_persuasion | "
                                   "record_employer_persuasion | record_judicial_progress")
    note: str = Field("", max_length=255, description="说明")
    at: datetime | None = Field(None, description="办理时间，默认现在")
    reason: str | None = Field(None, description="excuse: sick_leave/personal_leave/exemption/transfer/opened_in_error; "
                                                 "escalate_outside: whereabouts_unknown/refusal_after_notice/working_away; "
                                                 "record_reason（查明辍学原因）: family/study/psychological/poverty/"
                                                 "working_away/disaster/illness/other")
    payload: dict[str, Any] = Field({}, description="办理详情，按操作检查（machines/payloads.py，每个操作一个模型）："
                                                    "如 电话联系: {contact, phone, reached, result, signs}；未知字段、超长内容返回 422。"
                                                    "照片只能引用本案件上传的附件: photos: [{attachment_id, caption}]")
    expected_version: int | None = Field(None, description="打开页面时的案件版本；已被他人更新则返回 409")


@router.post("/cases/{case_id}/actions", tags=["案件 cases"], summary="办理：记录电话联系、家访、送达、复学等")
def act(case_id: DbId, body: ActionBody, who: Principal = Depends(roles(*PUPIL_READERS)),
        db: Session = Depends(get_db), now: datetime = Depends(get_now),
        idempotency_key: str | None = Header(None, description="重复提交同一键只记录一次")):
    return record_action(db, who, case_id, body.event, now=now, at=local_time(body.at), note=body.note, payload=body.payload,
                         reason=body.reason, idempotency_key=idempotency_key, expected_version=body.expected_version)


@router.post("/cases/{case_id}/attachments", tags=["案件 cases"], status_code=201,
             summary="上传附件（照片 JPG/PNG/WebP 或 PDF），返回附件编号，供办理详情的 photos 引用")
def attachment_upload(case_id: DbId, request: Request, file: UploadFile = File(..., description="照片或 PDF"),
                      who: Principal = Depends(roles(*PUPIL_READERS)), db: Session = Depends(get_db),
                      now: datetime = Depends(get_now)):
    case = readable_case(db, who, case_id)
    ensure_may_attach(db, who, case)
    settings = settings_of(request)
    a = upload_attachment(db, who, case, read_capped(file.file, settings), file.filename or "", settings=settings, now=now)
    db.commit()
    return attachment_info(a)


@router.get("/attachments/{attachment_id}", tags=["案件 cases"], summary="下载附件（仅限管辖范围内的案件）")
def attachment(attachment_id: DbId, request: Request, who: Principal = Depends(roles(*PUPIL_READERS)),
               db: Session = Depends(get_db)):
    return attachment_response(db, who, attachment_id, settings_of(request))


@router.post("/cases/{case_id}/visits", tags=["案件 cases"], summary="记录家访或集体家访，附照片 (multipart)")
def visit(case_id: DbId, request: Request, event: Literal["record_home_visit", "record_collective_visit"] = Form(...),
                note: str = Form(""), at: datetime | None = Form(None),
                payload: str = Form("{}", description="JSON：visitors, met, situation, measures, result…"),
                photos: list[UploadFile] = File([], description="现场照片 JPG/PNG/WebP"),
                captions: list[str] = Form([], description="每张照片的说明（按顺序）；缺省用文件名"),
                idempotency_key: str | None = Header(None),
                who: Principal = Depends(roles(*PUPIL_READERS)), db: Session = Depends(get_db),
                now: datetime = Depends(get_now)):
    case = readable_case(db, who, case_id)
    ensure_may_fire(db, who, case, event)  # before any photo is stored
    try:
        details = json.loads(payload or "{}")
        assert isinstance(details, dict)
    except (ValueError, AssertionError):
        raise ApiError(422, "payload 应为 JSON 对象 (payload must be a JSON object)") from None
    settings = settings_of(request)
    files = [f for f in photos if f.filename]
    refs = []
    for n, f in enumerate(files):
        a = upload_attachment(db, who, case, read_capped(f.file, settings), f.filename, settings=settings, now=now,
                              images_only=True)
        caption = captions[n] if n < len(captions) else Path(f.filename).stem
        refs.append({"attachment_id": a.id, "caption": caption})
    if refs:
        details["photos"] = [*(details.get("photos") or []), *refs] if isinstance(details.get("photos"), list) else refs
    return record_action(db, who, case_id, event, now=now, at=local_time(at), note=note, payload=details,
                         idempotency_key=idempotency_key)


@router.get("/cases/{case_id}/documents", tags=["文书 documents"], summary="案件文书（已出具和生成中）")
def documents(case_id: DbId, who: Principal = Depends(roles(*PUPIL_READERS)), db: Session = Depends(get_db)):
    readable_case(db, who, case_id)
    return _jsonable(dash.case_documents(db, case_id))


@router.get("/documents/{document_id}", tags=["文书 documents"], summary="下载文书 PDF/HTML")
def document_file(document_id: DbId, request: Request, fmt: Literal["pdf", "html", "xlsx"] = "pdf",
                  who: Principal = Depends(roles(*PUPIL_READERS)), db: Session = Depends(get_db)):
    return document_response(db, who, document_id, fmt, settings_of(request))


@router.get("/duties", tags=["职责 duties"], summary="待办职责（逾期者标红）；mine=true 只看自己的")
def duties(mine: bool = True, who: Principal = Depends(roles(*PUPIL_READERS)), db: Session = Depends(get_db),
           now: datetime = Depends(get_now)):
    owner = who.user.staff_id if mine and who.user.staff_id else None
    rows = dash.duties_of(db, who.scope, now, owner_id=owner, masked=who.masked)
    return _jsonable(rows)


@router.get("/stuck", tags=["督办 supervision"], summary="卡住的案件：职责逾期未办，按逾期时长或责任人排序")
def stuck(sort: Literal["overdue", "owner", "school"] = "overdue", who: Principal = Depends(roles(*PUPIL_READERS)),
          db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    return dash.stuck_cases(db, who.scope, now, sort=sort, masked=who.masked)


@router.get("/overview", tags=["督办 supervision"], summary="各校在办案件，按环节统计")
def overview(who: Principal = Depends(roles(*SCHOOL_AND_OFFICES)), db: Session = Depends(get_db)):
    return dash.open_cases_by_step(db, who.scope)


# -- figures, reports, accountability -----------------------------------------------------------------
@router.get("/figures/monthly", tags=["统计 figures"], summary="月度数据：辍学人数、辍学率、返校、原因、各环节")
def figures(month: str | None = Query(None, description="2026-11；默认本月"),
            who: Principal = Depends(roles(*SCHOOL_AND_OFFICES)), db: Session = Depends(get_db),
            now: datetime = Depends(get_now)):
    return monthly_figures(db, who, month, now)


@router.get("/reports", tags=["统计 figures"], summary="已报送的月报（学校、乡镇、县）")
def reports(period: str | None = None, who: Principal = Depends(roles(*SCHOOL_AND_OFFICES)),
            db: Session = Depends(get_db)):
    return [{"id": f.id, "level": f.level, "scope": f.scope_name, "code": f.scope_code, "period": f.period,
             "due_on": f.due_on.isoformat(), "filed_at": f.filed_at.isoformat(sep=" "), "late": f.late,
             "files": sorted(f.files or {})} for f in dash.report_filings(db, who.scope, period=period)]


@router.get("/reports/{filing_id}/{fmt}", tags=["统计 figures"], summary="下载月报文件 (md/xlsx)")
def report_file(filing_id: DbId, fmt: str, request: Request, who: Principal = Depends(roles(*SCHOOL_AND_OFFICES)),
                db: Session = Depends(get_db)):
    return report_file_response(db, who, filing_id, fmt, settings_of(request))


@router.get("/late-reports", tags=["督办 supervision"], summary="迟报、漏报：晨检和月报")
def late_reports(month: str | None = Query(None, description="2026-11；默认本月"),
                 who: Principal = Depends(roles(Role.township, Role.county, Role.operator)),
                 db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    return _jsonable(late_report_data(db, who, month, now))


@router.get("/accountability", tags=["督办 supervision"], summary="责任追究证据：谁在哪个案件上错过了哪个时限")
def accountability(start: date | None = None, end: date | None = None,
                   who: Principal = Depends(roles(*SCHOOL_AND_OFFICES)), db: Session = Depends(get_db),
                   now: datetime = Depends(get_now)):
    start = start or now.date().replace(day=1)
    if any(d is not None and not 2000 <= d.year <= 2100 for d in (start, end)):  # 9999-12-31: the day after overflows
        raise ApiError(422, "日期超出范围（2000–2100 年）(date out of range)")
    return _jsonable(dash.accountability(db, who.scope, start, end or now.date(), now, masked=who.masked))


@router.get("/spot-checks", tags=["督办 supervision"], summary="季度随机抽查表")
def spot_checks(who: Principal = Depends(roles(*OFFICES)), db: Session = Depends(get_db)):
    return _jsonable(dash.spot_checks(db, who.scope))


@router.get("/runs", tags=["运行 runs"], summary="Prefect 流程运行（带 Prefect UI 链接）")
def runs(request: Request, who: Principal = Depends(roles(Role.county, Role.operator))):
    found, error = recent_runs(request.app.state.deployments)
    if found is None:
        return {"configured": False, "message": "未配置 Prefect 服务 (PREFECT_API_URL)，流程在本机直接执行", "runs": []}
    return {"configured": True, "message": error, "runs": _jsonable(found)}
