"""Server-rendered pages in Chinese: plain HTML forms, no script needed, light on an old PC.

Head teacher: /teacher (today's absences, my duties, my cases), the case page, the morning check.
School office: /school (open cases by step, today's check, the month), the morning-check upload.
Township / county: /stuck, /overview, /figures, /late, /spot-checks, /accountability, /runs.
"""
from __future__ import annotations

import csv
import io
import json
from urllib.parse import urlencode
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from machines.next_steps import day_label, first_duty_notice, moment_label, step_dates
from machines.states import LADDER, STATE_LABELS, CaseState
from store.reporting import dashboards as dash
from store.models.accounts import User
from store.access.accounts import ROLE_LABELS, Role
from store.ingest.attendance_files import parse_attendance
from store.cases.context import CaseContext
from store.cases.intake import MarkIn
from machines.identity import mask_name
from store.models import AttendanceMark, Case, Pupil, Staff
from store.prevention.common import duties as prevention_duties
from store.reporting.queries import case_detail, list_cases
from store.ingest.tabular import TableError, csv_safe

from web.shell import _role_names, page, render
from web.auth import HOME_BY_ROLE, check_csrf
from web.deps import (
    NOT_FOUND_CASE, OFFICES, PUPIL_READERS, SHANGHAI, ApiError, Principal, get_db, get_now, page_user, roles, settings_of,
)
from web.deps import DbId
from web.county_check import COUNTY_FILE_ROLES, school_file_rows, stage_for_preview, staged_county_file, submit_county_file
from web.services import (
    own_duties,
    document_response, late_report_data, local_time, monthly_figures, read_upload, report_file_response, template_response,
    EVENT_LABELS, PHOTO_EVENTS, attachment_response, day_of_file, ensure_may_fire, offered_actions, read_capped,
    readable_case, recent_runs, record_action, submit_morning_check, upload_attachment,
    ConfirmationNeeded, check_status,
)

router = APIRouter(include_in_schema=False)
SCHOOLS = (Role.head_teacher, Role.school_staff)
SCHOOL_AND_OFFICES = (Role.school_staff, Role.township, Role.county)

FOLLOW_UP_FORM = [("contact", "联系对象", "text"), ("unit", "单位（派出所/用工单位/司法所）", "text"),
                          ("situation", "现状", "textarea"), ("measures", "采取的措施", "textarea"), ("result", "结果", "textarea")]  # a referred case's follow-up (machines.payloads.FollowUp)
