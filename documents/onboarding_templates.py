"""The onboarding templates a county fills in: one XLSX per sheet, Chinese headers, a 说明 sheet.

The columns are :data:`store.ingest.onboarding.TEMPLATE_HEADERS` (what the importers read), so a
template and its importer cannot drift apart.
"""
from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.styles import Font

from store.ingest.onboarding import TEMPLATE_FILES, TEMPLATE_HEADERS, TEMPLATE_NOTES


def template_book(sheet: str) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(TEMPLATE_HEADERS[sheet])
    for i, header in enumerate(TEMPLATE_HEADERS[sheet], start=1):
        ws.cell(row=1, column=i).font = Font(bold=True)
        ws.column_dimensions[ws.cell(row=1, column=i).column_letter].width = max(10, 2.2 * len(header) + 2)
    ws.freeze_panes = "A2"
    notes = wb.create_sheet("说明")
    notes.append([TEMPLATE_NOTES[sheet]])
    notes.column_dimensions["A"].width = 120
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def template_books() -> dict[str, bytes]:
    """File name → XLSX bytes, in import order."""
    return {TEMPLATE_FILES[sheet] + ".xlsx": template_book(sheet) for sheet in TEMPLATE_HEADERS}
