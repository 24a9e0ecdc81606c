"""Read a table a school clerk exported: CSV (UTF-8 with or without BOM, GBK, UTF-16 with BOM) or XLSX.

Returns the header-keyed rows with their row numbers as the clerk sees them in Excel (header = 1).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable, Iterator, Sequence


class TableError(ValueError):
    pass


def limits():
    """The store's settings that bound a table (BAOXUE_TABLE_MAX_ROWS, _COLUMNS, BAOXUE_XLSX_MAX_UNPACKED_MB)."""
    from store.db import settings

    return settings()


def too_many_rows(limit: int, declared: int | None = None) -> TableError:
    said = f"工作表声明了 {declared} 行，" if declared else ""
    return TableError(f"{said}表格超过 {limit} 行（上限：设置 BAOXUE_TABLE_MAX_ROWS），请删去多余的空行或分开上传 "
                      f"(more than {limit} rows: BAOXUE_TABLE_MAX_ROWS)")


def too_many_columns(limit: int, declared: int | None = None) -> TableError:
    said = f"工作表声明了 {declared} 列，" if declared else ""
    return TableError(f"{said}表格超过 {limit} 列（上限：设置 BAOXUE_TABLE_MAX_COLUMNS），请删去多余的列后另存再上传 "
                      f"(more than {limit} columns: BAOXUE_TABLE_MAX_COLUMNS)")


BLANK_RUN = 10_000  # consecutive blank rows that end a streamed table's reading with an error


def too_many_blank_rows() -> TableError:
    return TableError(f"表格中连续超过 {BLANK_RUN} 行空行，请删去多余的空行后另存再上传 "
                      f"(more than {BLANK_RUN} blank rows in a row)")


def bounded(rows: Iterable[Sequence], max_rows: int | None, max_columns: int) -> Iterator[list]:
    """Each row with its trailing empty cells dropped; more than ``max_rows`` rows (blank ones count:
    they cost as much to read) or a row wider than ``max_columns`` raises ``TableError`` as soon as it
    is met, so nothing beyond the limits is ever held. ``max_rows=None`` (a streamed morning-check
    file, bounded by its byte size, BAOXUE_UPLOAD_MAX_MB): no row count, but more than
    :data:`BLANK_RUN` blank rows in a row (a sheet's cell a million rows down) is refused."""
    blank = 0
    for n, row in enumerate(rows, start=1):
        if max_rows is not None and n > max_rows:
            raise too_many_rows(max_rows)
        row = list(row)
        while row and (row[-1] is None or row[-1] == ""):
            row.pop()
        if len(row) > max_columns:
            raise too_many_columns(max_columns)
        if max_rows is None:
            blank = blank + 1 if not row else 0
            if blank > BLANK_RUN:
                raise too_many_blank_rows()
        yield row


def too_large(size: int, limit_mb: int) -> TableError:
    return TableError(f"文件大小 {size / 2**20:.1f}MB 超过 {limit_mb}MB（上限：设置 BAOXUE_UPLOAD_MAX_MB），"
                      f"请分开上传或请管理员调高该设置 (file larger than {limit_mb} MB: BAOXUE_UPLOAD_MAX_MB)")


def check_size(data: bytes) -> None:
    """The one bound on a streamed table's length: its bytes (BAOXUE_UPLOAD_MAX_MB), stated in the error.
    The web reads at most that much of an upload (``web.services.read_upload``); the CLI checks here."""
    cap = limits().upload_max_mb
    if len(data) > cap * 2**20:
        raise too_large(len(data), cap)


def csv_encoding(data: bytes) -> str:
    """The text encoding of a CSV: UTF-16 with a BOM, UTF-8 with or without BOM, else GBK/GB18030;
    found by decoding the bytes in 1 MB steps, keeping none of the text (a NUL: not a clerk's CSV)."""
    import codecs

    encodings = ("utf-16",) if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig", "gb18030")
    view = memoryview(data)
    for encoding in encodings:
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            for i in range(0, len(data), 2**20):
                if "\x00" in decoder.decode(view[i:i + 2**20], final=i + 2**20 >= len(data)):
                    raise TableError("文件编码无法识别，请另存为 UTF-8 或 GBK 编码的 CSV (unknown text encoding)")
            if not data:
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding
    raise TableError("文件编码无法识别，请另存为 UTF-8 或 GBK 编码的 CSV (unknown text encoding)")


