"""XLSX for the tables (registers, ledgers, monthly report, spot checks, accountability).

The workbook mirrors the PDF: a merged title row, the unit/period line, merged two-level headers,
thin borders, print set-up (A4, fit to width) and the trace line in the page footer.
"""
from __future__ import annotations

import io
import itertools
import re
import zipfile
from copy import copy
from datetime import datetime
from typing import Any, Callable, Iterable
from xml.sax.saxutils import escape as xml_escape

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from store.ingest.tabular import FORMULA_START, xlsx_safe

from documents import catalog
from documents.formats import RenderError, cn_date, cn_datetime, pct

THIN = Side(style="thin", color="000000")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
LEFT = Alignment(horizontal="left", vertical="center", wrap_text=True)
TITLE_FONT = Font(name="方正小标宋简体", size=18, bold=True)
HEAD_FONT = Font(name="黑体", size=10.5)
BODY_FONT = Font(name="仿宋_GB2312", size=10.5)


def _print_setup(ws, *, landscape: bool) -> None:
    """A4, fit to one page wide (as many pages down as it takes), centred."""
    ws.page_setup.paperSize = Worksheet.PAPERSIZE_A4
    ws.page_setup.orientation = "landscape" if landscape else "portrait"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.horizontalCentered = True


BAD_SHEET_CHARS = str.maketrans({c: "－" for c in "[]:*?/\\"})


def _sheet_name(name: str, taken: set[str]) -> str:
    """A sheet name Excel accepts: none of []:*?/\\, at most 31 characters, unique in the book (a
    repeated name gets （2）, （3）… within the 31)."""
    base = (name.translate(BAD_SHEET_CHARS).strip("'") or "表")[:31]
    out, n = base, 1
    while out in taken:
        n += 1
        tail = f"（{n}）"
        out = base[:31 - len(tail)] + tail
    taken.add(out)
    return out


def _sheet(wb: Workbook, title: str, ncols: int, *, landscape: bool) -> Worksheet:
    ws = wb.active
    ws.title = _sheet_name(title, set())
    _print_setup(ws, landscape=landscape)
    return ws


def _safe(cell):
    """A text cell that starts like a formula stays text (typed string, quote-prefixed) — the write-only
    counterpart of ``xlsx_safe``; the cell's style is copied first, as it may be shared."""
    if isinstance(cell.value, str) and cell.value.startswith(FORMULA_START):
        cell.data_type = "s"
        cell._style = copy(cell._style)
        cell.quotePrefix = True
    return cell


def _title(ws: Worksheet, text: str, ncols: int, row: int = 1) -> None:
    ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=ncols)
    cell = ws.cell(row=row, column=1, value=text)
    cell.font, cell.alignment = TITLE_FONT, CENTER
    ws.row_dimensions[row].height = 34


def _line(ws: Worksheet, row: int, ncols: int, left: str, right: str = "") -> None:
    half = max(ncols // 2, 1)
    ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=half)
    ws.cell(row=row, column=1, value=left).font = BODY_FONT
    if right and ncols > half:
        ws.merge_cells(start_row=row, start_column=half + 1, end_row=row, end_column=ncols)
        c = ws.cell(row=row, column=half + 1, value=right)
        c.font, c.alignment = BODY_FONT, Alignment(horizontal="right")


def _header(ws: Worksheet, top: int, spec: list[tuple[str, int, list[str] | None]]) -> int:
    """Two header rows: (label, width, sub-labels or None). Returns the first data row."""
    col = 1
    for label, width, subs in spec:
        if subs:
            ws.merge_cells(start_row=top, start_column=col, end_row=top, end_column=col + len(subs) - 1)
            ws.cell(row=top, column=col, value=label)
            for i, sub in enumerate(subs):
                ws.cell(row=top + 1, column=col + i, value=sub)
                ws.column_dimensions[get_column_letter(col + i)].width = width
            col += len(subs)
        else:
            ws.merge_cells(start_row=top, start_column=col, end_row=top + 1, end_column=col)
            ws.cell(row=top, column=col, value=label)
            ws.column_dimensions[get_column_letter(col)].width = width
            col += 1
    for r in (top, top + 1):
        for c in range(1, col):
            cell = ws.cell(row=r, column=c)
            cell.font, cell.alignment, cell.border = HEAD_FONT, CENTER, BORDER
    ws.print_title_rows = f"{top}:{top + 1}"
    return top + 2


