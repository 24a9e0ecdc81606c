"""Census (排查) and hand-off receipt (送达回证) pages.

/census     the latest register's matching (rows needing attention) and the 失学 cases with their
            persuasion duties; township and county upload a register; school, township and county
            record persuasion, an approved deferral/exemption or a mistaken case.
/handoffs   papers handed to outside bodies and not yet received; record who received one and when.

Scoping: a school sees its own census children and hand-offs, a township its schools', the
county all of them (names masked as on its other lists). A head teacher's scope is a class and a
census child has none: the census is the school office's work. No village accounts exist; the
village committee's receipt is recorded by the school or the township from the signed 回证.
"""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from machines.census import CensusForbidden
from store.prevention import census
from store.duties import handoffs
from store.access.accounts import Role
from store.ingest.tabular import TableError

from web.deps import DbId
from web.services import read_upload
from web.auth import check_csrf
from web.deps import OFFICES, ApiError, Principal, get_db, get_now, settings_of
from web.shell import page, render

router = APIRouter(include_in_schema=False)
READERS = (Role.school_staff, Role.township, Role.county)
CENSUS_EVENTS = {"record_persuasion": "记录劝返动员", "exempt": "已批准缓/免入学", "dismiss": "排除（误报/已迁出）"}


@router.get("/census")
def census_page(request: Request, who: Principal = Depends(page(*READERS)), db: Session = Depends(get_db),
                now: datetime = Depends(get_now)):
    data = census.report(db, who.scope, masked=who.masked, as_of=now)
    return render(request, "census.html", who, data=data, outcomes=census.OUTCOMES, events=CENSUS_EVENTS,
                  may_upload=who.role in OFFICES, result=None)


@router.post("/census/upload")
async def census_upload(request: Request, who: Principal = Depends(page(*OFFICES)), db: Session = Depends(get_db),
                        now: datetime = Depends(get_now)):
    form = await request.form()
    return await run_in_threadpool(_upload, request, who, db, now, form)


def _upload(request: Request, who: Principal, db: Session, now: datetime, form):
    from documents.census import census_step

    check_csrf(who, form.get("csrf"))
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise ApiError(422, "请选择要上传的排查名单文件 (choose a file)")
    data = read_upload(upload, settings_of(request))
    try:
        r = census.import_census(db, data, upload.filename, actor=who.actor, now=now, source=str(form.get("source") or ""),
                                 scope=who.scope)
    except TableError as exc:
        raise ApiError(422, str(exc)) from None
    db.commit()
    result = {"duplicate": r.duplicate, "summary": r.summary, "filename": upload.filename, "run_url": None,
              "refused": r.summary.get("refused", [])}  # rows of villages outside the office's scope
    # the census step: one run of the census-import deployment per import (a worker), else here
    started = request.app.state.deployments.start(
        "census_import/census-import", {"import_id": r.import_id, "as_of": now.isoformat()},
        idempotency_key=f"census-import-{r.import_id}")
    if started is not None:
        result.update(opened=None, run_url=started.url)
    else:
        step = census_step(db, r.import_id, actor=who.actor, now=now)
        db.commit()
        result.update(opened=len(step["opened"]), closed=len(step["closed"]), documents=len(step["documents"]),
                      handoffs=len(step["handoffs"]))
    data = census.report(db, who.scope, import_id=r.import_id, masked=who.masked, as_of=now)
    return render(request, "census.html", who, data=data, outcomes=census.OUTCOMES, events=CENSUS_EVENTS,
                  may_upload=True, result=result)


@router.post("/census/{census_case_id}/act")
async def census_act(census_case_id: DbId, request: Request, who: Principal = Depends(page(*READERS)),
                     db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    event = str(form.get("event") or "")
    if event not in CENSUS_EVENTS:
        raise ApiError(422, "请选择操作 (choose an action)")
    reason = str(form.get("reason") or "").strip()
    if not reason:
        raise ApiError(422, "请填写情况说明 (reason is required)")
    try:
        census.act(db, census_case_id, event, actor=who.actor, reason=reason, now=now,
                   action=str(form.get("action") or "") or None, scope=who.scope)
    except census.CensusCaseNotFound:
        raise ApiError(404, "失学案件不存在，或不在您的管辖范围内 (census case not found)") from None
    except CensusForbidden as exc:
        raise ApiError(409, str(exc)) from None
    db.commit()
    return RedirectResponse("/census", status_code=303)


@router.get("/handoffs")
def handoffs_page(request: Request, all: int = 0, who: Principal = Depends(page(*READERS)),
                  db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    rows = handoffs.handoff_rows(db, who.scope, as_of=now, pending_only=not all, masked=who.masked)
    return render(request, "handoffs.html", who, rows=rows, show_all=bool(all))


@router.post("/handoffs/{handoff_id}/ack")
async def handoff_ack(handoff_id: DbId, request: Request, who: Principal = Depends(page(*READERS)),
                      db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    raw = str(form.get("received_at") or "").strip()
    try:
        received_at = datetime.fromisoformat(raw) if raw else now
    except ValueError:
        raise ApiError(422, "签收时间格式应为 2026-11-23T09:30 (date and time expected)") from None
    try:
        handoffs.acknowledge(db, handoff_id, received_by=str(form.get("received_by") or ""), received_at=received_at,
                             actor=who.actor, now=now, note=str(form.get("note") or "") or None, scope=who.scope)
    except handoffs.HandoffError as exc:
        raise ApiError(404 if "不存在" in str(exc) else 422, str(exc)) from None
    db.commit()
    return RedirectResponse("/handoffs", status_code=303)
