"""Accountability pages and API (issue 17 items 4 and 7): 约谈 records (/interviews), the year's
评优一票否决 list (/veto), the township ranking (/ranking), the yearly 责任书 (/pledges) and each pupil's
包保 chain on the case page (POST /cases/{id}/chain). The evidence itself is /accountability (web/pages.py),
reading the same model as the sheet and the API (store.reporting.accountability).

Who does what: township and county officials record talks and their outcome, in their scope; the school
office, townships and county read talks about their schools; the school office records a 责任书 as signed
(its own school), the county any; the school office, townships and county assign a chain member of a pupil
whose case they may read.
"""
from __future__ import annotations

import json
from datetime import date, datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from store.access.accounts import Role
from store.accountability import chain as ch
from store.accountability import pledges as pl
from store.accountability import talks as tk
from store.models import Pupil
from store.reporting import accountability as acc
from store.reporting.reports import month_period

from web.auth import check_csrf
from web.deps import OFFICES, ApiError, DbId, Principal, get_db, get_now, roles, settings_of
from web.services import _archive_path, media_type_of, parse_month, readable_case
from web.shell import page, render

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["责任追究 accountability"])
READERS = (Role.school_staff, Role.township, Role.county)
CHAIN_EDITORS = (Role.school_staff, Role.township, Role.county)
TALK_NOT_FOUND = "约谈记录不存在，或不在您的管辖范围内 (talk not found)"


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, (date, datetime)) else str(v)))


def _level(who: Principal) -> str:
    return "county" if who.role is Role.county else "township"


def _year(year: int | None, now: datetime) -> int:
    return year or now.year


# -- 约谈 ------------------------------------------------------------------------------------------
def _form(data: dict) -> tk.TalkForm:
    def lines(v) -> list[str]:
        if isinstance(v, list):
            return [str(x) for x in v]
        return [x for x in str(v or "").replace("\r", "").split("\n") if x.strip()]
    body = {k: v for k, v in data.items() if k not in ("csrf",) and v not in (None, "")}
    body["items"], body["evidence"] = lines(data.get("items")), lines(data.get("evidence"))
    if "interviewee_staff_id" in body:
        body["interviewee_staff_id"] = int(body["interviewee_staff_id"]) if str(body["interviewee_staff_id"]).isdigit() else -1
    try:
        return tk.TalkForm(**body)
    except ValidationError as exc:
        raise ApiError(422, "约谈记录填写有误 (invalid talk)", [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]) from None


def _record(db: Session, who: Principal, now: datetime, data: dict):
    form = _form(data)
    try:
        talk, created = tk.record_talk(db, form, level=_level(who), interviewer=who.user.display_name,
                                       interviewer_id=who.user.staff_id, actor=who.actor, now=now, scope=who.scope)
    except tk.TalkError as exc:
        raise ApiError(422, str(exc)) from None
    db.commit()
    return talk, created


def _outcome(db: Session, who: Principal, now: datetime, talk_id: int, rectified: bool, outcome: str):
    try:
        talk = tk.record_outcome(db, talk_id, rectified=rectified, outcome=outcome, actor=who.actor, now=now, scope=who.scope)
    except tk.TalkError as exc:
        raise ApiError(404 if "不存在" in str(exc) else 422, str(exc)) from None
    db.commit()
    return talk


@router.get("/interviews")
def interviews_page(request: Request, who: Principal = Depends(page(*READERS)), db: Session = Depends(get_db),
                    now: datetime = Depends(get_now)):
    return render(request, "interviews.html", who, talks=tk.talks(db, who.scope), may_record=who.role in OFFICES,
                  today=now.date())


@router.post("/interviews")
async def interviews_post(request: Request, who: Principal = Depends(page(*OFFICES)), db: Session = Depends(get_db),
                          now: datetime = Depends(get_now)):
    form = dict(await request.form())
    check_csrf(who, form.get("csrf"))
    talk, _ = await run_in_threadpool(_record, db, who, now, {k: str(v) for k, v in form.items()})
    return RedirectResponse(f"/interviews/{talk.id}", status_code=303)