def _rows(ws: Worksheet, first: int, rows: list[list[Any]], *, bold_last: bool = False) -> int:
    styles: dict[tuple[bool, bool], Any] = {}

    def style(bold: bool, left: bool):
        """The cell style (border, font, alignment) made once and copied: openpyxl hashes a style on every
        assignment, which costs seconds for the 45 000 cells of a 5 000-row export."""
        if (bold, left) not in styles:
            probe = Cell(ws)
            probe.border, probe.font, probe.alignment = BORDER, HEAD_FONT if bold else BODY_FONT, LEFT if left else CENTER
            styles[bold, left] = probe._style
        return copy(styles[bold, left])

    for i, values in enumerate(rows):
        bold = bold_last and i == len(rows) - 1
        for j, v in enumerate(values, start=1):
            cell = ws.cell(row=first + i, column=j, value=v)
            cell._style = style(bold, isinstance(v, str) and len(v) > 8)
    return first + len(rows)


def _finish(wb: Workbook, ws: Worksheet, context: dict, last_row: int) -> bytes:
    doc = context["doc"]
    for sheet in wb.worksheets:
        sheet.oddFooter.left.text = doc["trace"]
        sheet.oddFooter.left.size = 7
        sheet.oddFooter.right.text = "第 &P 页 共 &N 页"
    stamp = datetime.fromisoformat(doc["issued_on"])
    wb.properties.creator = "baoxue"
    wb.properties.title = doc["title"]
    wb.properties.created = wb.properties.modified = stamp
    xlsx_safe(wb)  # a pupil named "=HYPERLINK(…)" stays text
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# -- per kind -----------------------------------------------------------------------------------
def _case_ledger(context: dict, *, returned: bool) -> bytes:
    """One ledger line per case (登记表 / 复学销号表), importable into the school's 台账."""
    p, c, r = context["pupil"], context["case"], context["record"]
    g = context["guardians"][0] if context["guardians"] else {"name": "", "relation": "", "phone": ""}
    spec = [("序号", 6, None), ("学生基本信息", 12, ["姓名", "性别", "学籍号", "身份证号", "年级班级"]),
            ("监护人", 11, ["姓名", "关系", "电话"]), ("家庭住址", 22, None),
            ("缺勤起始日", 14, None), ("原因", 12, None)]
    values = [1, p["name"], p["gender"] or "", p["student_no"], p["id_number"] or "", p["class_name"],
              g["name"] or "", g["relation"] or "", g["phone"] or "", p["address"] or "", cn_date(c["opened_on"]),
              c["reason_label"]]
    if returned:
        spec += [("复学日期", 14, None), ("最高处置环节", 14, None), ("销号日期", 14, None), ("跟踪帮扶", 22, None)]
        helpers = "、".join(h["name"] for h in r["helpers"])
        values += [cn_date(r["returned_on"]), r["highest_step"], cn_date(r["ledger_closed_on"]), helpers]
    else:
        spec += [("连续天数", 10, None), ("报告人", 10, None), ("登记人", 10, None), ("电话联系情况", 26, None)]
        values += [r["days_absent"], r["reported_by"] or "", r["registrar"] or "", r["contact_result"] or ""]
    ncols = sum(len(s[2]) if s[2] else 1 for s in spec)
    wb = Workbook()
    ws = _sheet(wb, context["doc"]["short"], ncols, landscape=True)
    _title(ws, context["doc"]["title"], ncols)
    _line(ws, 2, ncols, f"学校：{context['school']['name']}", f"编号：{context['doc']['ref']}")
    first = _header(ws, 3, spec)
    last = _rows(ws, first, [values])
    return _finish(wb, ws, context, last)


PCT = "0.00%"  # a rate as the PDF prints it (documents.formats.pct: two decimals), the cell holding the number


