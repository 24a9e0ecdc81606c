"""What is on record — schools, classes, staff, pupils — on a page and in the API, within the
caller's scope, searched and paged (store.reporting.directory is the one read model); and the
county's onboarding page: upload the organisation files and the 学籍 export, see the preview,
then apply it.

/directory?tab=pupils&q=…&page=2          the lists (every role that reads pupils)
/api/schools | /api/classes | /api/staff | /api/pupils   the same as JSON (limit/offset)
/admin/onboarding                          county: upload → preview → 确认导入
"""
from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from store.access.accounts import Role
from store.ingest.onboarding import OnboardingError, onboard, sheet_of
from store.reporting import directory

from web.auth import check_csrf
from web.deps import PUPIL_READERS, ApiError, Principal, get_db, get_now, roles, settings_of
from web.services import read_upload
from web.shell import page, render

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["名册 directory"])
PAGE_SIZE = 50
Tab = Literal["pupils", "classes", "staff", "schools"]
TABS = {"pupils": "学生", "classes": "班级", "staff": "教职工", "schools": "学校"}
SEARCH = Query(None, max_length=32, description="姓名、学籍号、身份证号后几位；学校名称或代码")


def _list(db: Session, who: Principal, tab: str, q: str | None, limit: int, offset: int) -> dict:
    if tab == "pupils":
        return directory.list_pupils(db, who.scope, search=q, limit=limit, offset=offset, mask_names=who.masked)
    if tab == "classes":
        return directory.list_classes(db, who.scope, limit=limit, offset=offset)
    if tab == "staff":
        return directory.list_staff(db, who.scope, search=q, limit=limit, offset=offset)
    return directory.list_schools(db, who.scope, search=q, limit=limit, offset=offset)


@router.get("/directory")
def directory_page(request: Request, tab: Tab = "pupils", q: str | None = SEARCH, page_no: int = Query(1, ge=1, le=100000, alias="page"),
                   who: Principal = Depends(page(*PUPIL_READERS)), db: Session = Depends(get_db)):
    data = _list(db, who, tab, q, PAGE_SIZE, (page_no - 1) * PAGE_SIZE)
    pages = max(1, -(-data["total"] // PAGE_SIZE))
    return render(request, "directory.html", who, tab=tab, tabs=TABS, q=q or "", data=data, page_no=page_no, pages=pages)


def _api(tab: str):
    def route(q: str | None = SEARCH, limit: int = Query(50, ge=1, le=directory.MAX_LIMIT), offset: int = Query(0, ge=0, le=10**7),
              who: Principal = Depends(roles(*PUPIL_READERS)), db: Session = Depends(get_db)):
        return _list(db, who, tab, q, limit, offset)
    route.__name__ = f"list_{tab}"
    return route


for _tab, _label in TABS.items():
    api_router.add_api_route(f"/{_tab}", _api(_tab), methods=["GET"], summary=f"{_label}名册（管辖范围内，可搜索、分页）")


# -- onboarding (county) --------------------------------------------------------------------------------
@router.get("/admin/onboarding")
def onboarding_page(request: Request, who: Principal = Depends(page(Role.county))):
    return render(request, "onboarding.html", who, result=None, held=[])


@router.post("/admin/onboarding")
async def onboarding_post(request: Request, who: Principal = Depends(page(Role.county)), db: Session = Depends(get_db),
                          now: datetime = Depends(get_now)):
    form = await request.form()
    return await run_in_threadpool(_onboard, request, who, db, now, form)


def _onboard(request: Request, who: Principal, db: Session, now: datetime, form):
    check_csrf(who, form.get("csrf"))
    files = []
    for upload in form.getlist("files"):
        if isinstance(upload, UploadFile) and upload.filename:
            files.append((upload.filename, read_upload(upload, settings_of(request))))
    for held in form.getlist("held"):  # the files of the preview, sent back with 确认导入
        name, _, content = str(held).partition(":")
        try:
            files.append((base64.urlsafe_b64decode(name.encode()).decode(), base64.b64decode(content, validate=True)))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ApiError(400, "确认的文件已损坏，请重新上传") from None
    files = [(name, data) for name, data in files if sheet_of(name)] or files
    if not files:
        raise ApiError(400, "请选择要导入的文件（区划、学校、教职工、班级、学籍）")
    apply = form.get("apply") == "1"
    try:
        result = onboard(db, files, now=now, apply=apply)
    except OnboardingError as exc:
        raise ApiError(400, str(exc)) from None
    db.commit()
    held = [] if result.applied else [
        base64.urlsafe_b64encode(name.encode()).decode() + ":" + base64.b64encode(data).decode() for name, data in files]
    return render(request, "onboarding.html", who, result=result.as_dict(), held=held if not result.errors else [])
