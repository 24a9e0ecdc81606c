"""Reports as the people's work (issue 17 items 1–3): pages for the roles who do them.

- ``/submissions``: the period's 月报 / 学期报告 in the reader's scope with each version; the school
  (学校账号: 填表人/负责人), the township and the county edit 存在问题/下一步 on their own draft,
  then submit and sign (a submitted version is frozen; a correction is a new version).
- ``/weekly``: 周查表 of a day. A head teacher submits the count of each of their classes,
  pre-filled from the ledger; the school, township and county read the roll-up (and the XLSX).
- ``/spot-results``: the quarter's sampled classes; a township or county inspector records and signs
  the result of a class in scope; a discrepancy is a reconciliation item the office resolves.

Scoping: everyone reads within their scope; each writes only their own (school, township, county,
class). The API (web/api_reports.py) has the same operations.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from machines.vocabulary import (
    LEVEL_LABELS, REPORT_DUTY_KIND_LABELS, REPORT_KIND_LABELS, SPOT_RESULT_STATUS_LABELS, WEEKLY_COUNT_FIELDS,
)
from store.access.accounts import Role, school_ids_in
from store.models import Jurisdiction, School
from store.reporting import people
from store.reporting import reports as rp

from web.auth import check_csrf
from web.deps import OFFICES, PUPIL_READERS, ApiError, Principal, get_db, get_now
from web.shell import page, render

router = APIRouter(include_in_schema=False)
READERS = (Role.school_staff, Role.township, Role.county)
WRITER_LEVEL = {Role.school_staff: "school", Role.township: "township", Role.county: "county"}
WEEK_STATUS = {"submitted": "已报", "late": "逾期报送", "overdue": "未报（逾期）", "open": "待报", "not_due": "—"}


# -- shared with the API -------------------------------------------------------------------------------
def own_scope(db: Session, who: Principal) -> tuple[str, str]:
    """(level, code) of the one report this user signs: their school's, township's or the county's."""
    level = WRITER_LEVEL.get(who.role)
    if level == "school" and who.user.school_id:
        return level, db.get(School, who.user.school_id).code
    if level == "township" and who.user.township_id:
        return level, db.get(Jurisdiction, who.user.township_id).code
    if level == "county":
        return level, db.scalar(select(Jurisdiction.code).where(Jurisdiction.level == "county").order_by(Jurisdiction.id).limit(1))
    raise ApiError(403, "您的账号无权填报此报告 (your role does not sign a report)")


def parse_period(kind: str, period: str | None, now: datetime) -> str:
    if kind not in REPORT_KIND_LABELS:
        raise ApiError(422, f"未知的报告种类 {kind[:20]!r} (kind: monthly/term_start/term_end)")
    if kind == "monthly":
        from web.services import parse_month

        return parse_month(period or None, now.date())[2]
    if not period or not period.isdigit() or len(period) != 8:
        raise ApiError(422, "学期报告的期间为学期第一天，如 20260901 (term period expected as YYYYMMDD)")
    return period


def parse_day(day: str | None, now: datetime) -> date:
    if not day:
        return now.date()
    try:
        d = date.fromisoformat(day[:10])
    except ValueError:
        raise ApiError(422, f"日期格式应为 2026-11-23 (date expected): {day[:20]!r}") from None
    if not 2000 <= d.year <= 2100:  # 9999-12-31: the day after it overflows
        raise ApiError(422, f"日期超出范围（2000–2100 年）(date out of range): {day[:20]!r}")
    return d


def parse_quarter(quarter: str | None, now: datetime) -> str:
    q = (quarter or rp.quarter_of(now.date())).upper()
    try:
        rp.quarter_bounds(q)
    except (ValueError, IndexError):
        raise ApiError(422, f"季度格式应为 2026Q4 (quarter expected): {q[:12]!r}") from None
    if not q[-1] in "1234":
        raise ApiError(422, f"季度格式应为 2026Q4 (quarter expected): {q[:12]!r}")
    return q