def _month_spec(rep: dict, names: list[str]) -> list[tuple[str, int, list[str] | None]]:
    """The 月报表's table head (the PDF's two header rows), after the name columns ``names``."""
    steps = [s["label"] for s in rep["steps"]]
    specials = [g["label"] for g in rep["special_labels"]]
    return ([(n, 14, None) for n in names[:-1]] + [(names[-1], 18, None), ("在校生数", 9, None),
            ("本月末在办案件（按处置环节）", 8, steps + ["合计"]), ("本月变动", 7, ["新增", "复学", "排除", "移交"]),
            ("辍学", 9, ["人数", "辍学率"]), ("特殊群体在办", 9, specials)])


def _month_line(rep: dict, r: dict, names: list[str]) -> list[Any]:
    """One row of the 月报表: the names, then every figure as a number (the rate a fraction shown as %)."""
    return (names + [r["enrolled"]] + [r["open_by_step"][s["state"]] for s in rep["steps"]] + [r["open_total"]]
            + [r["new_cases"], r["returned"], r["excused"], r["escalated"], r["dropouts"], r["rate"]]
            + [r["special"][g["key"]] for g in rep["special_labels"]])


def _rate_column(rep: dict, n_names: int) -> int:
    """The 1-based column of 辍学率 in a 月报表 row with ``n_names`` name columns."""
    return n_names + 1 + len(rep["steps"]) + 1 + 4 + 2


def _month_meta(ws: Worksheet, rep: dict, ncols: int, title: str) -> None:
    _title(ws, title, ncols)
    _line(ws, 2, ncols, f"填报单位：{rep['unit']['name']}（盖章）　报送：{rep['to']}",
          f"统计期间：{cn_date(rep['period_start'])}至{cn_date(rep['period_end'])}　报送时限：{cn_date(rep['due_on'])}前")


