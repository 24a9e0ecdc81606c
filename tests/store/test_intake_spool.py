"""A county file's rows spooled a chunk at a time and vetted a batch of schools at a time
(store.ingest.spool, issue 20 item 3): the chunk and batch boundaries change nothing the one rule says:
duplicates and bad rows split across chunks are found and counted, the first rows listed, and the
preview's counts and token are those of the file vetted whole."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

import store.ingest.attendance_files as attendance_files
import store.ingest.spool as spool
from store.cases.intake import MarkIn
from store.ingest.attendance_files import BadRows, NeedsConfirmation, parse_attendance, vet_checks
from store.ingest.spool import MarkSpool, batches
from store.models import Pupil, School
from tests.engine_helpers import case_of, morning, setup_store

DAY = date(2026, 11, 16)


def test_the_spool_gives_back_each_schools_rows_in_file_order_across_chunks():
    s = MarkSpool(chunk_rows=3)
    s.declare("EMPTY")
    for i in range(10):
        s.add("A" if i % 3 else "B", (f"G{i}", "present", "unknown", i + 2))
    assert list(s) == ["EMPTY", "B", "A"] and (s.size("A"), s.size("B"), s.size("EMPTY")) == (6, 4, 0)
    assert s["B"] == [MarkIn(f"G{i}", "present", "unknown", i + 2) for i in (0, 3, 6, 9)]
    assert [m.row for m in s["A"]] == [3, 4, 6, 7, 9, 10] and s["EMPTY"] == []
    assert [list(b) for b in batches(s, rows=5)] == [["EMPTY", "B"], ["A"]]  # whole schools, ≤ 5 rows or one school
    with pytest.raises(KeyError):
        s["NOPE"]


@pytest.fixture
def county(factory):
    with factory() as s:
        code, _ = setup_store(s, schools=3)
        s.commit()
        rows = s.execute(select(School.code, Pupil.student_no).join(School, School.id == Pupil.school_id)
                         .order_by(Pupil.id)).all()
    first = [no for c, no in rows if c == code]
    assert len({c for c, _ in rows}) == 3 and len(rows) > 3 * 4  # more chunks (of 4 rows) than schools
    morning(factory, code, DAY, [first[0]], statuses={first[1]: "病假"})
    # schools interleaved, so that every chunk holds rows of every school
    interleaved = sorted(rows, key=lambda r: (rows.index(r) % 5, r[1]))
    return factory, code, first, interleaved


def _csv(rows, extra=()) -> bytes:
    lines = ["学校代码,学籍号,出勤状态"] + [f"{c},{no},到校" for c, no in rows] + list(extra)
    return ("\n".join(lines) + "\n").encode()


def _vet(factory, data: bytes, **kw):
    parsed = parse_attendance(data, filename="county.csv")
    with factory() as s:
        return vet_checks(s, day=DAY, sheets=parsed.by_school, errors=parsed.errors, more_errors=parsed.more_errors,
                          **kw)


def test_the_preview_is_the_same_whatever_the_chunks_and_batches(county, monkeypatch):
    factory, code, first, rows = county
    data = _csv(rows)
    with pytest.raises(NeedsConfirmation) as whole:
        _vet(factory, data)
    monkeypatch.setattr(spool, "CHUNK_ROWS", 4)
    monkeypatch.setattr(spool, "BATCH_ROWS", 5)  # a batch per school
    with pytest.raises(NeedsConfirmation) as chunked:
        _vet(factory, data)
    with factory() as s:
        cid = case_of(s, first[0]).id
    assert chunked.value.review.message == whole.value.review.message == "将覆盖 2 条已上报记录，1 个案件将结案"
    assert chunked.value.review.returned == whole.value.review.returned == [cid]
    assert chunked.value.review.token == whole.value.review.token
    assert _vet(factory, data, confirm=whole.value.review.token).returned == [cid]


def test_duplicates_and_bad_rows_across_chunks_refuse_the_file_all_counted(county, monkeypatch):
    factory, code, first, rows = county
    monkeypatch.setattr(spool, "CHUNK_ROWS", 4)
    monkeypatch.setattr(spool, "BATCH_ROWS", 5)
    n = len(rows) + 1  # the last data row's number (header = row 1)
    data = _csv(rows[:3] + [(code, "NOPE-1")] + rows[3:], extra=[
        f"{code},{first[2]},到校",        # a duplicate of a row many chunks before
        f"{code},{first[3]},迟到了",      # an unknown status
        f"{code},NOPE-2,缺勤",            # an unknown pupil, in the last chunk
        "ZZZ,X1,到校",                    # a school that does not exist
    ])
    with pytest.raises(BadRows) as refused:
        _vet(factory, data, confirm=True)
    review = refused.value.review
    listed = [(e.row, e.student_no) for e in review.errors]
    assert review.error_count == 5
    assert listed == [(5, "NOPE-1"), (n + 2, first[2]), (n + 3, first[3]), (n + 4, "NOPE-2"), (n + 5, "X1")]
    assert "重复" in review.errors[1].message and "出勤状态" in review.errors[2].message
    assert "文件中有 5 行有误" in str(refused.value)
    # more bad rows than are listed: all counted, the first ones (by row) listed, whichever chunk they were in
    monkeypatch.setattr(attendance_files, "ERRORS_KEPT", 2)
    with pytest.raises(BadRows) as refused:
        _vet(factory, data, confirm=True)
    assert refused.value.review.error_count == 5
    assert [e.row for e in refused.value.review.errors] == [5, n + 2]
    assert "文件中有 5 行有误（列出前 2 行）" in str(refused.value)


def test_an_xlsx_county_file_reads_as_its_csv_across_chunks(monkeypatch):
    """XLSX and CSV give the same rows by school across spool chunks; openpyxl's worksheet parser drops
    each row it has read (store.ingest.tabular._release_read_rows), the rows it gives are unchanged."""
    import io

    from openpyxl import Workbook

    monkeypatch.setattr(spool, "CHUNK_ROWS", 7)
    rows = [(f"S{i % 3}", f"G{i:05d}", "缺勤" if i % 11 == 0 else "到校", "厌学" if i % 11 == 0 else "")
            for i in range(60)]
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(("学校代码", "学籍号", "出勤状态", "缺勤原因"))
    for row in rows:
        sheet.append(row)
    buf = io.BytesIO()
    book.save(buf)
    text = "学校代码,学籍号,出勤状态,缺勤原因\n" + "".join(",".join(r) + "\n" for r in rows)
    from_xlsx = parse_attendance(buf.getvalue(), filename="county.xlsx")
    from_csv = parse_attendance(text.encode(), filename="county.csv")
    assert from_xlsx.rows == from_csv.rows == 60 and not from_xlsx.errors
    assert {c: from_xlsx.by_school[c] for c in from_xlsx.by_school} == {c: from_csv.by_school[c] for c in from_csv.by_school}
    assert from_xlsx.by_school["S1"][0] == MarkIn("G00001", "present", "unknown", 3)
    assert from_xlsx.by_school["S0"][1] == MarkIn("G00003", "present", "unknown", 5)
    assert [m.student_no for m in from_xlsx.by_school["S2"] if m.status == "unexcused"] == ["G00011", "G00044"]