# What staff enter with each action: (payload key, label, kind). Keys are those documents/records.py reads.
FORM_FIELDS: dict[str, list[tuple[str, str, str]]] = {
    "record_phone_call": [("contact", "联系的家长/监护人", "text"), ("phone", "电话号码", "text"),
                          ("reached", "是否联系上", "yesno"), ("legit_reason", "是否有正当理由", "yesno"),
                          ("signs", "是否有辍学苗头", "yesno"), ("result", "联系结果", "textarea")],
    "record_home_visit": [("visitors", "家访人员（用、或逗号分隔）", "list"), ("met", "见到的家人", "text"),
                          ("situation", "家庭情况", "textarea"), ("measures", "采取的措施", "textarea"),
                          ("result", "家访结果", "textarea")],
    "record_collective_visit": [("participants", "参加人员（用、或逗号分隔）", "list"), ("village_member", "村委会成员", "text"),
                                ("situation", "情况", "textarea"), ("measures", "控辍方案和措施", "textarea"),
                                ("result", "结果", "textarea")],
    "serve_township_notice": [("recipient", "受送达人", "text"), ("method", "送达方式", "text"),
                              ("servers", "送达人（用、或逗号分隔）", "list"), ("witness", "见证人", "text"),
                              ("refused", "是否拒收", "yesno")],
    "serve_legal_notice": [("recipient", "受送达人", "text"), ("method", "送达方式", "text"),
                           ("servers", "送达人（用、或逗号分隔）", "list"), ("witness", "见证人", "text"),
                           ("refused", "是否拒收", "yesno")],
    "assign_helpers": [("helper1", "帮扶责任人一", "text"), ("helper1_role", "职务", "role"),
                       ("helper2", "帮扶责任人二", "text"), ("helper2_role", "职务", "role"),
                       ("helper3", "帮扶责任人三", "text"), ("helper3_role", "职务", "role")],
    "record_reason": [("basis", "依据（家访、电话了解到的情况）", "textarea")],  # the reason class: the 原因 select
    # 辍学书面通报 (seed 002): what the class record says, the parent's signature, the bureau's copy
    "record_class_record": [("conduct", "在校行为表现", "textarea"), ("study", "学习情况", "textarea")],
    "serve_parent_notice": [("recipient", "签字家长", "text"), ("served_at", "签字时间", "text"),
                            ("refused", "家长是否拒签", "yesno"), ("witness", "见证人", "text"), ("opinion", "家长意见", "textarea")],
    "report_parent_notice": [("received_by", "教育局接收人", "text"), ("received_at", "接收时间", "text"),
                             ("method", "报送方式", "text")],
    "mark_returned": [("measures", "劝返措施", "textarea"), ("follow_up", "跟踪安排", "textarea")],
    "excuse": [],
    "escalate_outside": [],
    **{a: FOLLOW_UP_FORM for a in ("record_follow_up", "record_police_search", "record_guardian_persuasion",
                                   "record_employer_persuasion", "record_judicial_progress")},
}
PAYLOAD_LABELS = {k: label.split("（")[0] for fields in FORM_FIELDS.values() for k, label, _ in fields} | {
    "helpers": "帮扶责任人", "notes": "说明", "photos": "照片"}


@router.get("/favicon.ico")
def favicon():
    return Response(status_code=204)


# -- home ----------------------------------------------------------------------------------------------
@router.get("/")
def home(who: Principal = Depends(page_user)):
    return RedirectResponse(HOME_BY_ROLE[who.role], status_code=303)


@router.get("/teacher")
def teacher(request: Request, who: Principal = Depends(page(Role.head_teacher)), db: Session = Depends(get_db),
            now: datetime = Depends(get_now)):
    return render(request, "teacher.html", who,
                  absences=dash.absences_on(db, who.scope, now.date()),
                  mine=own_duties(db, who, now),  # every kind of duty the teacher owns (store.duties.mine)
                  cases=list_cases(db, scope=who.scope, open_only=True),
                  prevention=prevention_duties(db, scope=who.scope, as_of=now),  # gate alerts, truancy tiers
                  checked=_checked_today(db, who, now.date()))


def _checked_today(db: Session, who: Principal, day: date) -> bool:
    """Has the morning check of ``day`` come in for the reader's pupils?"""
    q = select(AttendanceMark.id).join(Pupil, Pupil.id == AttendanceMark.pupil_id).where(AttendanceMark.day == day)
    q = who.scope.apply(q, school_col=AttendanceMark.school_id, class_col=Pupil.class_id)
    return db.scalar(q.limit(1)) is not None


@router.get("/school")
def school(request: Request, who: Principal = Depends(page(Role.school_staff)), db: Session = Depends(get_db),
           now: datetime = Depends(get_now)):
    figures = monthly_figures(db, who, None, now)["total"]
    return render(request, "school.html", who, board=dash.cases_by_step(db, who.scope),
                  absences=dash.absences_on(db, who.scope, now.date()), figures=figures,
                  checked=_checked_today(db, who, now.date()), mine=own_duties(db, who, now),
                  duties=[d for d in dash.duties_of(db, who.scope, now) if d["overdue"]],
                  prevention=prevention_duties(db, scope=who.scope, as_of=now))  # gate alerts, truancy tiers


# -- morning check ---------------------------------------------------------------------------------------
@router.get("/morning-check")
def morning_check_form(request: Request, who: Principal = Depends(page(*SCHOOLS, *COUNTY_FILE_ROLES)),
                       db: Session = Depends(get_db),
                       now: datetime = Depends(get_now)):
    pupils = dash.pupils_in(db, who.scope) if who.role is Role.head_teacher else []
    today = {m["student_no"]: m["status"] for m in dash.absences_on(db, who.scope, now.date())}
    return render(request, "morning_check.html", who, pupils=pupils, today=today, day=now.date())


