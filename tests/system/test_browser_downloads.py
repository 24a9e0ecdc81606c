"""Downloads people can use, clicked in Chromium (issue 18 items 6 and 7): the school's 打印今日文书 gives one
merged PDF of the documents really rendered that day, under a Chinese name; the county's filed 月报 downloads as
``…2026年11月控辍保学月报表.xlsx`` in the PDF's 月报表 layout (merged headers, one row per unit, numbers as
numbers) and as ``….pdf``."""
from __future__ import annotations

import io
import re
from datetime import date, datetime, time

from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import func, select

from store.cases.advance import advance
from store.cases.context import CaseContext
from store.cases.intake import MarkIn, record_morning_check
from store.db import settings, transaction
from store.models import School
from store.models.documents import Document
from store.reporting import reports as rp
from tasks.reports import file_reports, render_reports
from tasks.runtime import using
from tests.web_support import browser, login, pupils_of_class, shot, site  # noqa: F401 - fixtures

DAYS = [date(2026, 11, d) for d in (16, 17, 18, 19, 20)]
ISSUED = datetime(2026, 11, 20, 11, 0)
_ON_THE_20TH = (Document.created_at >= datetime(2026, 11, 20), Document.created_at < datetime(2026, 11, 21))


def _county_with_documents(factory, county, monkeypatch, archive) -> dict:
    """Three pupils of the home school absent all week, swept each morning; the queued documents rendered on the
    20th (real PDFs in the site's archive); the county's November filed on the 23rd."""
    import documents

    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(archive))
    with factory() as s:
        home = s.scalar(select(School).where(School.code == county.school_codes[0]))
        nos = [p.student_no for p in pupils_of_class(s, county.class_ids[0])][:3]
        home_id, home_code = home.id, home.code
    for d in DAYS:
        with transaction(factory) as s:
            record_morning_check(s, CaseContext(s), school_code=home_code, day=d, source="cli", submitted_by="t",
                                 marks=[MarkIn(n, "缺勤") for n in nos], now=datetime.combine(d, time(8)))
        advance(factory, datetime.combine(d, time(9, 30)))
    rendered = documents.render_queued(factory, limit=200, actor="test", now=ISSUED)
    with transaction(factory) as s:
        issued = s.scalar(select(func.count()).select_from(Document).where(*_ON_THE_20TH))
    settings.cache_clear()  # the archive of this site, read by the monthly report's tasks
    try:
        with using(factory):  # the monthly_report flow's own tasks: file the county's month, render its files
            filed = file_reports.fn("county", rp.month_period(2026, 11), datetime(2026, 11, 23, 16))
            render_reports.fn([f["id"] for f in filed])
    finally:
        settings.cache_clear()
    return {"home": home_id, "issued": issued, "rendered": rendered}


def test_the_days_letters_print_as_one_pdf_and_the_monthly_report_downloads_in_its_layout(site, browser, monkeypatch,
                                                                                        tmp_path):
    base, factory, clock, county = site
    made = _county_with_documents(factory, county, monkeypatch, tmp_path / "archive")
    assert made["issued"] >= 3, made  # the ladder's letters of three pupils, rendered

    clock.at = ISSUED.replace(hour=15)  # the head teacher prints the day's letters that afternoon
    page = login(browser, base, "school")
    page.goto(f"{base}/cases")
    with page.expect_download() as dl:
        page.click("#print-today")
    pdf = dl.value
    assert pdf.suggested_filename.endswith(f"2026年11月20日文书（{made['issued']}份）.pdf"), pdf.suggested_filename
    merged = PdfReader(pdf.path())
    with factory() as s:
        titles = set(s.scalars(select(Document.title).where(*_ON_THE_20TH)))
    assert len(merged.pages) >= made["issued"], "every letter of the day, each at least a page"
    text = re.sub(r"\s", "", "".join(p.extract_text() or "" for p in merged.pages))
    # each letter's own title in the merged text, not blank pages (a report's title names the pupil: "关于某某同学…")
    assert [t for t in titles if t.split("学生")[-1] not in text] == []

    clock.at = datetime(2026, 11, 27, 10, 0)
    page = login(browser, base, "county")
    page.goto(f"{base}/figures?month=2026-11")
    shot(page, "monthly-figures")
    with page.expect_download() as dl:
        page.click("a[href^='/reports/'][href$='.xlsx']")
    xlsx = dl.value
    assert xlsx.suggested_filename.endswith("2026年11月控辍保学月报表.xlsx"), xlsx.suggested_filename
    book = load_workbook(io.BytesIO(open(xlsx.path(), "rb").read()))
    sheet = book.worksheets[0]
    assert sheet.title.startswith("月报表（") and sheet.merged_cells.ranges, "the 月报表's merged headers"
    total = next(row for row in sheet.iter_rows(values_only=True) if row[0] == "合计")
    assert all(isinstance(v, (int, float)) for v in total[1:] if v is not None) and any(total[1:]), total
    with page.expect_download() as dl:
        page.click("a[href^='/reports/'][href$='.pdf']")
    report_pdf = dl.value
    assert report_pdf.suggested_filename.endswith("2026年11月控辍保学月报表.pdf"), report_pdf.suggested_filename
    assert open(report_pdf.path(), "rb").read(5) == b"%PDF-"