@router.get("/interviews/{talk_id}")
def interview_page(request: Request, talk_id: DbId, who: Principal = Depends(page(*READERS)),
                   db: Session = Depends(get_db)):
    talk = tk.talk_detail(db, talk_id, who.scope)
    if talk is None:
        raise ApiError(404, TALK_NOT_FOUND)
    return render(request, "interview.html", who, talk=talk, may_record=who.role in OFFICES)


@router.post("/interviews/{talk_id}/outcome")
async def interview_outcome_post(request: Request, talk_id: DbId, who: Principal = Depends(page(*OFFICES)),
                                 db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    await run_in_threadpool(_outcome, db, who, now, talk_id, form.get("rectified") == "1", str(form.get("outcome") or ""))
    return RedirectResponse(f"/interviews/{talk_id}", status_code=303)


class OutcomeBody(BaseModel):
    rectified: bool
    outcome: str = Field(min_length=1, max_length=2000)


@api_router.get("/interviews", summary="约谈记录（管辖范围内）")
def api_interviews(who: Principal = Depends(roles(*READERS)), db: Session = Depends(get_db)):
    return _jsonable(tk.talks(db, who.scope))


@api_router.post("/interviews", summary="记录一次约谈：对象、事由、整改事项和期限（整改跟踪为一项职责）")
def api_interview_post(body: tk.TalkForm, who: Principal = Depends(roles(*OFFICES)), db: Session = Depends(get_db),
                       now: datetime = Depends(get_now)):
    talk, created = _record(db, who, now, body.model_dump())
    return {"id": talk.id, "created": created, **_jsonable(tk.talk_detail(db, talk.id))}


@api_router.get("/interviews/{talk_id}", summary="一次约谈及其整改结果")
def api_interview(talk_id: DbId, who: Principal = Depends(roles(*READERS)), db: Session = Depends(get_db)):
    talk = tk.talk_detail(db, talk_id, who.scope)
    if talk is None:
        raise ApiError(404, TALK_NOT_FOUND)
    return _jsonable(talk)


@api_router.post("/interviews/{talk_id}/outcome", summary="记录整改结果（完成整改跟踪职责）")
def api_interview_outcome(talk_id: DbId, body: OutcomeBody, who: Principal = Depends(roles(*OFFICES)),
                          db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    _outcome(db, who, now, talk_id, body.rectified, body.outcome)
    return _jsonable(tk.talk_detail(db, talk_id))


# -- 评优一票否决, ranking ----------------------------------------------------------------------------
@router.get("/veto")
def veto_page(request: Request, year: int | None = Query(None, ge=2000, le=2100), who: Principal = Depends(page(*READERS)),
              db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    return render(request, "veto.html", who, data=acc.veto_list(db, _year(year, now), now, who.scope))


@api_router.get("/veto", summary="当年评优一票否决名单（辍学率超过标准或隐瞒辍学的学校、班级）")
def api_veto(year: int | None = Query(None, ge=2000, le=2100), who: Principal = Depends(roles(*READERS)),
             db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    return _jsonable(acc.veto_list(db, _year(year, now), now, who.scope))


def _ranking(db: Session, who: Principal, month: str | None, now: datetime):
    _, _, label = parse_month(month, now.date())
    return acc.township_ranking(db, month_period(*(int(x) for x in label.split("-"))), now, who.scope)


@router.get("/ranking")
def ranking_page(request: Request, month: str | None = None, who: Principal = Depends(page(*OFFICES)),
                 db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    return render(request, "ranking.html", who, data=_ranking(db, who, month, now))


@api_router.get("/ranking", summary="乡镇排名：辍学率与职责按时完成情况（策略要求排名时）")
def api_ranking(month: str | None = Query(None, description="2026-11；默认本月"), who: Principal = Depends(roles(*OFFICES)),
                db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    return _jsonable(_ranking(db, who, month, now))


# -- 责任书 ---------------------------------------------------------------------------------------
def _signed(db: Session, who: Principal, now: datetime, pledge_id: int):
    if who.role is Role.township:
        raise ApiError(403, "责任书由学校或县教育局登记签订 (the school or the county records a signature)")
    try:
        pledge = pl.record_signed(db, pledge_id, actor=who.actor, at=now, scope=who.scope)
    except pl.PledgeError as exc:
        raise ApiError(404, str(exc)) from None
    db.commit()
    return pledge


@router.get("/pledges")
def pledges_page(request: Request, year: int | None = Query(None, ge=2000, le=2100), who: Principal = Depends(page(*READERS)),
                 db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    year = year or pl.school_year(now.date())
    return render(request, "pledges.html", who, pledges=pl.pledges(db, who.scope, year=year), year=year,
                  may_sign=who.role in (Role.school_staff, Role.county))


@router.post("/pledges/{pledge_id}/signed")
async def pledge_signed_post(request: Request, pledge_id: DbId, who: Principal = Depends(page(*READERS)),
                             db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    pledge = await run_in_threadpool(_signed, db, who, now, pledge_id)
    return RedirectResponse(f"/pledges?year={pledge.year}", status_code=303)


@router.get("/pledges/{pledge_id}.pdf")
def pledge_file(request: Request, pledge_id: DbId, who: Principal = Depends(page(*READERS)), db: Session = Depends(get_db)):
    pledge = pl.pledge_in_scope(db, pledge_id, who.scope)
    if pledge is None or "pdf" not in (pledge.files or {}):
        raise ApiError(404, "责任书不存在或尚未生成 (pledge not found or not rendered)")
    path = _archive_path(settings_of(request), pledge.files["pdf"])
    return FileResponse(path, media_type=media_type_of(path.name), filename=f"pledge-{pledge.year}-{pledge.id}.pdf")


@api_router.get("/pledges", summary="控辍保学责任书及签订情况")
def api_pledges(year: int | None = Query(None, ge=2000, le=2100), who: Principal = Depends(roles(*READERS)),
                db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    return _jsonable(pl.pledges(db, who.scope, year=year or pl.school_year(now.date())))


@api_router.post("/pledges/{pledge_id}/signed", summary="登记责任书已签订（完成签订职责）")
def api_pledge_signed(pledge_id: DbId, who: Principal = Depends(roles(*READERS)), db: Session = Depends(get_db),
                      now: datetime = Depends(get_now)):
    pledge = _signed(db, who, now, pledge_id)
    return {"id": pledge.id, "signed_at": pledge.signed_at.isoformat(), "signed_recorded_by": pledge.signed_recorded_by}


# -- 包保 chain ------------------------------------------------------------------------------------
def _set_chain(db: Session, who: Principal, now: datetime, case_id: int, role: str, person: str, staff_id: int | None):
    case = readable_case(db, who, case_id)
    pupil = db.get(Pupil, case.pupil_id)
    try:
        ch.set_member(db, pupil=pupil, role=role, person_name=person, staff_id=staff_id, source="page", actor=who.actor,
                      now=now)
    except ch.ChainError as exc:
        raise ApiError(422, str(exc)) from None
    db.commit()
    return ch.chain_of(db, pupil.id)


@router.post("/cases/{case_id}/chain")
async def chain_post(request: Request, case_id: DbId, who: Principal = Depends(page(*CHAIN_EDITORS)),
                     db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    await run_in_threadpool(_set_chain, db, who, now, case_id, str(form.get("role") or ""),
                            str(form.get("person") or ""), None)
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


class ChainBody(BaseModel):
    role: str = Field(min_length=1, max_length=32)
    person: str = Field(min_length=1, max_length=32)
    staff_id: int | None = Field(None, ge=1)


@api_router.get("/cases/{case_id}/chain", summary="学生的包保责任链")
def api_chain(case_id: DbId, who: Principal = Depends(roles(Role.head_teacher, *READERS)), db: Session = Depends(get_db)):
    case = readable_case(db, who, case_id)
    return _jsonable(ch.chain_of(db, case.pupil_id))


@api_router.post("/cases/{case_id}/chain", summary="指定包保责任人（该角色的职责随之归属此人）")
def api_chain_post(case_id: DbId, body: ChainBody, who: Principal = Depends(roles(*CHAIN_EDITORS)),
                   db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    return _jsonable(_set_chain(db, who, now, case_id, body.role, body.person, body.staff_id))


__all__ = ["router", "api_router"]
