"""Downloads people can use (issue 18 item 6): Chinese file names with the right extension, sent
with RFC 5987 ``filename*=UTF-8''…`` (and an ASCII fallback for old clients), and the lists' XLSX.

File names: ``城关镇2026年11月控辍保学月报表.pdf``, ``复学通知书（案件53）.pdf``; a character a file
system refuses (``/\\:*?"<>|`` and control characters) becomes ``_``.
"""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Iterable
from urllib.parse import quote

from fastapi.responses import Response

from machines.vocabulary import REPORT_KIND_LABELS

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')


def safe_name(name: str) -> str:
    return _UNSAFE.sub("_", name).strip(" .") or "download"


def content_disposition(name: str, *, inline: bool = False) -> str:
    """``attachment; filename="ascii.ext"; filename*=UTF-8''%E5%9F%8E…`` (RFC 6266 / RFC 5987)."""
    name = safe_name(name)
    suffix = PurePosixPath(name).suffix
    fallback = name.encode("ascii", "ignore").decode().strip() or f"download{suffix}"
    if fallback == suffix:
        fallback = f"download{suffix}"
    fallback = fallback.replace('"', "_")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def xlsx_response(title: str, unit: str, headers: list[str], rows: Iterable[list[Any]], *, now: datetime,
                  limit: int, filename: str, more: bool | None = None) -> Response:
    """A list's export: its first ``limit`` rows, read as they come (``rows`` may be a stream,
    :func:`store.streaming.stream_rows`), and a closing line saying whether that is the whole list — the list
    has more when ``rows`` yields one beyond ``limit`` (callers read ``limit + 1``), or when ``more`` says so."""
    from documents.xlsx import list_sheet

    def note(count: int, cut: bool) -> str:
        if cut or more:
            return f"注：仅导出前 {count} 行，请缩小筛选范围后再导出其余部分。"
        return f"共 {count} 行。"

    data = list_sheet(title, unit, headers, rows, as_of=now, note=note, limit=limit)
    return Response(data, media_type=XLSX, headers={"Content-Disposition": content_disposition(filename)})


# -- the names of the files -----------------------------------------------------------------------------------
FILE_LABELS = {"pdf": "月报表 PDF", "xlsx": "月报表 Excel", "md": "文本", "accountability_pdf": "责任追究事实材料 PDF"}


def file_label(key: str) -> str:
    """The link text of a filed report's file (never the key, e.g. "ACCOUNTABILITY_PDF")."""
    return FILE_LABELS.get(key, key.upper())


def report_file_name(filing, key: str, path: str) -> str:
    """``城关镇2026年11月控辍保学月报表.pdf``: unit, period, the report's name, the file's real extension."""
    ext = PurePosixPath(path).suffix or f".{key}"
    period = filing.period
    if filing.kind == "monthly" and re.fullmatch(r"\d{4}-\d{2}", period):
        y, m = period.split("-")
        period = f"{int(y)}年{int(m)}月"
    what = "控辍保学工作责任追究事实材料" if key == "accountability_pdf" else (
        "控辍保学月报表" if filing.kind == "monthly" else f"控辍保学{REPORT_KIND_LABELS.get(filing.kind, filing.kind)}")
    return safe_name(f"{filing.scope_name}{period}{what}{ext}")


def document_file_name(doc, fmt: str) -> str:
    """``复学通知书（城教控辍〔2026〕7号）.pdf`` — the title, its number or case, the format's extension."""
    tag = doc.doc_number or (f"案件{doc.case_id}" if doc.case_id else str(doc.id))
    version = f"（更正{doc.version - 1}）" if (doc.version or 1) > 1 else ""
    return safe_name(f"{doc.title or doc.kind}（{tag}）{version}.{fmt}")


def merged_pdf(paths: list) -> bytes:
    """One PDF of several archived PDFs, in order (pypdf, already a dependency for the document tests)."""
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    for path in paths:
        writer.append(str(path))
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()