def write_report(db: Session, who: Principal, now: datetime, data: dict[str, Any], *, submit: bool) -> dict:
    level, code = own_scope(db, who)
    kind = str(data.get("kind") or "monthly")
    period = parse_period(kind, str(data.get("period") or ""), now)
    text = {k: (str(data[k]) if data.get(k) is not None else None)
            for k in ("problems", "next_steps", "prepared_by", "approved_by")}
    try:
        policy = people.policy_for(db, level, code)
        if submit:
            v, created = people.submit(db, policy=policy, kind=kind, level=level, code=code, period=period, now=now,
                                       actor=who.actor, reason=str(data.get("reason") or "")[:255], **text)
        else:
            v, created = people.edit_draft(db, policy=policy, kind=kind, level=level, code=code, period=period, now=now,
                                           actor=who.actor, **text), True
    except people.ReportWorkError as exc:
        raise ApiError(422, str(exc)) from None
    out = people.version_dict(v) | {"created": created, "level": level, "code": code, "period": period, "kind": kind}
    db.commit()
    return out


def readable_reports(db: Session, who: Principal, kind: str, period: str, now: datetime) -> list[dict]:
    ids = None if who.role is Role.county else school_ids_in(db, who.scope)
    return people.report_rows(db, kind=kind, period=period, school_ids=ids, as_of=now)


def submit_count(db: Session, who: Principal, now: datetime, data: dict[str, Any]) -> dict:
    try:
        class_id = int(str(data.get("class_id") or ""))
    except ValueError:
        raise ApiError(422, "请指定班级 (class_id)") from None
    if who.scope.class_ids is None or class_id not in who.scope.class_ids:
        raise ApiError(404, "班级不存在，或不是您任班主任的班级 (class not found)")
    day = parse_day(str(data.get("day") or ""), now)
    counts = {k: data[k] for k in WEEKLY_COUNT_FIELDS if data.get(k) not in (None, "")}
    try:
        row, created = people.submit_weekly(db, class_id=class_id, day=day, counts=counts, now=now, actor=who.actor,
                                            note=str(data.get("note") or ""))
    except people.ReportWorkError as exc:
        raise ApiError(422, str(exc)) from None
    out = {"id": row.id, "class_id": class_id, "day": day.isoformat(), "version": row.version, "late": row.late,
           "created": created, **{k: getattr(row, k) for k in WEEKLY_COUNT_FIELDS}}
    db.commit()
    return out


def weekly_for(db: Session, who: Principal, day: date, now: datetime) -> dict:
    if who.role is Role.head_teacher:
        return people.weekly_sheet(db, day=day, class_ids=sorted(who.scope.class_ids or ()), as_of=now)
    return people.weekly_sheet(db, day=day, school_ids=None if who.role is Role.county else school_ids_in(db, who.scope),
                               as_of=now)


def record_result(db: Session, who: Principal, now: datetime, data: dict[str, Any]) -> dict:
    quarter = parse_quarter(str(data.get("quarter") or ""), now)
    try:
        class_id = int(str(data.get("class_id") or ""))
    except ValueError:
        raise ApiError(422, "请指定班级 (class_id)") from None
    ids = set(school_ids_in(db, who.scope))
    from store.models import SchoolClass

    klass = db.get(SchoolClass, class_id) if 0 < class_id < 2**31 else None
    if klass is None or klass.school_id not in ids:
        raise ApiError(404, "班级不存在，或不在您的管辖范围内 (class not found)")
    try:
        r, created = people.record_spot_result(
            db, quarter=quarter, class_id=class_id, now=now, actor=who.actor,
            counts={k: data.get(k) for k in people.SPOT_FIELDS}, findings=str(data.get("findings") or ""),
            inspector=str(data.get("inspector") or who.user.display_name or ""), inspector_role=who.role.value)
    except people.ReportWorkError as exc:
        raise ApiError(422, str(exc)) from None
    out = {"id": r.id, "quarter": quarter, "class_id": class_id, "status": r.status, "created": created,
           "differences": r.differences}
    db.commit()
    return out


def resolve_result(db: Session, who: Principal, now: datetime, result_id: int, explanation: str) -> dict:
    try:
        r = people.resolve_spot_result(db, result_id, by=who.actor, at=now, explanation=explanation,
                                       school_ids=school_ids_in(db, who.scope))
    except LookupError:
        raise ApiError(404, "季查记录不存在，或不在您的管辖范围内 (result not found)") from None
    except people.ReportWorkError as exc:
        raise ApiError(422, str(exc)) from None
    out = {"id": r.id, "status": r.status, "resolved_by": r.resolved_by, "explanation": r.explanation}
    db.commit()
    return out


