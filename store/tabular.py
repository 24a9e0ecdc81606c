"""Read a table a school clerk exported: CSV (UTF-8 with or without BOM, or GBK) or XLSX.

Returns the header-keyed rows with their row numbers as the clerk sees them in Excel (header = 1).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path


class TableError(ValueError):
    pass


def decode_csv(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise TableError("文件编码无法识别，请另存为 UTF-8 或 GBK 编码的 CSV (unknown text encoding)")


def read_table(data: bytes, filename: str, *, aliases: dict[str, str] | None = None) -> list[tuple[int, dict[str, str]]]:
    """Rows as (row number, {column: text}); column names are mapped through ``aliases``."""
    suffix = Path(filename).suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        rows = _xlsx_rows(data)
    elif suffix in (".csv", ".txt", ""):
        rows = list(csv.reader(io.StringIO(decode_csv(data))))
    else:
        raise TableError(f"不支持的文件类型 {suffix}：请上传 CSV 或 XLSX (unsupported file type)")
    rows = [r for r in rows if any((c or "").strip() for c in r)]
    if not rows:
        raise TableError("文件是空的 (the file has no rows)")
    aliases = aliases or {}
    header = [aliases.get(h.strip(), aliases.get(h.strip().lower(), h.strip())) for h in rows[0]]
    return [
        (n, {h: (r[i].strip() if i < len(r) and r[i] is not None else "") for i, h in enumerate(header)})
        for n, r in enumerate(rows[1:], start=2)
    ]


def _xlsx_rows(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several types for a broken file
        raise TableError(f"无法读取 Excel 文件: {exc}") from None
    ws = wb.worksheets[0]
    return [["" if v is None else (v.strftime("%Y-%m-%d") if hasattr(v, "strftime") else str(v)) for v in row]
            for row in ws.iter_rows(values_only=True)]


def require_columns(rows: list[tuple[int, dict[str, str]]], needed: list[str], labels: dict[str, str]) -> None:
    present = set(rows[0][1]) if rows else set()
    missing = [c for c in needed if c not in present]
    if missing:
        raise TableError("缺少必填列: " + "、".join(labels.get(c, c) for c in missing) + f" (missing columns {missing})")