def _monthly_report(context: dict) -> bytes:
    """The 月报表 as the PDF lays it out — the first sheet is the PDF (its table head merged as the PDF's,
    its rows, 合计, reasons, work, problems, the watch-list appendix, the chart) — and one sheet more per
    level below it down to the classes (``report["levels"]``: a county's schools and classes, a
    township's classes), each in the same columns with the units above each row; then the chart's
    daily figures. Every figure is a number (rates as fractions shown as percentages)."""
    rep = context["report"]
    heading = f"{rep['unit']['name']}{rep['month_label']}{rep.get('title') or '控辍保学工作月报表'}"
    wb = Workbook()
    taken: set[str] = set()
    ws = _sheet(wb, "", 1, landscape=True)
    ws.title = _sheet_name(f"月报表（{rep['row_label']}）", taken)
    spec = _month_spec(rep, [rep["row_label"]])
    ncols = sum(len(s[2]) if s[2] else 1 for s in spec)
    _month_meta(ws, rep, ncols, heading)
    first = _header(ws, 3, spec)
    lines = [_month_line(rep, r, [r["name"]]) for r in rep["rows"]] + [_month_line(rep, rep["totals"], ["合计"])]
    row = _rows(ws, first, lines, bold_last=True)
    rate = _rate_column(rep, 1)
    for r in range(first, row):
        ws.cell(row=r, column=rate).number_format = PCT
    ws.freeze_panes = ws.cell(row=first, column=2)

    row += 1
    ws.cell(row=row, column=1, value="一、辍学原因分布").font = HEAD_FONT
    start = row + 2
    row = _rows(ws, row + 1, [["原因", "人数", "占比"]] + [[r["label"], r["count"], r["share"]] for r in rep["reasons"]])
    for r in range(start, row):
        ws.cell(row=r, column=3).number_format = PCT
    row += 1
    ws.cell(row=row, column=1, value="二、本月开展工作").font = HEAD_FONT
    row = _rows(ws, row + 1, [["工作", "次数"]] + [[w["label"], w["count"]] for w in rep["work"]])
    row += 1
    for label, text in (("三、存在问题", rep["problems"]), ("四、下一步工作安排", rep["next_steps"])):
        ws.cell(row=row, column=1, value=label).font = HEAD_FONT
        ws.merge_cells(start_row=row, start_column=2, end_row=row, end_column=ncols)
        c = ws.cell(row=row, column=2, value=text or "")
        c.font, c.alignment = BODY_FONT, LEFT
        row += 1
    w = rep.get("watch_list")
    if w:  # as the PDF's appendix: 附：重点关注学生
        row += 1
        ws.cell(row=row, column=1, value="附：重点关注学生（学困生、贫困生、留守儿童等）").font = HEAD_FONT
        row = _rows(ws, row + 1, [["月末在册", "本月新增", "本月移出", "本月关注人数", "其中辍学", "其中复学"],
                                  [w.get("on_watch"), w.get("added"), w.get("left"), w.get("watched"),
                                   w.get("dropped_out"), w.get("returned")]])

    # one sheet per level below, in the same columns: the bodies are written straight into the saved sheets
    bodies: dict[int, tuple[bytes, str]] = {}
    for level in rep.get("levels") or []:
        names = level["parents"] + [level["label"]]
        sheet = wb.create_sheet(_sheet_name(f"各{level['label']}", taken))
        _print_setup(sheet, landscape=True)
        lspec = _month_spec(rep, names)
        lcols = sum(len(s[2]) if s[2] else 1 for s in lspec)
        _month_meta(sheet, rep, lcols, f"{heading}（各{level['label']}）")
        lfirst = _header(sheet, 3, lspec)
        sheet.freeze_panes = sheet.cell(row=lfirst, column=len(names) + 1)
        body = [_month_line(rep, r, r["parents"] + [r["name"]]) for r in level["rows"]]
        body.append(_month_line(rep, level["totals"], ["合计"] + [""] * (len(names) - 1)))
        lrate = _rate_column(rep, len(names))
        style = _StyleBook(wb, sheet)
        n_body = len(body)
        if not _plain(body):  # a name XML cannot hold: openpyxl's own cells (and its error)
            for r in range(lfirst, _rows(sheet, lfirst, body, bold_last=True)):
                sheet.cell(row=r, column=lrate).number_format = PCT
            continue
        xml = _body_xml(body, lfirst, lambda v, j, i: style.id(bold=i == n_body - 1, left=isinstance(v, str) and len(v) > 8,
                                                              pct=j == lrate, quoted=_formula_like(v)))
        bodies[len(wb.worksheets) - 1] = (xml, f"A1:{get_column_letter(lcols)}{lfirst + n_body - 1}")

    # The chart of the month, and its figures on a sheet of their own.
    daily = wb.create_sheet(_sheet_name("每日数据", taken))
    _rows(daily, 1, [["日期", "新增", "复学", "在办"]] + [[d["day"], d["new"], d["returned"], d["open"]] for d in rep["daily"]])
    try:
        from openpyxl.drawing.image import Image as XlImage

        from documents.charts import month_chart_png

        img = XlImage(io.BytesIO(month_chart_png(rep)))
        img.width, img.height = 920, 260
        ws.add_image(img, f"A{row + 1}")
    except ImportError:  # pillow missing: the daily sheet still carries the figures
        pass
    book = _finish(wb, ws, context, row)
    return _splice_rows(book, {f"xl/worksheets/sheet{i + 1}.xml": v for i, v in bodies.items()})


class _StyleBook:
    """The styles of the cells written straight into a sheet, registered with the workbook once each
    (openpyxl writes every registered style to styles.xml): body or 合计 (bold), centred or left, a
    percentage or not, quote-prefixed or not."""

    def __init__(self, wb: Workbook, ws) -> None:
        self.wb, self.ws, self.ids = wb, ws, {}

    def id(self, *, bold: bool, left: bool, pct: bool = False, quoted: bool = False) -> int:
        key = (bold, left, pct, quoted)
        if key not in self.ids:
            probe = Cell(self.ws)
            probe.border, probe.font, probe.alignment = BORDER, HEAD_FONT if bold else BODY_FONT, LEFT if left else CENTER
            if pct:
                probe.number_format = PCT
            probe.quotePrefix = quoted
            self.ids[key] = self.wb._cell_styles.add(probe._style)
        return self.ids[key]


