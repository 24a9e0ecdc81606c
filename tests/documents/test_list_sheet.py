"""The list exports' writer (documents.xlsx.list_sheet): the rows it writes straight into the sheet read
back exactly as written — text stays text (also when it starts like a formula), numbers stay numbers —
and a value it does not write itself (a date) goes through openpyxl's own cells with its format."""
from __future__ import annotations

import io
from datetime import date, datetime

from openpyxl import load_workbook

from documents.xlsx import list_sheet

HEADERS = ["编号", "学生", "备注", "小时", "比例", "是否", "空", "说明"]
ROWS = [["案件1", "=HYPERLINK(\"http://x\")", " 前后空格 ", 36, 0.25, True, None, "a<b&c\r\n第二行"],
        ["案件2", "+1", "@SUM(A1)", -3, 1e-05, False, "", "很长的一段中文说明文字超过八个字"]]


def _sheet(rows):
    return load_workbook(io.BytesIO(list_sheet("逾期督办:案件/导出", "城关镇", HEADERS, rows, as_of=datetime(2026, 12, 2, 9),
                                               note="共 2 行。"))).active


def test_the_rows_read_back_as_written_and_never_as_formulas():
    ws = _sheet(ROWS)
    assert ws.title == "逾期督办－案件－导出"  # a name Excel accepts
    assert [c.value for c in ws[3]] == HEADERS
    body = [list(r) for r in ws.iter_rows(min_row=4, max_row=5, values_only=True)]
    assert body == [[v if v != "" else None for v in row] for row in ROWS]
    for ref in ("B4", "B5", "C5"):
        assert ws[ref].data_type == "s" and ws[ref].quotePrefix, ref
    assert ws["A4"].quotePrefix is False and ws["H5"].alignment.horizontal == "left"
    assert ws["D4"].alignment.horizontal == "center" and ws["D4"].border.bottom.style == "thin"
    assert ws["A6"].value == "共 2 行。" and ws.freeze_panes == "A4" and ws.print_title_rows == "$3:$3"
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1


def test_a_date_keeps_its_format_through_openpyxls_cells():
    ws = _sheet(ROWS + [[date(2026, 11, 23)] + ["x"] * 7])
    assert ws["A6"].value == datetime(2026, 11, 23) and ws["A6"].is_date
    assert [list(r) for r in ws.iter_rows(min_row=4, max_row=5, values_only=True)] == \
        [[v if v != "" else None for v in row] for row in ROWS]
    assert ws["B4"].quotePrefix and ws["A7"].value == "共 2 行。"


def test_sheet_names_are_what_excel_accepts_and_unique():
    from documents.xlsx import _sheet_name

    taken: set[str] = set()
    long = "城关镇第一中心小学" * 4
    names = [_sheet_name(n, taken) for n in (long, long, long, "各班级", "各班级", "a[b]:c*?/d\\e")]
    assert len(set(names)) == len(names) and all(len(n) <= 31 for n in names)
    assert names[1].endswith("（2）") and names[2].endswith("（3）") and names[4] == "各班级（2）"
    assert not set("[]:*?/\\") & set(names[5])


def test_a_text_repeated_down_the_rows_is_written_alike_each_time():
    """Each distinct text is styled and escaped once (documents.xlsx._body_xml by_value): every copy reads back
    with the same value, quote prefix and alignment as the first."""
    rows = [[f"案件{i}", "=1+1", "a<b&c", "很长的一段中文说明文字超过八个字", i] for i in range(3)]
    ws = load_workbook(io.BytesIO(list_sheet("重复", "城关镇", HEADERS[:5], rows, as_of=datetime(2026, 12, 2, 9)))).active
    assert [list(r) for r in ws.iter_rows(min_row=4, max_row=6, values_only=True)] == rows
    for n in (4, 5, 6):
        assert ws[f"B{n}"].quotePrefix and ws[f"B{n}"].data_type == "s"
        assert ws[f"D{n}"].alignment.horizontal == "left" and ws[f"C{n}"].alignment.horizontal == "center"


def test_equal_numbers_of_other_types_stay_apart_down_the_rows():
    """The by-value cache keys a number by its type too: 1, 1.0 and True are equal in Python, but the sheet
    holds a number, a decimal and a boolean, each as written (and a text "1" stays text)."""
    rows = [[1, 1.0, True, "1"], [True, 1, 1.0, "1"], [1.0, True, 1, 1]]
    ws = load_workbook(io.BytesIO(list_sheet("类型", "城关镇", HEADERS[:4], rows, as_of=datetime(2026, 12, 2, 9)))).active
    for n, row in enumerate(rows, start=4):
        for cell, v in zip(ws[n], row):
            assert cell.value == v and type(cell.value) is type(v), (cell.coordinate, cell.value, v)
            assert cell.data_type == {bool: "b", str: "s"}.get(type(v), "n"), cell.coordinate


def test_a_subclass_of_text_takes_openpyxls_path_and_reads_back_alike():
    class Label(str):
        pass

    rows = [[Label("案件1"), "a<b"], ["案件2", Label("=1")]]
    ws = load_workbook(io.BytesIO(list_sheet("子类", "城关镇", HEADERS[:2], rows, as_of=datetime(2026, 12, 2, 9)))).active
    assert [list(r) for r in ws.iter_rows(min_row=4, max_row=5, values_only=True)] == [["案件1", "a<b"], ["案件2", "=1"]]
    assert ws["B5"].quotePrefix and ws["B5"].data_type == "s"


def test_rows_are_written_as_they_come_up_to_the_limit_and_the_note_says_whether_rows_were_left():
    """A stream (the database's, store.streaming) is read once, row by row, to its end; at most ``limit`` rows
    are written, and the note learns how many and whether one more was there. A value the direct writer does
    not write (a date) in the middle of a stream sends every row through openpyxl's cells, none lost."""
    read: list[int] = []

    def stream(n, odd_at=None):
        for i in range(n):
            read.append(i)
            yield [date(2026, 11, 23) if i == odd_at else f"案件{i}", i]

    def note(count, cut):
        return f"{count}|{cut}"

    for n, limit, odd_at in ((3, 3, None), (4, 3, None), (2, 3, None), (5, None, None), (4, 3, 1), (3, 3, 2)):
        read.clear()
        ws = load_workbook(io.BytesIO(list_sheet("流", "城关镇", HEADERS[:2], stream(n, odd_at), note=note, limit=limit,
                                                 as_of=datetime(2026, 12, 2, 9)))).active
        k = min(n, limit or n)
        want = [[datetime(2026, 11, 23) if i == odd_at else f"案件{i}", i] for i in range(k)]
        assert [list(r) for r in ws.iter_rows(min_row=4, max_row=3 + k, values_only=True)] == want, (n, limit, odd_at)
        assert ws.cell(row=4 + k, column=1).value == f"{k}|{n > k}", (n, limit, odd_at)
        assert read == list(range(n))  # read to its end, once