def iter_csv(data: bytes, dialect: type[csv.Dialect] | csv.Dialect = csv.excel,
             encoding: str | None = None) -> Iterator[list[str]]:
    """The rows of a CSV file, decoded and split while they are read (a text stream over the bytes:
    neither the whole text nor the whole table is ever held); no row count (the file's size bounds
    it), columns within BAOXUE_TABLE_MAX_COLUMNS; a broken file raises ``TableError`` where it breaks."""
    stream = io.TextIOWrapper(io.BytesIO(data), encoding=encoding or csv_encoding(data), newline="")
    try:
        yield from bounded(csv.reader(stream, dialect), None, limits().table_max_columns)
    except csv.Error as exc:
        raise TableError(f"CSV 文件格式有误，请检查引号是否成对 (malformed CSV: {exc})") from None


def decode_csv(data: bytes) -> str:
    """Text of a CSV: UTF-16 with a BOM (Excel's "Unicode text"), UTF-8 with or without BOM, GBK/GB18030."""
    encodings = ("utf-16",) if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig", "gb18030")
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:  # NUL: UTF-16 without a BOM or a binary file, never a clerk's CSV
            return text
        break
    raise TableError("文件编码无法识别，请另存为 UTF-8 或 GBK 编码的 CSV (unknown text encoding)")


def parse_csv(text: str, dialect: type[csv.Dialect] | csv.Dialect = csv.excel) -> list[list[str]]:
    """The rows of CSV text (within the table limits); any line ending (\\r\\n, \\n, old Mac \\r); a
    broken or too large file raises ``TableError``."""
    limit = limits()
    try:
        return list(bounded(csv.reader(io.StringIO(text, newline=""), dialect), limit.table_max_rows,
                            limit.table_max_columns))
    except csv.Error as exc:  # an unclosed quote swallowing the rest of the file, a field over the csv limit…
        raise TableError(f"CSV 文件格式有误，请检查引号是否成对 (malformed CSV: {exc})") from None


def _release_read_rows() -> None:
    """openpyxl's worksheet parser clears each ``<row>`` it has read but leaves it in ``<sheetData>`` (an
    ``iterparse`` tree): ~100 bytes a row kept until the sheet is read, linear in the row count (a 1 M-row
    sheet: ~100 MB). Its ``iterparse`` is wrapped, once, so that a row the parser has read is also removed
    from its parent; the events it sees are the same, so nothing else changes (issue 20 item 3)."""
    import openpyxl.worksheet._reader as reader

    if getattr(reader.iterparse, "_baoxue_releases_rows", False):
        return
    original = reader.iterparse
    data_tag, row_tag = reader.DATA_TAG, reader.ROW_TAG

    def iterparse(source, *args, **kwargs):
        if args or kwargs:  # not the worksheet parser's call: unchanged
            yield from original(source, *args, **kwargs)
            return
        sheet_data = None
        for event, element in original(source, events=("start", "end")):
            if event == "start":
                if element.tag == data_tag:
                    sheet_data = element
                continue
            yield event, element
            if sheet_data is not None and element.tag == row_tag:
                del sheet_data[:]  # the row just read (and cleared by the parser): let it go

    iterparse._baoxue_releases_rows = True
    reader.iterparse = iterparse


def open_xlsx(data: bytes):
    """The workbook (read-only) or ``TableError``; refuses one that would unpack to more than the
    setting BAOXUE_XLSX_MAX_UNPACKED_MB (a zip bomb), from the zip directory alone."""
    import zipfile

    from openpyxl import load_workbook

    cap = limits().xlsx_max_unpacked_mb
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            unpacked = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise TableError("无法读取 Excel 文件，请确认是 .xlsx 格式 (cannot read XLSX: not a zip file)") from None
    if unpacked > cap * 2**20:
        raise TableError(f"Excel 文件解压后超过 {cap}MB（上限：设置 BAOXUE_XLSX_MAX_UNPACKED_MB），请删去多余内容后再上传 "
                         f"(XLSX too large when unpacked: BAOXUE_XLSX_MAX_UNPACKED_MB)")
    _release_read_rows()
    try:
        return load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a damaged file
        raise TableError(f"无法读取 Excel 文件，请确认是 .xlsx 格式 (cannot read XLSX: {exc.__class__.__name__})") from None