def _formula_like(v: Any) -> bool:
    return isinstance(v, str) and v.startswith(FORMULA_START)


def _spot_check_sheet(context: dict) -> bytes:
    rep = context["report"]
    spec = [("序号", 6, None), ("乡镇", 12, None), ("学校", 24, None), ("班级", 14, None), ("班主任", 10, None),
            ("台账记载", 9, ["学籍人数", "在办案件", "本季复学", "本季新增"]), ("现场核查", 8, ["应到", "实到", "无故缺勤"]),
            ("账实相符", 9, None), ("备注", 20, None)]
    ncols = sum(len(s[2]) if s[2] else 1 for s in spec)
    wb = Workbook()
    ws = _sheet(wb, "季查", ncols, landscape=True)
    _title(ws, f"{rep['unit']['name']}{rep['quarter_label']}控辍保学随机抽查记录表", ncols)
    _line(ws, 2, ncols, f"检查单位：{rep['unit']['name']}教育局（督导室）", f"抽查比例：{pct(rep['sample_rate'])}")
    first = _header(ws, 3, spec)
    rows = [[i, r["township"], r["school"], r["class_name"], r["head_teacher"] or "", r["enrolled"], r["ledger_open"],
             r["ledger_returned"], r["ledger_new"], "", "", "", "", ""] for i, r in enumerate(rep["rows"], start=1)]
    last = _rows(ws, first, rows)
    return _finish(wb, ws, context, last)


def _accountability_sheet(context: dict) -> bytes:
    rep = context["report"]
    spec = [("序号", 6, None), ("责任人", 10, None), ("职责", 10, None), ("单位", 22, None), ("类别·编号", 14, None),
            ("学生", 9, None), ("应履行事项", 14, None), ("期限", 20, None), ("完成时间", 20, None), ("逾期（小时）", 10, None),
            ("情形", 34, None)]
    ncols = len(spec)
    wb = Workbook()
    ws = _sheet(wb, "责任追究", ncols, landscape=True)
    _title(ws, f"{rep['unit']['name']}控辍保学工作责任追究事实材料（{rep['period_label']}）", ncols)
    _line(ws, 2, ncols, f"统计范围：{rep['unit']['name']}", f"数据截至：{cn_datetime(rep['as_of'])}")
    first = _header(ws, 3, spec)
    rows = [[i, r["person"] or "（未指定）", r["role_label"], r["unit"],
             f"{r['kind_label']} #{r['ref_id']}" if "kind_label" in r else r["case_id"], r["pupil"] or "", r["duty_label"],
             cn_datetime(r["due_at"]), cn_datetime(r["done_at"]) if r["done_at"] else "未完成", r["hours_late"],
             r["ground"] + (f"（依据 seed {r['ground_seed']}）" if r.get("ground_seed") else "")]
            for i, r in enumerate(rep["rows"], start=1)]
    last = _rows(ws, first, rows)
    return _finish(wb, ws, context, last)


WRITERS: dict[str, Callable[[dict], bytes]] = {
    "absence_register": lambda ctx: _case_ledger(ctx, returned=False),
    "return_register": lambda ctx: _case_ledger(ctx, returned=True),
    "monthly_report": _monthly_report,
    "spot_check_sheet": _spot_check_sheet,
    "accountability_sheet": _accountability_sheet,
}


def render_xlsx(context: dict) -> bytes:
    kind = catalog.get(context["doc"]["kind"])
    writer = WRITERS.get(kind.id)
    if writer is None:
        raise RenderError(f"{kind.id} has no XLSX writer")
    try:
        return writer(context)
    except (KeyError, TypeError) as exc:
        raise RenderError(f"{kind.id} xlsx: missing or bad field {exc}") from exc


