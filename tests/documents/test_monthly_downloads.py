"""Downloads people can use (issue 18 item 6): the 月报 XLSX is the PDF's 月报表 from the same archived
figures (every row and every number alike), and the files carry Chinese names with the right extension."""
from __future__ import annotations

import io
import re
import subprocess
from types import SimpleNamespace
from urllib.parse import unquote

from openpyxl import load_workbook

from documents.formats import pct
from documents.render import render
from tests.documents.test_documents import report_doc_context
from web.downloads import content_disposition, document_file_name, file_label, report_file_name


def test_the_monthly_xlsx_shows_the_pdfs_numbers_row_by_row():
    ctx = report_doc_context("monthly_report")
    rep = ctx["report"]
    layout = subprocess.run(["pdftotext", "-layout", "-enc", "UTF-8", "-", "-"], input=render(ctx, "pdf").content,
                            capture_output=True, check=True).stdout.decode()
    text = re.sub(r"[ \t]+", " ", layout)
    book = load_workbook(io.BytesIO(render(ctx, "xlsx").content))
    ws = book.worksheets[0]
    assert ws.title == f"月报表（{rep['row_label']}）"
    names = [r["name"] for r in rep["rows"]] + ["合计"]
    sheet_rows = {row[0]: row for row in ws.iter_rows(min_row=5, values_only=True) if row[0] in names}
    assert list(sheet_rows) == names, "one line per unit of the level below, and the total, in the PDF's order"
    lines = {line.strip().split(" ")[0]: line.strip() for line in text.splitlines() if line.strip().split(" ")[0] in names}
    rate = next(c.column for c in ws[4] if c.value == "辍学率")
    for name in names:
        cells = list(sheet_rows[name][1:])
        assert all(isinstance(v, (int, float)) for v in cells), "numbers as numbers"
        numbers = [pct(v) if i == rate - 2 else str(v) for i, v in enumerate(cells)]
        pdf_numbers = lines[name].split(" ")[1:]
        assert numbers == pdf_numbers, name
    appendix = [row for row in ws.iter_rows(values_only=True) if row[0] == "月末在册"]
    assert bool(appendix) == ("watch_list" in rep), "the PDF's watch-list appendix is in the sheet when the PDF has it"


def test_download_names_are_chinese_with_the_right_extension():
    filing = SimpleNamespace(scope_name="城关镇", period="2026-11", kind="monthly")
    assert report_file_name(filing, "pdf", "reports/x.pdf") == "城关镇2026年11月控辍保学月报表.pdf"
    assert report_file_name(filing, "accountability_pdf", "ab/abc.pdf") == "城关镇2026年11月控辍保学工作责任追究事实材料.pdf"
    assert file_label("accountability_pdf") == "责任追究事实材料 PDF" and "ACCOUNTABILITY" not in file_label("accountability_pdf")
    doc = SimpleNamespace(title="辍学学生返校通知书", doc_number="城关镇政发〔2026〕3号", case_id=53, id=7, kind="return_notice",
                          version=1)
    assert document_file_name(doc, "pdf") == "辍学学生返校通知书（城关镇政发〔2026〕3号）.pdf"
    header = content_disposition("城关镇2026年11月控辍保学月报表.pdf")
    assert header.startswith('attachment; filename="') and "filename*=UTF-8''" in header
    assert unquote(header.split("filename*=UTF-8''")[1]) == "城关镇2026年11月控辍保学月报表.pdf"
    assert content_disposition('a/b"c.pdf').count('"') == 2  # no quote or slash slips into the header