def xlsx_rows(data: bytes, cell=lambda v: "" if v is None else str(v)) -> list[list[str]]:
    """The first worksheet's rows (at most BAOXUE_TABLE_MAX_ROWS, declared or read), as :func:`iter_xlsx`
    gives them: for the small tables (roster, census, gate) a caller reads whole."""
    return list(_sheet_rows(data, cell, limits().table_max_rows))


def iter_xlsx(data: bytes, cell=lambda v: "" if v is None else str(v)) -> Iterator[list[str]]:
    """The first worksheet's rows, streamed (openpyxl read-only, ``iter_rows(values_only=True)``), each
    value through ``cell``; no row count (the upload's size and BAOXUE_XLSX_MAX_UNPACKED_MB bound it),
    columns within BAOXUE_TABLE_MAX_COLUMNS (declared or read). The workbook is closed when the
    iteration ends or is abandoned."""
    return _sheet_rows(data, cell, None)


def _sheet_rows(data: bytes, cell, max_rows: int | None) -> Iterator[list[str]]:
    """The first worksheet's rows, each value through ``cell``. A sheet whose declared size
    (``<dimension ref="A1:XFD1048576">``) is beyond the limits is refused before a row is read; the
    declared size is then dropped, so empty cells and rows it names are never made (openpyxl pads every
    row to it); what is really there is bounded by :func:`bounded`. A damaged sheet raises ``TableError``."""
    limit = limits()
    book = open_xlsx(data)
    try:
        if not book.worksheets:
            raise TableError("Excel 文件中没有工作表 (the workbook has no worksheet)")
        sheet = book.worksheets[0]
        if max_rows is not None and (sheet.max_row or 0) > max_rows:
            raise too_many_rows(max_rows, sheet.max_row)
        if (sheet.max_column or 0) > limit.table_max_columns:
            raise too_many_columns(limit.table_max_columns, sheet.max_column)
        sheet.reset_dimensions()  # a declared size is never trusted for padding
        for row in bounded(sheet.iter_rows(values_only=True), max_rows, limit.table_max_columns):
            yield [cell(v) for v in row]
    except TableError:
        raise
    except Exception as exc:  # the sheet's XML is read lazily: a damaged one fails here, not on open
        raise TableError(f"Excel 文件已损坏，请重新保存后再上传 (damaged XLSX: {exc.__class__.__name__})") from None
    finally:
        book.close()


def read_table(data: bytes, filename: str, *, aliases: dict[str, str] | None = None) -> list[tuple[int, dict[str, str]]]:
    """Rows as (row number, {column: text}); column names are mapped through ``aliases``."""
    suffix = Path(filename).suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        rows = _xlsx_rows(data)
    elif suffix in (".csv", ".txt", ""):
        rows = parse_csv(decode_csv(data))
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
    return xlsx_rows(data, lambda v: "" if v is None else (v.strftime("%Y-%m-%d") if hasattr(v, "strftime") else str(v)))


def require_columns(rows: list[tuple[int, dict[str, str]]], needed: list[str], labels: dict[str, str]) -> None:
    present = set(rows[0][1]) if rows else set()
    missing = [c for c in needed if c not in present]
    if missing:
        raise TableError("缺少必填列: " + "、".join(labels.get(c, c) for c in missing) + f" (missing columns {missing})")


# -- writing tables out: a cell must never become a formula (CSV/formula injection) ------------------
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value):
    """A CSV cell Excel will not run: text starting with = + - @ TAB CR gets a leading apostrophe."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def xlsx_safe(book) -> None:
    """Make every text cell of an openpyxl workbook that starts like a formula plain text: typed as a
    string (openpyxl turns "=…" into a formula on assignment) and quote-prefixed, so Excel shows it
    as written and never runs it, also after the cell is edited. Call it just before saving."""
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith(FORMULA_START):
                    cell.data_type = "s"
                    cell.quotePrefix = True