def _referral_ledger(context: dict) -> bytes:
    """台账 (followup): the referred cases, their follow-up and 销号."""
    rep = context["report"]
    spec = [("序号", 6, None), ("学校", 22, None), ("班级", 12, None), ("学生", 10, None), ("缺勤日期", 12, None),
            ("移交日期", 12, None), ("移交原因", 12, None), ("已跟踪（次）", 10, None), ("逾期（次）", 10, None),
            ("最近跟踪情况", 36, None), ("状态", 14, None), ("销号日期", 12, None)]
    ncols = len(spec)
    wb = Workbook()
    ws = _sheet(wb, "台账", ncols, landscape=True)
    _title(ws, f"{rep['unit']['name']}控辍保学辍学学生台账（{rep['period_label']}）", ncols)
    _line(ws, 2, ncols, f"报送：教育中心（教育局基教股）　单位：{rep['unit']['name']}",
          f"数据截至：{rep['as_of']}　跟踪中 {rep['tracking']} 人　已销号 {rep['closed']} 人")
    first = _header(ws, 3, spec)
    rows = [[i, r["school"], r["class_name"], r["pupil"], r["opened_on"], r["referred_on"], r["reason_label"],
             r["follow_ups_done"], r["follow_ups_overdue"], r["last_follow_up"], r["status_label"], r["closed_on"] or ""]
            for i, r in enumerate(rep["rows"], start=1)]
    last = _rows(ws, first, rows)
    return _finish(wb, ws, context, last)


WRITERS["referral_ledger"] = _referral_ledger
# -- lists exported from the pages (issue 18: what a filtered list shows, with Chinese headers) ----------------
PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})
CR = {"\r": "&#13;"}  # kept as written (a bare CR would read back as a line feed)


BODY_DEFLATE_LEVEL = 1  # the spliced sheets: ~3× faster than zlib's default for ~20 % more bytes (a 5 000-row list)
_TO_ESCAPE = re.compile(r"[&<>\r]")  # what xml_escape(…, CR) changes: most cells hold none of it


def _cell_tail(v: Any, style: int) -> str:
    """A body cell after its reference ``<c r="A4"``: its style and value as openpyxl's writer puts them."""
    if isinstance(v, str):
        if not v:  # as openpyxl writes it: a styled empty cell (the border stays)
            return f' s="{style}"/>'
        space = ' xml:space="preserve"' if v != v.strip() else ""
        text = xml_escape(v, CR) if _TO_ESCAPE.search(v) else v
        return f' s="{style}" t="inlineStr"><is><t{space}>{text}</t></is></c>'
    if isinstance(v, bool):
        return f' s="{style}" t="b"><v>{int(v)}</v></c>'
    return f' s="{style}" t="n"><v>{int(v) if isinstance(v, int) else repr(float(v))}</v></c>'


class _NotPlain(Exception):
    """A value :class:`_BodyRows` does not write itself (a date, a rich value, a character XML cannot hold)."""


class _BodyRows:
    """The rows of a table as SpreadsheetML ``<row>`` elements from row ``first`` on, added one row at a time
    (a list's export writes its rows as the database sends them): text as inline strings, numbers as numbers,
    booleans as booleans, each cell with the style index ``style_of(value, column, row index)`` — what
    openpyxl's writer puts out for the same values, at a fraction of its per-cell cost (~30 µs a cell); a text
    is escaped only when it holds a character to escape.

    ``by_value``: the style depends on the value alone, so each distinct value (of its type) is written once and
    copied after each cell's reference (a list's labels, schools, owners, due times and hours repeat down its
    rows); ``check`` (with ``by_value``): each distinct value is first checked to be one this writer writes
    (:data:`PLAIN_TYPES`, text XML can hold), else :class:`_NotPlain` is raised before its row is written."""

    def __init__(self, first: int, style_of: Callable[[Any, int, int], int], *, by_value: bool = False,
                 check: bool = False) -> None:
        assert by_value or not check
        self.first, self.style_of, self.by_value, self.check = first, style_of, by_value, check
        self.starts: list[str] = []
        self.texts: dict[str, str] = {}  # a text → its cell after the reference (by_value)
        self.others: dict[tuple[type, Any], str] = {}  # (type, value) → the same for a number or boolean (1 ≠ 1.0 ≠ True)
        self.out: list[str] = []

    def _new(self, v: Any, j: int, i: int) -> str:
        if self.check and (v.__class__ not in PLAIN_TYPES or (v.__class__ is str and ILLEGAL_CHARACTERS_RE.search(v))):
            raise _NotPlain(v)
        return _cell_tail(v, self.style_of(v, j + 1, i))

    def add(self, values: list[Any]) -> None:
        i = len(self.out)
        n = self.first + i
        while len(self.starts) < len(values):
            self.starts.append(f'<c r="{get_column_letter(len(self.starts) + 1)}')
        starts, texts, others = self.starts, self.texts, self.others
        at = f'{n}"'
        cells = []
        for j, v in enumerate(values):
            if v is None:
                continue
            if not self.by_value:
                tail = _cell_tail(v, self.style_of(v, j + 1, i))
            elif v.__class__ is str:
                tail = texts.get(v)
                if tail is None:
                    tail = texts[v] = self._new(v, j, i)
            else:
                key = (v.__class__, v)
                tail = others.get(key)
                if tail is None:
                    tail = others[key] = self._new(v, j, i)
            cells.append(starts[j] + at + tail)
        self.out.append(f'<row r="{n}">{"".join(cells)}</row>')

    def xml(self) -> bytes:
        return "".join(self.out).encode()