@router.get("/morning-check/template.{fmt}")
def morning_check_template(fmt: str, who: Principal = Depends(page(*SCHOOLS)), db: Session = Depends(get_db),
                           now: datetime = Depends(get_now)):
    if fmt not in ("csv", "xlsx"):
        raise ApiError(404, "只有 CSV 和 XLSX 模板 (csv or xlsx)")
    return template_response(db, who, fmt, now.date())


def _form_day(raw: Any, today: date) -> date | None:
    if not raw:
        return None
    try:
        day = date.fromisoformat(str(raw))
    except ValueError:
        raise ApiError(422, f"日期「{raw}」格式应为 2026-11-16") from None
    if not 2000 <= day.year <= 2100:  # 9999-12-31: the day after it overflows
        raise ApiError(422, f"日期「{raw}」超出范围（2000–2100 年）")
    return day


@router.post("/morning-check/upload")
async def morning_check_upload(request: Request, who: Principal = Depends(page(*SCHOOLS, *COUNTY_FILE_ROLES)),
                               db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    return await run_in_threadpool(_upload_check, request, who, db, now, form)


def _upload_check(request: Request, who: Principal, db: Session, now: datetime, form) -> HTMLResponse:
    check_csrf(who, form.get("csrf"))
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise ApiError(422, "请选择要上传的晨检表文件 (choose a file)")
    settings = settings_of(request)
    data = read_upload(upload, settings)
    try:
        parsed = parse_attendance(data, filename=upload.filename)
    except TableError as exc:
        raise ApiError(422, str(exc)) from None
    day = day_of_file(parsed, _form_day(form.get("day"), now.date()), now.date())
    if who.role in COUNTY_FILE_ROLES:  # a county or township file: rows name their schools (web.county_check)
        return _submit_county(request, who, db, now, data=data, filename=upload.filename, parsed=parsed, day=day)
    marks, errors, more = school_file_rows(db, who, parsed)
    return _submit_check(request, who, db, now, day=day, marks=marks, source="upload", filename=upload.filename,
                         errors=errors, more_errors=more)


def _submit_county(request: Request, who: Principal, db: Session, now: datetime, *, data: bytes, filename: str,
                   parsed, day: date, confirm: bool | str = False, staged: tuple[int, str] | None = None) -> HTMLResponse:
    """A county file: submitted, or its preview (the file kept, the confirmation names it by id and SHA-256)."""
    try:
        outcome = submit_county_file(db, who, settings=settings_of(request), deployments=request.app.state.deployments,
                                     data=data, filename=filename, parsed=parsed, day=day, now=now, confirm=confirm)
    except ConfirmationNeeded as exc:
        db.rollback()
        file_id, digest = staged or stage_for_preview(db, who, data, filename, now)
        return render(request, "morning_check_confirm.html", who, review=exc.review, day=day, source="upload",
                      filename=filename, marks_json="[]", staged={"id": file_id, "sha256": digest},
                      cases=_case_refs(db, who, exc.review.closing[:200]))
    return render(request, "morning_check_done.html", who, outcome=outcome, filename=filename, result_url=None)


def _submit_check(request: Request, who: Principal, db: Session, now: datetime, *, day: date, marks: list[MarkIn],
                  source: str, filename: str | None, errors=None, confirm: bool | str = False,
                  more_errors: int = 0) -> HTMLResponse:
    """Submit, or show what the check would overwrite and close and ask for a confirmation (nothing applied)."""
    try:
        outcome = submit_morning_check(db, who, settings=settings_of(request), deployments=request.app.state.deployments,
                                       school_code=None, day=day, marks=marks, source=source, now=now, errors=errors,
                                       confirm=confirm, more_errors=more_errors)
    except ConfirmationNeeded as exc:
        db.rollback()
        review = exc.review
        rows = [{"student_no": m.student_no, "status": m.status, "reason": m.reason, "row": m.row} for m in marks]
        return render(request, "morning_check_confirm.html", who, review=review, day=day, source=source,
                      filename=filename, marks_json=json.dumps(rows, ensure_ascii=False), staged=None,
                      cases=_case_refs(db, who, review.closing))
    result_url = None
    if outcome.mode == "run":
        result_url = "/morning-check/result?" + urlencode({"day": outcome.day.isoformat(), "at": outcome.submitted_at.isoformat(),
                                                          "run": outcome.flow_run_id or ""})
    return render(request, "morning_check_done.html", who, outcome=outcome, filename=filename, result_url=result_url)


def _case_refs(db: Session, who: Principal, ids: list[int]) -> list[dict[str, Any]]:
    """The cases a check would close, with their pupils (as the reader may see them)."""
    if not ids:
        return []
    q = who.scope.apply(select(Case.id, Pupil.name, Pupil.student_no, Case.state)
                        .join(Pupil, Pupil.id == Case.pupil_id).where(Case.id.in_(ids)).order_by(Case.id))
    return [{"id": cid, "pupil": mask_name(name) if who.masked else name, "student_no": no,
             "state": STATE_LABELS[CaseState(state)]} for cid, name, no, state in db.execute(q)]


class _ConfirmedMark(BaseModel):
    student_no: str = Field(min_length=1, max_length=32)
    status: str = Field(max_length=16)
    reason: str = Field("unknown", max_length=32)
    row: int | None = None


@router.post("/morning-check/confirm")
async def morning_check_confirm(request: Request, who: Principal = Depends(page(*SCHOOLS, *COUNTY_FILE_ROLES)),
                                db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    return await run_in_threadpool(_confirm_check, request, who, db, now, form)


def _confirm_check(request: Request, who: Principal, db: Session, now: datetime, form) -> HTMLResponse:
    """The preview's 确认提交: the same marks, with the token of the preview the user saw (if the day's
    record changed meanwhile, the new preview is shown instead)."""
    check_csrf(who, form.get("csrf"))
    if who.role in COUNTY_FILE_ROLES:  # a county file's preview names the file it kept
        try:
            staged = (int(str(form.get("file_id") or "")), str(form.get("file_sha256") or ""))
        except ValueError:
            raise ApiError(422, "提交内容无法识别，请重新上传 (bad confirmation form)") from None
        data, filename = staged_county_file(db, who, *staged)
        try:
            parsed = parse_attendance(data, filename=filename)
        except TableError as exc:
            raise ApiError(422, str(exc)) from None
        return _submit_county(request, who, db, now, data=data, filename=filename, parsed=parsed, staged=staged,
                              day=_form_day(form.get("day"), now.date()) or now.date(),
                              confirm=str(form.get("token") or "") or False)
    try:
        rows = TypeAdapter(list[_ConfirmedMark]).validate_json(str(form.get("marks") or "[]"))
    except ValidationError:
        raise ApiError(422, "提交内容无法识别，请重新上传 (bad confirmation form)") from None
    source = str(form.get("source") or "")
    if source not in ("upload", "web"):
        raise ApiError(422, "提交内容无法识别，请重新上传 (bad confirmation form)")
    marks = [MarkIn(r.student_no, r.status, r.reason, r.row) for r in rows]
    return _submit_check(request, who, db, now, day=_form_day(form.get("day"), now.date()) or now.date(), marks=marks,
                         source=source, filename=str(form.get("filename") or "") or None,
                         confirm=str(form.get("token") or "") or False)


@router.get("/morning-check/status")
def morning_check_status(request: Request, day: date, at: datetime, who: Principal = Depends(page(*SCHOOLS)),
                         db: Session = Depends(get_db)):
    """What the submitted check did, once its run has recorded it (the confirmation page polls this)."""
    return check_status(db, who, request.app.state.deployments, day=day, at=at, run_id=request.query_params.get("run"))


@router.get("/morning-check/result")
def morning_check_result(request: Request, day: date, at: datetime, run: str | None = None,
                         who: Principal = Depends(page(*SCHOOLS)), db: Session = Depends(get_db)):
    """The submitted check's result page: refreshes itself (no script) until the run has recorded it."""
    result = check_status(db, who, request.app.state.deployments, day=day, at=at, run_id=run)
    return render(request, "morning_check_result.html", who, result=result, day=day, at=at)


@router.post("/morning-check/form")
async def morning_check_list(request: Request, who: Principal = Depends(page(Role.head_teacher)),
                             db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    return await run_in_threadpool(_list_check, request, who, db, now, form)


def _list_check(request: Request, who: Principal, db: Session, now: datetime, form) -> HTMLResponse:
    check_csrf(who, form.get("csrf"))
    marks = [MarkIn(key[7:], str(value)) for key, value in form.multi_items() if key.startswith("status:")]
    return _submit_check(request, who, db, now, day=_form_day(form.get("day"), now.date()) or now.date(), marks=marks,
                         source="web", filename=None)


# -- cases (the list: web/pages_queues.py) --------------------------------------------------------
@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: DbId, done: str | None = None, who: Principal = Depends(page(*PUPIL_READERS)),
              db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    detail = case_detail(db, case_id, scope=who.scope, masked=who.masked)
    if detail is None:
        raise ApiError(404, NOT_FOUND_CASE)
    row = readable_case(db, who, case_id)
    policy = CaseContext(db).policy(row.policy_name, row.policy_version)
    due = {d["action"] for d in detail["duties"] if d["status"] in ("open", "overdue")}
    actions = offered_actions(who, row, policy, due)
    for d in detail["duties"]:
        d["late_now"] = d["status"] == "overdue" or (d["status"] == "open" and datetime.fromisoformat(d["due_at"]) <= now)
    detail["events"] = [_event_view(e) for e in detail["events"]]
    actors = _actor_names(db, {e["actor"] for e in detail["events"]})
    guardian = detail["guardians"][0] if detail["guardians"] else None
    prefill = {"record_phone_call:contact": f"{guardian['name']}（{guardian['relation']}）" if guardian else "",
               "record_phone_call:phone": (guardian["phone"] or "") if guardian else "",
               # 三帮一: the roles the policy wants covered, one per line (machines/policy_helpers.py)
               **{f"assign_helpers:helper{i}_role": r for i, r in enumerate(policy.three_helpers.roles, start=1)}}
    steps = step_dates(policy, CaseContext(db).calendar(row.calendar_key), opened_on=row.opened_on,
                       created_at=row.created_at, state=row.state,
                       reached={e["to"]: datetime.fromisoformat(e["at"]) for e in detail["events"] if e["event"] == "escalate"})
    ladder = _ladder(policy, row.state)
    dates = {s.state: s for s in steps}
    for rung in ladder:
        s = dates.get(rung["state"])
        rung["date"] = (("" if s.reached else "预计 ") + moment_label(s.reached_at, now.date())) if s and s.reached_at else (
            day_label(row.opened_on, now.date()) if rung["state"] == CaseState.absent.value else "")
    return render(request, "case.html", who, case=detail, ladder=ladder, actions=actions,
                  next_steps=steps if not CaseState(row.state).is_final else [],
                  first_notice=first_duty_notice(steps, now) if not detail["duties"] else None,
                  fields=FORM_FIELDS, documents=dash.case_documents(db, case_id), actors=actors,
                  payload_labels=PAYLOAD_LABELS, prefill=prefill, done=EVENT_LABELS.get(done) if done else None,
                  default_at=now.strftime("%Y-%m-%dT%H:%M"), policy=policy, version=row.version,
                  idem=f"web:{case_id}:{row.version}:{who.user.id}", chain=_chain(db, row.pupil_id))


def _chain(db: Session, pupil_id: int) -> list[dict[str, Any]]:
    from store.accountability.chain import chain_of  # 包保 chain (web/pages_accountability.py assigns)

    return chain_of(db, pupil_id)


DISPLAY_CHARS = 500  # of one value in the history; the rest is in the case's documents and the API


def _shown(value: Any) -> str:
    """One payload value as the history prints it; an unexpected shape prints as nothing."""
    if value is True or value is False:
        return "是" if value else "否"
    if isinstance(value, (str, int, float)):
        text = str(value)
    elif isinstance(value, list):
        text = "、".join(str(v.get("name") or "") if isinstance(v, dict) else str(v)
                        for v in value[:20] if isinstance(v, (dict, str, int)))
    else:
        return ""
    return text if len(text) <= DISPLAY_CHARS else text[:DISPLAY_CHARS] + "……"


def _event_view(e: dict[str, Any]) -> dict[str, Any]:
    """An event of the history as the page shows it, read defensively: the history is append-only,
    so an old event recorded before payloads were checked must not stop the page (issue 14 row 9)."""
    payload = e.get("payload") if isinstance(e.get("payload"), dict) else {}
    lines = [(PAYLOAD_LABELS[k], text) for k, v in payload.items()
             if k in PAYLOAD_LABELS and k not in ("photos", "notes") and (text := _shown(v))]
    photos = []
    raw = payload.get("photos")
    for p in raw[:20] if isinstance(raw, list) else []:
        ref = p if isinstance(p, dict) else {}
        if isinstance(ref.get("attachment_id"), int):
            photos.append({"id": ref["attachment_id"], "caption": _shown(ref.get("caption"))[:60]})
        else:
            photos.append({"id": None, "caption": "旧记录中的照片，无法显示"})
    return {**e, "reason": _shown(e.get("reason")), "lines": lines, "photos": photos}


def _actor_names(db: Session, actors: set[str]) -> dict[str, str]:
    """Who wrote each event, as people read it: a user's or staff member's name with their role."""
    users = {f"user:{u}": f"{d}（{ROLE_LABELS[Role(r)]}）" for u, d, r in db.execute(
        select(User.username, User.display_name, User.role).where(
            User.username.in_([a[5:] for a in actors if a.startswith("user:")])))}
    staff_ids = [int(a[6:]) for a in actors if a.startswith("staff:") and a[6:].isdigit()]
    staff = {f"staff:{i}": f"{n}（{_role_names().get(r, r)}）" for i, n, r in db.execute(
        select(Staff.id, Staff.name, Staff.role).where(Staff.id.in_(staff_ids)))}
    return {a: users.get(a) or staff.get(a) or ("系统（按制度自动）" if a == "system" else a) for a in actors}


def _ladder(policy, state: str) -> list[dict[str, Any]]:
    """The policy's ladder as boxes: done, current or ahead (a closed case shows its end state)."""
    current = CaseState(state)
    steps = [{"state": CaseState.absent.value, "day": 0, "label": "晨检发现缺勤，登记", "roles": ["head_teacher", "academic_office"]}]
    steps += [{"state": s.state.value, "day": s.day, "label": s.label, "roles": s.roles} for s in policy.steps]
    reached = LADDER.index(current) if current in LADDER else None
    for s in steps:
        idx = LADDER.index(CaseState(s["state"]))
        s["status"] = ("current" if idx == reached else "done" if reached is not None and idx < reached else
                       "ahead" if reached is not None else "closed")
        s["title"] = STATE_LABELS[CaseState(s["state"])]
        s["who"] = "、".join(policy.role_label(r) for r in s["roles"])
    if reached is None:
        steps.append({"state": state, "day": None, "label": "", "status": "final", "title": current.label, "who": ""})
    return steps


def _payload_from_form(event: str, form) -> dict[str, Any]:
    """The form's fields as the action's payload; ``store.cases.actions`` checks it against the action's model
    (machines/payloads.py: lengths, lists split on 、 and commas), as for the API."""
    payload: dict[str, Any] = {}
    for key, _, kind in FORM_FIELDS.get(event, []):
        raw = str(form.get(key) or "").strip()
        if not raw:
            continue
        payload[key] = raw == "yes" if kind == "yesno" else raw
    if event == "assign_helpers":  # 三帮一: each named helper with the role chosen beside it
        helpers = [{"name": payload.pop(k), "role": payload.pop(f"{k}_role", "")}
                   for k in ("helper1", "helper2", "helper3") if k in payload]
        for k in ("helper1_role", "helper2_role", "helper3_role"):
            payload.pop(k, None)
        if not helpers:
            raise ApiError(422, "请至少填写一名帮扶责任人 (at least one helper)")
        payload["helpers"] = helpers
    return payload


@router.post("/cases/{case_id}/act")
async def case_act(request: Request, case_id: DbId, who: Principal = Depends(page(*PUPIL_READERS)),
                   db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    return await run_in_threadpool(_act, request, case_id, who, db, now, form)


def _act(request: Request, case_id: int, who: Principal, db: Session, now: datetime, form) -> RedirectResponse:
    check_csrf(who, form.get("csrf"))
    event = str(form.get("event") or "")
    ensure_may_fire(db, who, readable_case(db, who, case_id), event)  # before any photo is stored
    payload = _payload_from_form(event, form)
    note = str(form.get("note") or "").strip()
    if note:
        payload["notes"] = note
    at = None
    if form.get("at"):
        try:
            at = local_time(datetime.fromisoformat(str(form.get("at"))))
        except ValueError:
            raise ApiError(422, "办理时间格式不正确 (bad time)") from None
    if event in PHOTO_EVENTS:  # each photo becomes an attachment of this case; the payload names its id
        settings = settings_of(request)
        case = readable_case(db, who, case_id)
        if any(not isinstance(f, UploadFile) and str(f).strip() for f in form.getlist("photos")):
            raise ApiError(422, "照片只能作为文件上传，不能填写路径或网址 (photos are uploaded files, never a path or URL)")
        photos = [f for f in form.getlist("photos") if isinstance(f, UploadFile) and f.filename]
        caption = str(form.get("photo_caption") or "").strip()
        refs = []
        for n, f in enumerate(photos, start=1):
            a = upload_attachment(db, who, case, read_capped(f.file, settings), f.filename, settings=settings, now=now,
                                  images_only=True)
            refs.append({"attachment_id": a.id, "caption": f"{caption}（{n}）" if caption and len(photos) > 1 else caption})
        if refs:
            payload["photos"] = refs
    try:
        version = int(form.get("version") or 0) or None
    except ValueError:
        version = None
    record_action(db, who, case_id, event, now=now, at=at, note=note or EVENT_LABELS.get(event, event),
                  payload=payload, reason=str(form.get("reason") or "") or None,
                  idempotency_key=str(form.get("idem") or "")[:64] or None, expected_version=version)
    return RedirectResponse(f"/cases/{case_id}?done={event}", status_code=303)


@router.get("/attachments/{attachment_id}")
def attachment(request: Request, attachment_id: DbId, who: Principal = Depends(page(*PUPIL_READERS)),
               db: Session = Depends(get_db)):
    return attachment_response(db, who, attachment_id, settings_of(request))


@router.get("/documents/{document_id}.{fmt}")
def document(request: Request, document_id: DbId, fmt: str, who: Principal = Depends(page(*PUPIL_READERS)),
             db: Session = Depends(get_db)):
    return document_response(db, who, document_id, fmt, settings_of(request))


# -- offices -------------------------------------------------------------------------------------------
# /stuck: web/pages_queues.py (the work queues, issue 18)


@router.get("/overview")
def overview(request: Request, who: Principal = Depends(page(*SCHOOL_AND_OFFICES)), db: Session = Depends(get_db),
             now: datetime = Depends(get_now)):
    return render(request, "overview.html", who, board=dash.open_cases_by_step(db, who.scope), mine=own_duties(db, who, now))


@router.get("/figures")
def figures(request: Request, month: str | None = None, who: Principal = Depends(page(*SCHOOL_AND_OFFICES)),
            db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    data = monthly_figures(db, who, month, now)
    months = [f"{(now.date().replace(day=1) - timedelta(days=28 * i)):%Y-%m}" for i in range(6)]
    from web.pages_oversight import figures_context  # submitted figures against the ledger (issue 8 part 5)
    return render(request, "figures.html", who, data=data, months=sorted(set(months), reverse=True),
                  filings=dash.report_filings(db, who.scope, period=data["month"]), **figures_context(db, who, data["month"]))


@router.get("/reports/{filing_id}.{fmt}")
def report_file(request: Request, filing_id: DbId, fmt: str, who: Principal = Depends(page(*SCHOOL_AND_OFFICES)),
                db: Session = Depends(get_db)):
    return report_file_response(db, who, filing_id, fmt, settings_of(request))


@router.get("/late")
def late(request: Request, month: str | None = None,
         who: Principal = Depends(page(Role.township, Role.county, Role.operator)), db: Session = Depends(get_db),
         now: datetime = Depends(get_now)):
    return render(request, "late.html", who, data=late_report_data(db, who, month, now))


@router.get("/spot-checks")
def spot_checks(request: Request, who: Principal = Depends(page(*OFFICES)), db: Session = Depends(get_db)):
    return render(request, "spot_checks.html", who, checks=dash.spot_checks(db, who.scope))


ROW_LIMIT = 500  # rows a page lists; the rest is in the CSV download


def _evidence(db: Session, who: Principal, start: str | None, end: str | None, now: datetime) -> dict[str, Any]:
    first = _form_day(start, now.date()) or now.date().replace(day=1)
    last = _form_day(end, now.date()) or now.date()
    return dash.accountability(db, who.scope, first, last, now, masked=who.masked)


@router.get("/accountability")
def accountability(request: Request, start: str | None = None, end: str | None = None,
                   who: Principal = Depends(page(*SCHOOL_AND_OFFICES)), db: Session = Depends(get_db),
                   now: datetime = Depends(get_now)):
    return render(request, "accountability.html", who, data=_evidence(db, who, start, end, now), limit=ROW_LIMIT)


@router.get("/accountability.csv")
def accountability_csv(start: str | None = None, end: str | None = None,
                       who: Principal = Depends(page(*SCHOOL_AND_OFFICES)), db: Session = Depends(get_db),
                       now: datetime = Depends(get_now)):
    data = _evidence(db, who, start, end, now)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["责任人", "职责", "学校", "案件", "学生", "环节", "应办事项", "截止时间", "办理时间", "超时（小时）",
                "类别", "编号", "情形", "依据"])
    for r in data["rows"]:
        w.writerow([csv_safe(v) for v in (
            r["person"] or "（未指定）", r["role_label"], r["unit"], r["case_id"] or "", r["pupil"] or "",
            r["context"], r["duty_label"], r["due_at"].strftime("%Y-%m-%d %H:%M"),
            r["done_at"].strftime("%Y-%m-%d %H:%M") if r["done_at"] else "未办", r["hours_late"],
            r["kind_label"], r["ref_id"], r["ground"], f"seed {r['ground_seed']}")])
    name = f"accountability-{data['start']}-{data['end']}.csv"
    return Response(("\ufeff" + out.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/runs")
def runs(request: Request, who: Principal = Depends(page(Role.county, Role.operator)), db: Session = Depends(get_db),
         now: datetime = Depends(get_now)):
    from documents.retry import failed_requests

    deployments = request.app.state.deployments
    found, error = recent_runs(deployments)
    ui = deployments.ui_url() if found is not None and hasattr(deployments, "ui_url") else None
    return render(request, "runs.html", who, runs=found, ui=ui, error=error, calendar_warnings=_calendar_warnings(db, now),
                  failed_renders=failed_requests(db))


def _calendar_warnings(db: Session, now: datetime) -> list[dict[str, Any]]:
    """The operator's page: each school calendar that reaches within 60 days into a year without a holiday list."""
    from store.calendar_watch import calendar_warnings
    from store.calendars import calendars

    return calendar_warnings(db, calendars(), now.date())
