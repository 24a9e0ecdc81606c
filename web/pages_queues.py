"""The work queues (issue 18 item 3): 逾期督办 (/stuck), 案件 (/cases) and 重点关注 (/risk), each with
filters, sorting, paging done by the database (store.reporting.work_queues) and an XLSX export of
what the filters show; and the page of one watch entry (/risk/entries/{id}), where the stuck list's
watch-list rows lead.

Query parameters are untrusted: each page reads them through a pydantic model with bounds (an
unknown kind, a page past the end of the bounds, a school id past the databases' integers: 422).
A school sees only its own (the reader's scope goes into every query).
"""
from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from machines.states import LADDER, CaseState
from machines.vocabulary import WATCH_EVENT_LABELS
from store.access.accounts import Role
from store.reporting import dashboards as dash
from store.reporting import work_queues as wq

from web.deps import PUPIL_READERS, ApiError, DbId, Principal, get_db, get_now
from web.downloads import xlsx_response
from web.services import own_duties
from web.shell import page, render

router = APIRouter(include_in_schema=False)
MAX_ID = 2**31 - 1
EXPORT_ROWS = 5000  # an export carries the filtered list up to this many rows (the sheet says when it stops)
PER_PAGE = (20, 50, 100)


class _Params(BaseModel):
    """Common: an empty form field ("全部") is no filter."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("per", check_fields=False)
    @classmethod
    def _per_page(cls, v: int) -> int:
        if v not in PER_PAGE:
            raise ValueError("每页条数只能是 20、50 或 100")
        return v


class StuckParams(_Params):
    kind: Literal["case", "census", "watch", "prevention", "all"] = "case"
    school: int | None = Field(None, ge=1, le=MAX_ID)
    owner: int | None = Field(None, ge=0, le=MAX_ID)  # 0: no owner named
    step: str | None = Field(None, max_length=32, pattern=r"^[a-z0-9_]+$")
    sort: Literal["overdue", "owner", "school", "kind"] = "overdue"
    page: int = Field(1, ge=1, le=1000)
    per: int = Field(50, ge=20, le=100, multiple_of=10)


class CaseParams(_Params):
    q: str | None = Field(None, max_length=40)
    state: Literal[tuple(s.value for s in CaseState)] | None = None  # type: ignore[valid-type]
    all: int = Field(0, ge=0, le=1)
    school: int | None = Field(None, ge=1, le=MAX_ID)
    sort: Literal["opened", "due", "school", "id"] = "opened"
    page: int = Field(1, ge=1, le=1000)
    per: int = Field(50, ge=20, le=100, multiple_of=10)


class WatchParams(_Params):
    q: str | None = Field(None, max_length=40)
    school: int | None = Field(None, ge=1, le=MAX_ID)
    overdue: int = Field(0, ge=0, le=1)
    month: str | None = None
    page: int = Field(1, ge=1, le=1000)
    per: int = Field(50, ge=20, le=100, multiple_of=10)

    @field_validator("month")
    @classmethod
    def _a_month(cls, v: str | None) -> str | None:
        """"2026-11" (a month that exists); anything else is the month pages' one 422 message."""
        if v is None:
            return v
        try:
            y, m = (int(x) for x in v.split("-")) if re.fullmatch(r"\d{4}-\d{1,2}", v) else (0, 0)
            date(y, m, 1)
        except ValueError:
            raise ValueError(f"月份格式应为 2026-11，收到「{v[:20]}」(month must look like 2026-11)") from None
        return v


def _link(params: BaseModel, path: str):
    """``link(page=2)``: this page's URL with some parameters changed (defaults left out)."""
    current = params.model_dump(exclude_defaults=True, exclude_none=True)

    def link(**changes: Any) -> str:
        merged = {k: v for k, v in (current | changes).items() if v is not None and v != ""}
        if "page" in merged and merged["page"] == 1:
            merged.pop("page")
        return path + ("?" + urlencode(merged) if merged else "")
    return link


def _schools(db: Session, who: Principal) -> list[dict[str, Any]]:
    return [] if who.role is Role.head_teacher else dash.schools_in(db, who.scope)