def _body_xml(rows: list[list[Any]], first: int, style_of: Callable[[Any, int, int], int], *,
              by_value: bool = False) -> bytes:
    """The rows of a whole table at once (:class:`_BodyRows`)."""
    body = _BodyRows(first, style_of, by_value=by_value)
    for values in rows:
        body.add(values)
    return body.xml()


def _plain(rows: list[list[Any]]) -> bool:
    """Every value one ``_body_xml`` writes itself (text XML can hold, a number, a boolean, nothing). The types
    are compared as a set (a subclass, e.g. of str, takes openpyxl's path) and each distinct text is searched
    once: a list's labels, schools and owners repeat down its rows."""
    values = [v for row in rows for v in row]
    if not set(map(type, values)) <= PLAIN_TYPES:
        return False
    return not any(map(ILLEGAL_CHARACTERS_RE.search, {v for v in values if v.__class__ is str}))


def _splice_rows(book: bytes, sheets: dict[str, tuple[bytes, str | None]]) -> bytes:
    """The saved book with each sheet's rows (``path → (rows_xml, dimension or None)``) added at the end
    of its ``<sheetData>``, and its dimension set to the range it now covers."""
    if not sheets:
        return book
    src = zipfile.ZipFile(io.BytesIO(book))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename in sheets:
                rows_xml, dimension = sheets[info.filename]
                if dimension:
                    data = re.sub(rb'<dimension ref="[^"]*"/>', f'<dimension ref="{dimension}"/>'.encode(), data, count=1)
                if b"</sheetData>" in data:
                    head, tail = data.rsplit(b"</sheetData>", 1)
                    data = head + rows_xml + b"</sheetData>" + tail
                else:
                    data = data.replace(b"<sheetData/>", b"<sheetData>" + rows_xml + b"</sheetData>", 1)
            dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=BODY_DEFLATE_LEVEL)
    return buf.getvalue()


