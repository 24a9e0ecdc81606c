"""Oversight pages: the at-risk watch list (/risk) and the reconciliation of submitted monthly
figures with the ledger (/reconcile, with the school's submission form and the office's accept).

Scoping: the watch list follows the reader's scope (head teacher: own classes; school; township;
county, names masked); reconciliation is read by the school (its own), the township (its schools)
and the county; only township and county accept, and only in their scope; only a school submits,
and only its own figures.
"""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from store.reporting import reconcile as rc
from store.prevention import risk
from store.access.accounts import Role, school_ids_in
from store.models import School

from web.deps import DbId
from web.services import parse_month
from web.auth import check_csrf
from web.deps import OFFICES, PUPIL_READERS, ApiError, Principal, get_db, get_now
from web.shell import page, render

router = APIRouter(include_in_schema=False)
READERS = (Role.school_staff, Role.township, Role.county)
NOT_FOUND = "上报记录不存在，或不在您的管辖范围内 (submission not found)"


def _month(month: str | None, now: datetime) -> str:
    """The month asked for ("2026-11"), this month if none; a month that does not exist ("2026-13") is a 422."""
    return parse_month(month or None, now.date())[2]


# GET /risk: web/pages_queues.py (paged, issue 18)


@router.post("/risk/duties/{duty_id}/done")
async def risk_duty_done(request: Request, duty_id: DbId, who: Principal = Depends(page(Role.head_teacher, Role.school_staff)),
                         db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    return await run_in_threadpool(_duty_done, who, db, now, duty_id, form)


def _duty_done(who: Principal, db: Session, now: datetime, duty_id: int, form) -> RedirectResponse:
    check_csrf(who, form.get("csrf"))
    if not risk.duty_in_scope(db, duty_id, who.scope):
        raise ApiError(404, "帮扶任务不存在，或不在您的管辖范围内 (duty not found)")
    risk.complete_duty(db, duty_id, actor=who.actor, at=now, note=str(form.get("note") or "").strip()[:400])
    db.commit()
    return RedirectResponse("/risk", status_code=303)


def _rows(db: Session, who: Principal, month: str) -> list[dict]:
    """Stored comparisons of the month in the reader's scope, schools that did not submit as missing."""
    ids = school_ids_in(db, who.scope)
    rows = {r["school_code"]: r for r in rc.reconciliation_rows(db, period=month, school_ids=ids)}
    out = []
    for sid, code, name in db.execute(select(School.id, School.code, School.name).where(School.id.in_(ids or [-1]))
                                      .order_by(School.code)):
        out.append(rows.get(code) or {"school_code": code, "school": name, "status": "missing", "submission_id": None,
                                      "submitted": None, "differences": [], "hides_open_cases": False,
                                      "explanation": None, "accepted_by": None})
    return out


def figures_context(db: Session, who: Principal, month: str) -> dict:
    """For the monthly figures page: the month's submissions in scope that differ from the ledger."""
    return {"reconciliation": [r for r in _rows(db, who, month) if r["differences"]], "reconcile_month": month}


@router.get("/reconcile")
def reconcile_page(request: Request, month: str | None = None, who: Principal = Depends(page(*READERS)),
                   db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    month = _month(month, now)
    return render(request, "reconcile.html", who, rows=_rows(db, who, month), month=month, fields=rc.FIELDS,
                  may_accept=who.role in OFFICES, may_submit=who.role is Role.school_staff)


@router.post("/reconcile/submit")
async def reconcile_submit(request: Request, who: Principal = Depends(page(Role.school_staff)),
                           db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    return await run_in_threadpool(_submit, who, db, now, form)


def _submit(who: Principal, db: Session, now: datetime, form) -> RedirectResponse:
    check_csrf(who, form.get("csrf"))
    month = _month(str(form.get("month") or ""), now)
    school = db.get(School, who.user.school_id)
    figures = {k: str(form.get(k)).strip() for k in rc.FIELDS if str(form.get(k) or "").strip()}
    try:
        rc.submit_figures(db, school_code=school.code, period=month, figures=figures, by=who.actor, at=now)
        rc.reconcile_period(db, period=month, as_of=now, school_ids=[school.id])
    except rc.ReconcileError as exc:
        raise ApiError(422, str(exc)) from None
    db.commit()
    return RedirectResponse(f"/reconcile?month={month}", status_code=303)


@router.post("/reconcile/accept")
async def reconcile_accept(request: Request, who: Principal = Depends(page(*OFFICES)),
                           db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    form = await request.form()
    return await run_in_threadpool(_accept, who, db, now, form)


def _accept(who: Principal, db: Session, now: datetime, form) -> RedirectResponse:
    check_csrf(who, form.get("csrf"))
    try:
        submission_id = int(str(form.get("submission_id") or ""))
    except ValueError:
        raise ApiError(404, NOT_FOUND) from None
    if not 1 <= submission_id < 2**31:  # no such row, and past what the databases' integers hold
        raise ApiError(404, NOT_FOUND)
    try:
        sub = rc.accept_submission(db, submission_id, by=who.actor, at=now, explanation=str(form.get("explanation") or ""),
                                   school_ids=school_ids_in(db, who.scope))
    except LookupError:
        raise ApiError(404, NOT_FOUND) from None
    except rc.ReconcileError as exc:
        db.commit()  # the fresh comparison stays recorded; the acceptance does not happen
        raise ApiError(422, str(exc)) from None
    month = sub.period
    db.commit()
    return RedirectResponse(f"/reconcile?month={month}", status_code=303)
