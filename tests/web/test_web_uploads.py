"""The morning-check file parser (store.ingest.attendance_files): what school offices actually send."""
from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from store.ingest.attendance_files import AttendanceFileError, parse_attendance, read_marks
from store.ingest.tabular import TableError

SHEET = "某某小学 2026年11月16日 晨检表\n\n学籍号（必填）,姓名,班级,出勤状态,缺勤原因\nG1,张三,一(1)班,到校,\nG2,李四,一(1)班,缺勤,厌学\n,,,,\nG3,王五,一(1)班,病假,\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_in_any_encoding_chinese_excel_writes_is_read(encoding):
    parsed = parse_attendance(SHEET.encode(encoding), filename="晨检.csv")
    assert [(m.student_no, m.status, m.reason, m.row) for m in parsed.marks] == [
        ("G1", "present", "unknown", 4), ("G2", "unexcused", "study", 5), ("G3", "sick_leave", "unknown", 7)]
    assert parsed.errors == [] and parsed.columns["student_no"] == "学籍号（必填）"


def test_tab_separated_text_and_check_marks_are_understood():
    parsed = parse_attendance("学号\t考勤\nA\t√\nB\t×\nC\t事\n".encode(), filename="a.txt")
    assert [m.status for m in parsed.marks] == ["present", "unexcused", "personal_leave"]


def test_each_bad_row_is_reported_with_its_spreadsheet_row_number():
    parsed = parse_attendance("学籍号,出勤状态\nA,迟到\n,缺勤\nB,\nC,缺勤\n".encode())
    assert [(e.row, e.student_no) for e in parsed.errors] == [(2, "A"), (3, ""), (4, "B")]
    assert "迟到" in parsed.errors[0].message and "学籍号为空" in parsed.errors[1].message
    assert [m.student_no for m in parsed.marks] == ["C"]


def test_xlsx_numbers_dates_and_the_first_sheet_are_read():
    book = Workbook()
    sheet = book.active
    sheet.append(["晨检记录"])
    sheet.append(["学籍号", "出勤", "日期", "原因"])
    sheet.append([20260001, "缺勤", "2026-11-16", "外出打工"])
    out = io.BytesIO()
    book.save(out)
    parsed = parse_attendance(out.getvalue(), filename="x.xlsx")
    assert [(m.student_no, m.status, m.reason, m.row) for m in parsed.marks] == [("20260001", "unexcused", "working_away", 3)]
    assert {d.isoformat() for d in parsed.days} == {"2026-11-16"}


@pytest.mark.parametrize("content, name, words", [
    (b"", "a.csv", "空"),
    ("姓名,出勤状态\n张三,到校\n".encode(), "a.csv", "学籍号"),
    ("学籍号,姓名\nA,张三\n".encode(), "a.csv", "出勤状态"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64, "old.xls", ".xls"),
    (b"PK\x03\x04broken", "a.xlsx", "Excel"),
])
def test_a_file_that_cannot_be_read_says_why(content, name, words):
    with pytest.raises(AttendanceFileError, match=words.replace(".", r"\.")):
        parse_attendance(content, filename=name)


def test_read_marks_is_the_cli_entry_and_raises_table_errors():
    marks, errors = read_marks("学籍号,出勤状态\nA,缺勤\nB,飞\n".encode(), "a.csv")
    assert [m.student_no for m in marks] == ["A"] and [e.row for e in errors] == [3]
    with pytest.raises(TableError):
        read_marks(b"", "a.csv")