def list_sheet(title: str, unit: str, headers: list[str], rows: Iterable[list[Any]], *, as_of: datetime,
               note: str | Callable[[int, bool], str] = "", limit: int | None = None) -> bytes:
    """A page's list as a sheet: the merged title, the unit and time line, one header row, thin borders,
    the header frozen and repeated on each printed page; values stay text where a cell could read as a formula.

    ``rows`` are read as they come (a stream from the database, :func:`store.streaming.stream_rows`), at most
    ``limit`` of them; ``note``: the line under the rows, or ``note(rows written, whether rows were left
    unread)``. openpyxl's write-only mode with one shared style per kind of body cell; while every value is
    plain (text, number, boolean, empty — what the lists export) the body rows are written as SpreadsheetML as
    they come (:class:`_BodyRows`) and spliced into the saved sheet, as openpyxl's per-cell writer costs ~30 µs
    a cell: a 5 000-row export builds in a fraction of the time (docs/performance.md ``## xlsx``); from the
    first value that is not, openpyxl's own cells take every row."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.worksheet.cell_range import CellRange

    ncols = len(headers)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(_sheet_name(title, set()))
    _print_setup(ws, landscape=True)
    for c, label in enumerate(headers, start=1):
        ws.column_dimensions[get_column_letter(c)].width = max(8, min(30, 2 * len(label) + 4))
    half = max(ncols // 2, 1)
    ws.merged_cells.add(CellRange(min_row=1, min_col=1, max_row=1, max_col=ncols))
    ws.merged_cells.add(CellRange(min_row=2, min_col=1, max_row=2, max_col=half))
    if ncols > half:
        ws.merged_cells.add(CellRange(min_row=2, min_col=half + 1, max_row=2, max_col=ncols))
    ws.row_dimensions[1].height = 34
    ws.freeze_panes = "A4"
    ws.print_title_rows = "3:3"
    ws.oddFooter.right.text = "第 &P 页 共 &N 页"

    def styled(value: Any, font: Font, align: Alignment, border: Border | None = None) -> WriteOnlyCell:
        cell = WriteOnlyCell(ws, value=value)
        cell.font, cell.alignment = font, align
        if border is not None:
            cell.border = border
        return _safe(cell)

    ws.append([styled(title, TITLE_FONT, CENTER)])
    line = [styled(f"单位：{unit}" if unit else "", BODY_FONT, LEFT)]
    if ncols > half:
        line += [None] * (half - 1) + [styled(f"导出时间：{cn_datetime(as_of.isoformat())}", BODY_FONT, Alignment(horizontal="right"))]
    ws.append(line)
    ws.append([styled(label, HEAD_FONT, CENTER, BORDER) for label in headers])
    shared = {}  # (left-aligned?, quote-prefixed?) → the one style of every body cell of that kind
    for left in (False, True):
        for quoted in (False, True):
            probe = WriteOnlyCell(ws)
            probe.border, probe.font, probe.alignment = BORDER, BODY_FONT, LEFT if left else CENTER
            probe.quotePrefix = quoted
            shared[left, quoted] = probe._style

    def kind(v: Any) -> tuple[bool, bool]:
        text = isinstance(v, str)
        return text and len(v) > 8, text and v.startswith(FORMULA_START)

    ids = {k: wb._cell_styles.add(st) for k, st in shared.items()}  # registered: styles.xml lists them
    body = _BodyRows(4, lambda v, j, i: ids[kind(v)], by_value=True, check=True)
    taken: list[list[Any]] = []
    direct = True
    source = iter(rows)
    for values in source if limit is None else itertools.islice(source, limit):
        taken.append(values)
        if direct:
            try:
                body.add(values)
            except _NotPlain:  # a date, a rich value or a character XML cannot hold: openpyxl's own cells (and its errors)
                direct = False
    cut = False
    if limit is not None and len(taken) == limit:
        for _ in source:  # one row past the limit says the list goes on; a stream is read to its end
            cut = True
    text = note(len(taken), cut) if callable(note) else note
    if not direct:
        for values in taken:
            out = []
            for v in values:
                cell = WriteOnlyCell(ws, value=v)
                fmt = cell.number_format  # a date's format stays with the shared style
                cell._style = shared[kind(v)]
                if fmt != "General":
                    cell._style = copy(cell._style)
                    cell.number_format = fmt
                out.append(_safe(cell))
            ws.append(out)
        if text:
            ws.append([styled(text, BODY_FONT, LEFT)])
    wb.properties.creator = "baoxue"
    wb.properties.title = title
    wb.properties.created = wb.properties.modified = as_of.replace(tzinfo=None)
    if direct:
        note_probe = WriteOnlyCell(ws)
        note_probe.font, note_probe.alignment = BODY_FONT, LEFT
        note_id = wb._cell_styles.add(note_probe._style)
    buf = io.BytesIO()
    wb.save(buf)
    if not direct:
        return buf.getvalue()
    xml = body.xml()
    if text:
        xml += _body_xml([[text]], 4 + len(taken), lambda v, j, i: note_id)
    return _splice_rows(buf.getvalue(), {"xl/worksheets/sheet1.xml": (xml, None)})
