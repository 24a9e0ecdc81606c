"""Pages of the prevention work: the boarders' gate log (门卫登记) and the truancy tiers (旷课分级).

Head teacher: their class's boarders (away now, movements, alerts), the exit/return form, their
pupils' truancy tiers and the tier duties they owe. School office: the same for the whole school.
Township / county: the truancy tiers of their schools (names masked), read only.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.identity import mask_name
from machines.truancy import TruancyRules
from store.prevention import gate
from store.prevention import truancy
from documents.truancy_warning import KIND as WARNING
from store.access.accounts import Role
from store.models.documents import Document
from store.cases.context import CaseContext
from store.models import Pupil, SchoolClass, Staff
from store.prevention.common import PreventionError, complete_duty, duties

from web.deps import DbId
from web.auth import check_csrf
from web.deps import ApiError, Principal, get_db, get_now, roles
from web.shell import render

router = APIRouter(include_in_schema=False)
SCHOOLS = (Role.head_teacher, Role.school_staff)
READERS = (Role.head_teacher, Role.school_staff, Role.township, Role.county)


def _page(*allowed: Role):
    return roles(*allowed, api=False)


def _time(raw, field: str) -> datetime:
    try:
        return datetime.fromisoformat(str(raw))
    except (TypeError, ValueError):
        raise ApiError(422, f"{field}格式应为 2026-11-20T16:00 (bad time)") from None


def _head_teacher_name(db: Session, who: Principal) -> str:
    if who.user.staff_id:
        return db.scalar(select(Staff.name).where(Staff.id == who.user.staff_id)) or ""
    return ""


@router.get("/gate")
def gate_page(request: Request, done: str | None = None, who: Principal = Depends(_page(*SCHOOLS)),
              db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    week_ago = now - timedelta(days=7)
    return render(request, "gate.html", who,
                  away=gate.movements(db, scope=who.scope, away_only=True, as_of=now),
                  recent=list(reversed(gate.movements(db, scope=who.scope, start=week_ago, as_of=now))),
                  alerts=duties(db, scope=who.scope, as_of=now, source="gate"),
                  boarders=gate.boarders(db, scope=who.scope), approver=_head_teacher_name(db, who),
                  default_out=now.strftime("%Y-%m-%dT%H:%M"),
                  default_due=(now + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M"), done=done)


@router.post("/gate/out")
async def gate_out(request: Request, who: Principal = Depends(_page(*SCHOOLS)), db: Session = Depends(get_db),
                   now: datetime = Depends(get_now)):
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    try:
        gate.record_exit(db, CaseContext(db), str(form.get("student_no") or ""), at=_time(form.get("out_at"), "离校时间"),
                         due_back_at=_time(form.get("due_back_at"), "应返校时间"),
                         approved_by=str(form.get("approved_by") or ""),
                         approved_at=_time(form.get("approved_at"), "批准时间") if form.get("approved_at") else None,
                         fetched_by=str(form.get("fetched_by") or ""), relation=str(form.get("relation") or ""),
                         reason=str(form.get("reason") or ""), actor=who.actor, now=now, scope=who.scope)
    except PreventionError as exc:
        raise ApiError(422, str(exc)) from None
    db.commit()
    return RedirectResponse("/gate?done=out", status_code=303)


@router.post("/gate/in")
async def gate_in(request: Request, who: Principal = Depends(_page(*SCHOOLS)), db: Session = Depends(get_db),
                  now: datetime = Depends(get_now)):
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    try:
        gate.record_return(db, str(form.get("student_no") or ""),
                           at=_time(form.get("in_at"), "返校时间") if form.get("in_at") else now,
                           returned_with=str(form.get("returned_with") or ""), actor=who.actor, now=now, scope=who.scope)
    except PreventionError as exc:
        raise ApiError(422, str(exc)) from None
    db.commit()
    return RedirectResponse("/gate?done=in", status_code=303)


@router.post("/prevention/duties/{duty_id}/done")
async def duty_done(request: Request, duty_id: DbId, who: Principal = Depends(_page(*SCHOOLS)),
                    db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    try:
        duty = complete_duty(db, duty_id, actor=who.actor, note=str(form.get("note") or ""), now=now, scope=who.scope)
    except LookupError as exc:
        raise ApiError(404, str(exc)) from None
    except PreventionError as exc:
        raise ApiError(422, str(exc)) from None
    back = "/gate" if duty.source == "gate" else "/truancy"
    db.commit()
    return RedirectResponse(f"{back}?done=duty", status_code=303)


@router.get("/truancy")
def truancy_page(request: Request, pupil: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None, done: str | None = None,
                 who: Principal = Depends(_page(*READERS)), db: Session = Depends(get_db),
                 now: datetime = Depends(get_now)):
    year = TruancyRules().school_year(now.date())
    rows = truancy.pupil_tiers(db, scope=who.scope, school_year=year, masked=who.masked)
    detail = None
    if pupil is not None:
        q = who.scope.apply(select(Pupil, SchoolClass.name).join(SchoolClass, SchoolClass.id == Pupil.class_id)
                            .where(Pupil.id == pupil), school_col=Pupil.school_id, class_col=Pupil.class_id)
        found = db.execute(q).first()
        if found is None:
            raise ApiError(404, "学生不存在，或不在您的管辖范围内 (pupil not found)")
        p, klass = found
        rows_of = truancy.history(db, p.id, year)
        keys = {f"truancy:{r['tier_id']}:{WARNING}": r for r in rows_of}
        for key, doc_id in db.execute(select(Document.doc_key, Document.id).where(Document.doc_key.in_(keys))):
            keys[key]["document_id"] = doc_id
        detail = {"pupil": mask_name(p.name) if who.masked else p.name, "student_no": p.student_no, "class": klass,
                  "rows": rows_of}
    open_duties = duties(db, scope=who.scope, as_of=now, source="truancy", masked=who.masked) if who.role in SCHOOLS else []
    return render(request, "truancy.html", who, rows=rows, year=year, detail=detail, duties=open_duties,
                  may_act=who.role in SCHOOLS, done=done)