# -- 逾期督办 -----------------------------------------------------------------------------------------------
def _stuck(db: Session, who: Principal, now: datetime, p: StuckParams, paging: wq.Paging,
           tabs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    kind = None if p.kind == "all" else p.kind
    return wq.stuck_queue(db, who.scope, now, kind=kind, school_id=p.school, owner_id=p.owner, step=p.step, sort=p.sort,
                          paging=paging, masked=who.masked, tabs=tabs)


@router.get("/stuck")
def stuck(request: Request, p: Annotated[StuckParams, Query()], who: Principal = Depends(page(*PUPIL_READERS)),
          db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    tabs = wq.stuck_tabs(db, who.scope, now, school_id=p.school, owner_id=p.owner)
    data = _stuck(db, who, now, p, wq.Paging(p.page, p.per), tabs)
    kind = None if p.kind == "all" else p.kind
    steps = [(s.value, s.label) for s in LADDER] if p.kind == "case" else []
    return render(request, "stuck.html", who, data=data, p=p, link=_link(p, "/stuck"), mine=own_duties(db, who, now),
                  export=_link(p, "/stuck.xlsx")(page=None, per=None), tabs=tabs,
                  schools=_schools(db, who), owners=wq.stuck_owners(db, who.scope, now, kind=kind, school_id=p.school),
                  steps=steps, per_choices=PER_PAGE)


@router.get("/stuck.xlsx")
def stuck_xlsx(p: Annotated[StuckParams, Query()], who: Principal = Depends(page(*PUPIL_READERS)),
               db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    kind = None if p.kind == "all" else p.kind
    filters = dict(kind=kind, school_id=p.school, owner_id=p.owner, step=p.step)
    # in due order the export reads one row past its limit to know whether it stopped short; a regrouped list
    # (by owner, school, kind) is its COUNT_CAP longest overdue, and the bounded counts say whether there are more
    more = None if wq.in_due_order(p.sort, kind) else wq.stuck_more(db, who.scope, now, **filters)
    items = wq.stuck_rows(db, who.scope, now, **filters, sort=p.sort, paging=wq.Paging(1, EXPORT_ROWS + 1),
                          masked=who.masked)
    label = "全部类别" if p.kind == "all" else wq.kind_label(p.kind)
    return xlsx_response(f"逾期督办（{label}）", who.place or "", wq.STUCK_HEADERS, map(wq.stuck_export_row, items),
                         now=now, limit=EXPORT_ROWS, more=more, filename=f"{who.place or ''}逾期督办{label}{now:%Y%m%d}.xlsx")


# -- 案件 ----------------------------------------------------------------------------------------------------
def _cases(db: Session, who: Principal, now: datetime, p: CaseParams, paging: wq.Paging) -> dict[str, Any]:
    return wq.case_queue(db, who.scope, now, q=p.q, state=p.state, open_only=not p.all, school_id=p.school, sort=p.sort,
                         paging=paging, masked=who.masked)


@router.get("/cases")
def cases(request: Request, p: Annotated[CaseParams, Query()], who: Principal = Depends(page(*PUPIL_READERS)),
          db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    data = _cases(db, who, now, p, wq.Paging(p.page, p.per))
    return render(request, "cases.html", who, data=data, p=p, link=_link(p, "/cases"),
                  export=_link(p, "/cases.xlsx")(page=None, per=None), states=list(CaseState),
                  schools=_schools(db, who), per_choices=PER_PAGE)


@router.get("/cases.xlsx")
def cases_xlsx(p: Annotated[CaseParams, Query()], who: Principal = Depends(page(*PUPIL_READERS)),
               db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    data = _cases(db, who, now, p, wq.Paging(1, EXPORT_ROWS + 1))  # one past the limit: did the export stop short?
    return xlsx_response("案件清单", who.place or "", wq.CASE_HEADERS, wq.case_export_rows(data["rows"]), now=now,
                         limit=EXPORT_ROWS,
                         filename=f"{who.place or ''}案件清单{now:%Y%m%d}.xlsx")


# -- 重点关注 ------------------------------------------------------------------------------------------------
def _watch(db: Session, who: Principal, now: datetime, p: WatchParams, paging: wq.Paging) -> dict[str, Any]:
    return wq.watch_queue(db, who.scope, now, q=p.q, school_id=p.school, overdue_only=bool(p.overdue), paging=paging,
                          masked=who.masked)


def _watch_outcomes(db: Session, who: Principal, month: str):
    """The month's outcomes of the reader's watched pupils: the monthly report's own function."""
    from store.access.accounts import school_ids_in
    from store.prevention import risk
    from store.reporting.reports import month_period

    period = month_period(*(int(x) for x in month.split("-")))
    return risk.watch_outcomes(db, None if _county_wide(who) else school_ids_in(db, who.scope), period.start, period.end,
                               by_rule=False)  # the pages show no count per rule


def _county_wide(who: Principal) -> bool:
    return who.scope.school_ids is None and who.scope.township_ids is None and who.scope.class_ids is None


@router.get("/risk")
def risk_page(request: Request, p: Annotated[WatchParams, Query()], who: Principal = Depends(page(*PUPIL_READERS)),
              db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    from web.services import parse_month

    month = parse_month(p.month, now.date())[2]
    outcomes, outcomes_link = None, None
    if who.role is not Role.head_teacher:
        if _county_wide(who):
            # the county's box reads every watched pupil of the month (~100 k at province scale, ~0.6 s): its own
            # page, so the work list is not held up by a summary the monthly report also gives
            outcomes_link = f"/risk/outcomes?month={month}"
        else:
            outcomes = _watch_outcomes(db, who, month)
    data = _watch(db, who, now, p, wq.Paging(p.page, p.per))
    return render(request, "risk.html", who, data=data, p=p, link=_link(p, "/risk"),
                  export=_link(p, "/risk.xlsx")(page=None, per=None, month=None), outcomes=outcomes, month=month,
                  outcomes_link=outcomes_link, month_action="/risk", schools=_schools(db, who), per_choices=PER_PAGE,
                  may_act=who.role in (Role.head_teacher, Role.school_staff))


@router.get("/risk/outcomes")
def risk_outcomes_page(request: Request, p: Annotated[WatchParams, Query()],
                       who: Principal = Depends(page(*[r for r in PUPIL_READERS if r is not Role.head_teacher])),
                       db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    from web.services import parse_month

    month = parse_month(p.month, now.date())[2]
    return render(request, "risk_outcomes.html", who, outcomes=_watch_outcomes(db, who, month), month=month,
                  month_action="/risk/outcomes")


@router.get("/risk.xlsx")
def risk_xlsx(p: Annotated[WatchParams, Query()], who: Principal = Depends(page(*PUPIL_READERS)),
              db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    data = _watch(db, who, now, p, wq.Paging(1, EXPORT_ROWS + 1))  # one past the limit: did the export stop short?
    return xlsx_response("重点关注学生名单", who.place or "", wq.WATCH_HEADERS, wq.watch_export_rows(data["rows"]), now=now,
                         limit=EXPORT_ROWS,
                         filename=f"{who.place or ''}重点关注学生{now:%Y%m%d}.xlsx")


@router.get("/risk/entries/{entry_id}")
def watch_entry_page(request: Request, entry_id: DbId, who: Principal = Depends(page(*PUPIL_READERS)),
                     db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    entry = wq.watch_entry(db, who.scope, entry_id, now, masked=who.masked)
    if entry is None:
        raise ApiError(404, "重点关注记录不存在，或不在您的管辖范围内 (watch entry not found)")
    return render(request, "watch_entry.html", who, e=entry, WATCH_EVENT_LABELS=WATCH_EVENT_LABELS, may_act=who.role in (Role.head_teacher, Role.school_staff))


# -- 打印今日文书 -------------------------------------------------------------------------------------------
class PrintParams(_Params):
    day: date | None = None
    school: int | None = Field(None, ge=1, le=MAX_ID)


@router.get("/print/documents.pdf")
def print_documents(request: Request, p: Annotated[PrintParams, Query()],
                    who: Principal = Depends(page(Role.head_teacher, Role.school_staff, Role.township)),
                    db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    """One PDF of the case documents issued on a day (today by default) in the reader's scope, or at
    one school of it: the archived files merged in school, case and step order."""
    from store.access.masking import full_document_for
    from store.reporting.daily_documents import issued_on
    from web.deps import settings_of
    from web.downloads import content_disposition, merged_pdf
    from web.services import _archive_path

    day = p.day or now.date()
    docs = [d for d in issued_on(db, who.scope, day, school_id=p.school) if full_document_for(who.user, d["kind"])]
    if not docs:
        raise ApiError(404, f"{day.year}年{day.month}月{day.day}日没有出具文书（或文书尚在生成中）")
    settings = settings_of(request)
    data = merged_pdf([_archive_path(settings, d["path"]) for d in docs])
    name = f"{who.place or ''}{day.year}年{day.month}月{day.day}日文书（{len(docs)}份）.pdf"
    return Response(data, media_type="application/pdf", headers={"Content-Disposition": content_disposition(name)})
