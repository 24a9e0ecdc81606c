"""The 台账 of referred cases (/ledger-book): the school, its township and the county read the month's list
(seed 000 §三.3: 辍学学生台账报教育中心, 复学后销号) and download it as PDF or XLSX (documents/referral_ledger.py).
County readers see names masked, in the page and in the county's file."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.identity import mask_name
from store.access.accounts import Role, school_ids_in
from store.models import Jurisdiction, School

from web.deps import ApiError, Principal, get_db, get_now
from web.services import parse_month
from web.shell import page, render

router = APIRouter(include_in_schema=False)
READERS = (Role.school_staff, Role.township, Role.county)
FORMATS = ("pdf", "xlsx")


def scope_arg(db: Session, who: Principal) -> str:
    """The reader's unit as a report scope: school:<code>, township:<code> or county:<code>."""
    if who.role is Role.school_staff:
        return f"school:{db.scalar(select(School.code).where(School.id == who.user.school_id))}"
    if who.role is Role.township:
        return f"township:{db.scalar(select(Jurisdiction.code).where(Jurisdiction.id == who.user.township_id))}"
    return f"county:{db.scalar(select(Jurisdiction.code).where(Jurisdiction.level == 'county').order_by(Jurisdiction.id))}"


@router.get("/ledger-book")
def ledger_book_page(request: Request, month: str | None = None, who: Principal = Depends(page(*READERS)),
                     db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    from store.reporting.referral_ledger import referral_rows

    start, end, label = parse_month(month or None, now.date())
    rows = referral_rows(db, school_ids_in(db, who.scope), start, min(end, now.date()))
    if who.masked:
        rows = [{**r, "pupil": mask_name(r["pupil"])} for r in rows]
    return render(request, "ledger_book.html", who, rows=rows, month=label,
                  tracking=sum(1 for r in rows if r["closed_on"] is None))


@router.get("/ledger-book/file")
def ledger_book_file(month: str | None = None, fmt: str = "pdf", who: Principal = Depends(page(*READERS)),
                     db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    from documents.archive import file_path, render_report

    if fmt not in FORMATS:
        raise ApiError(422, "格式应为 pdf 或 xlsx (fmt must be pdf or xlsx)")
    label = parse_month(month or None, now.date())[2]
    record = render_report(db, "referral_ledger", scope=scope_arg(db, who), period=label, actor=who.actor, fmt=fmt, now=now)
    db.commit()
    return FileResponse(file_path(record), media_type=record.media_type, filename=f"referral-ledger-{label}.{fmt}")