# -- pages ----------------------------------------------------------------------------------------------
@router.get("/submissions")
def submissions_page(request: Request, kind: str = "monthly", period: str | None = None,
                     who: Principal = Depends(page(*READERS)), db: Session = Depends(get_db),
                     now: datetime = Depends(get_now)):
    period = parse_period(kind, period, now)
    rows = readable_reports(db, who, kind, period, now)
    mine = own_scope(db, who)
    return render(request, "submissions.html", who, rows=rows, kind=kind, period=period, mine=mine,
                  kind_labels=REPORT_KIND_LABELS, duty_kind_labels=REPORT_DUTY_KIND_LABELS, level_labels=LEVEL_LABELS)


@router.post("/submissions")
async def submissions_post(request: Request, who: Principal = Depends(page(*READERS)), db: Session = Depends(get_db),
                           now: datetime = Depends(get_now)):
    form = await request.form()
    return await run_in_threadpool(_submissions_post, who, db, now, form)


def _submissions_post(who: Principal, db: Session, now: datetime, form) -> RedirectResponse:
    check_csrf(who, form.get("csrf"))
    data = {k: form.get(k) for k in ("kind", "period", "problems", "next_steps", "prepared_by", "approved_by", "reason")}
    out = write_report(db, who, now, data, submit=form.get("action") == "submit")
    return RedirectResponse(f"/submissions?kind={out['kind']}&period={out['period']}", status_code=303)


@router.get("/weekly")
def weekly_page(request: Request, day: str | None = None, who: Principal = Depends(page(*PUPIL_READERS)),
                db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    d = parse_day(day, now)
    sheet = weekly_for(db, who, d, now)
    prev = d - timedelta(days=7)
    return render(request, "weekly.html", who, sheet=sheet, day=d.isoformat(), prev=prev.isoformat(),
                  fields=WEEKLY_COUNT_FIELDS, status_labels=WEEK_STATUS, may_submit=who.role is Role.head_teacher)


@router.get("/weekly.xlsx")
def weekly_xlsx(day: str | None = None, who: Principal = Depends(page(*PUPIL_READERS)), db: Session = Depends(get_db),
                now: datetime = Depends(get_now)):
    d = parse_day(day, now)
    body = people.weekly_xlsx(weekly_for(db, who, d, now))
    return Response(body, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"content-disposition": f'attachment; filename="weekly-{d.isoformat()}.xlsx"'})


@router.post("/weekly")
async def weekly_post(request: Request, who: Principal = Depends(page(Role.head_teacher)), db: Session = Depends(get_db),
                      now: datetime = Depends(get_now)):
    form = await request.form()
    return await run_in_threadpool(_weekly_post, who, db, now, form)


def _weekly_post(who: Principal, db: Session, now: datetime, form) -> RedirectResponse:
    check_csrf(who, form.get("csrf"))
    out = submit_count(db, who, now, {k: form.get(k) for k in ("class_id", "day", "note", *WEEKLY_COUNT_FIELDS)})
    return RedirectResponse(f"/weekly?day={out['day']}", status_code=303)


@router.get("/spot-results")
def spot_results_page(request: Request, quarter: str | None = None, who: Principal = Depends(page(*READERS)),
                      db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    q = parse_quarter(quarter, now)
    rows = people.spot_results(db, quarter=q, school_ids=None if who.role is Role.county else school_ids_in(db, who.scope))
    return render(request, "spot_results.html", who, rows=rows, quarter=q, fields=people.SPOT_FIELDS,
                  status_labels=SPOT_RESULT_STATUS_LABELS, may_record=who.role in OFFICES)


@router.post("/spot-results")
async def spot_results_post(request: Request, who: Principal = Depends(page(*OFFICES)), db: Session = Depends(get_db),
                            now: datetime = Depends(get_now)):
    form = await request.form()
    return await run_in_threadpool(_spot_post, who, db, now, form)


def _spot_post(who: Principal, db: Session, now: datetime, form) -> RedirectResponse:
    check_csrf(who, form.get("csrf"))
    if form.get("result_id"):
        try:
            result_id = int(str(form.get("result_id")))
        except ValueError:
            raise ApiError(404, "季查记录不存在 (result not found)") from None
        resolve_result(db, who, now, result_id, str(form.get("explanation") or ""))
        quarter = parse_quarter(str(form.get("quarter") or ""), now)
    else:
        quarter = record_result(db, who, now, {k: form.get(k) for k in ("quarter", "class_id", "findings", "inspector",
                                                                        *people.SPOT_FIELDS)})["quarter"]
    return RedirectResponse(f"/spot-results?quarter={quarter}", status_code=303)
