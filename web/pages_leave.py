"""The page of leave, 免学/缓学, transfers, lesson counts and 放学未回家 (/leave; issue 17 items 5, 6, 8).

Head teacher: applies for a pupil's leave (with the note), reports a lesson absence and a parent's
放学未回家, approves what is routed to the head teacher. School office (acting for 教导处 and the
principal): the same for the school, approves leave routed to them, records 转出 and confirms the
转入 of pupils coming to the school (or uploads the receipt of a school outside the county). County:
decides 免学/缓学. Township: reads. Each pending request shows who decides it and by when.
"""
from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from machines.identity import mask_name
from machines.vocabulary import REQUEST_KIND_LABELS, decision_label
from store.access.accounts import Role
from store.cases.lessons import LessonError, lesson_reports, not_home_reports
from store.prevention.common import duties

from web import api_leave as svc
from web.auth import check_csrf
from web.deps import ApiError, DbId, Principal, get_db, get_now, roles
from web.shell import render

router = APIRouter(include_in_schema=False)
READERS = (Role.head_teacher, Role.school_staff, Role.township, Role.county)


def _page(*allowed: Role):
    return roles(*allowed, api=False)


def _day(raw, field: str, default: date | None = None) -> date | None:
    if not raw:
        return default
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise ApiError(422, f"{field}格式应为 2026-11-16 (bad date)") from None


@router.get("/leave")
def leave_page(request: Request, done: str | None = None, who: Principal = Depends(_page(*READERS)),
               db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    rows = svc.visible(db, who)
    for r in rows:
        if who.masked:  # a township or county reader sees masked names (store.access.masking)
            r["pupil"], r["student_no"] = mask_name(r["pupil"]), ""
        r["kind_label"] = REQUEST_KIND_LABELS[r["kind"]]
        r["decision_label"] = decision_label(r["kind"], r["decision"])
        r["may_decide"] = svc.may_decide(who, r)
        r["overdue"] = r["decision"] == "pending" and r["due_at"] <= now
    school_ids = None if who.scope.school_ids is None else sorted(who.scope.school_ids)
    schools = who.role in svc.SCHOOLS
    return render(request, "leave.html", who, rows=rows, done=done, today=now.date().isoformat(), schools=schools,
                  office=who.role is Role.school_staff,
                  lessons=lesson_reports(db, school_ids=school_ids) if schools else [],
                  not_home=not_home_reports(db, school_ids=school_ids) if schools else [],
                  searches=duties(db, scope=who.scope, as_of=now, source="after_school") if schools else [],
                  kinds=[(k, v) for k, v in REQUEST_KIND_LABELS.items() if k != "transfer"])


@router.get("/leave/{request_id}/decision.pdf")
def decision_pdf(request: Request, request_id: DbId, who: Principal = Depends(_page(*READERS)),
                 db: Session = Depends(get_db)):
    return svc.decision_file(db, who, request_id, request)


@router.post("/leave/apply")
async def leave_apply(request: Request, who: Principal = Depends(_page(*svc.SCHOOLS)), db: Session = Depends(get_db),
                      now: datetime = Depends(get_now)):
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    kind = str(form.get("kind") or "")
    if kind not in REQUEST_KIND_LABELS or kind == "transfer":
        raise ApiError(422, "请选择请假类别 (choose a kind)")
    first = _day(form.get("first_day"), "开始日期", now.date())
    r = svc.apply(db, who, student_no=str(form.get("student_no") or ""), kind=kind, first_day=first,
                  last_day=_day(form.get("last_day"), "结束日期", first), reason=str(form.get("reason") or "")[:200],
                  now=now, source="web")
    upload = form.get("certificate")
    if upload is not None and getattr(upload, "filename", ""):
        data = await upload.read(svc.settings_of(request).attachment_max_mb * 1024 * 1024 + 1)
        svc.attach(db, who, r.id, data, upload.filename, request=request, now=now)
    db.commit()
    return RedirectResponse("/leave?done=apply", status_code=303)


@router.post("/leave/{request_id}/decide")
async def leave_decide(request: Request, request_id: DbId, who: Principal = Depends(_page(*svc.DECIDERS)),
                       db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    upload = form.get("receipt")
    if upload is not None and getattr(upload, "filename", ""):
        data = await upload.read(svc.settings_of(request).attachment_max_mb * 1024 * 1024 + 1)
        svc.attach(db, who, request_id, data, upload.filename, request=request, now=now)
    svc.decide(db, who, request_id, approve=form.get("approve") == "1", note=str(form.get("note") or "")[:200], now=now)
    db.commit()
    return RedirectResponse("/leave?done=decide", status_code=303)


@router.post("/leave/transfer")
async def transfer_out(request: Request, who: Principal = Depends(_page(Role.school_staff)),
                       db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    code, name = str(form.get("to_school_code") or "").strip(), str(form.get("to_school_name") or "").strip()
    svc.apply(db, who, student_no=str(form.get("student_no") or ""), kind="transfer",
              first_day=_day(form.get("day"), "转出日期", now.date()), last_day=None, reason="转出", now=now,
              source="web", to_school_code=code or None, to_school_name=name[:64] or None)
    db.commit()
    return RedirectResponse("/leave?done=transfer", status_code=303)


@router.post("/leave/lesson")
async def lesson_absence(request: Request, who: Principal = Depends(_page(*svc.SCHOOLS)),
                         db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    try:
        lesson = int(str(form.get("lesson") or "0"))
    except ValueError:
        raise ApiError(422, "节次应为 1–12 (lesson must be 1–12)") from None
    body = svc.LessonBody.model_construct(student_no=str(form.get("student_no") or ""), lesson=lesson,
                                          subject=str(form.get("subject") or "")[:32], day=None)
    try:
        svc.lesson_absence(body, who, db, now)
    except LessonError as exc:
        raise ApiError(422, str(exc)) from None
    return RedirectResponse("/leave?done=lesson", status_code=303)


@router.post("/leave/not-home")
async def not_home(request: Request, who: Principal = Depends(_page(*svc.SCHOOLS)),
                   db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    parent = str(form.get("parent_name") or "").strip()
    if not parent:
        raise ApiError(422, "请填写报告家长姓名 (parent's name)")
    body = svc.NotHomeBody.model_construct(student_no=str(form.get("student_no") or ""), parent_name=parent[:32],
                                           parent_phone=(str(form.get("parent_phone") or "").strip()[:20] or None),
                                           note=str(form.get("note") or "")[:200], day=None)
    svc.not_home(body, who, db, now)
    return RedirectResponse("/leave?done=not_home", status_code=303)
