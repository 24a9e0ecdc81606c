"""Uploads are bounded while they are read (issue 14, row 6 and the 300 MB body of row 14).

A 1.6 KB workbook whose sheet declares ``<dimension ref="A1:XFD10000">`` took 21.7 s and 1.18 GB
(openpyxl pads every row to the declared width); 1,048,576 declared rows meant an OOM kill. The
roster, census and morning-check uploads share the reader (store.ingest.tabular). Each limit is one
setting (store.db.Settings) and its error names it. A body far over BAOXUE_REQUEST_MAX_MB is refused
with 413 while it streams, never read whole.
"""
from __future__ import annotations

import io
import re
import tracemalloc
import zipfile

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from typer.testing import CliRunner

from store.ingest.attendance_files import parse_attendance
from store.ingest.tabular import TableError, read_table
from tests.web_support import Zeros, build_county, in_process_app

LAST = b'<row r="10000"><c r="A10000" t="inlineStr"><is><t>x</t></is></c></row>'  # the attack: 21.7 s, 1.18 GB
HUGE = [("A1:XFD1048576", b""), ("A1:XFD10000", LAST), ("A1:B1048576", b"")]
SETTING = r"BAOXUE_TABLE_MAX_(ROWS|COLUMNS)"


def crafted(ref: str = "A1:XFD1048576", extra_rows: bytes = b"", header=("学籍号", "出勤状态"), row=("G1", "到校")) -> bytes:
    """A small workbook whose sheet declares ``ref`` and holds a few real cells (plus ``extra_rows`` XML)."""
    book = Workbook()
    book.active.append(list(header))
    book.active.append(list(row))
    src, out = io.BytesIO(), io.BytesIO()
    book.save(src)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="' + ref.encode() + b'"', data)
                data = data.replace(b"</sheetData>", extra_rows + b"</sheetData>")
            zout.writestr(item, data)
    return out.getvalue()


def peak_of(call) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the caller asserts which
        error = exc
    else:
        error = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return error, peak


@pytest.mark.parametrize("ref, extra", HUGE, ids=[ref for ref, _ in HUGE])
def test_a_sheet_declaring_more_than_the_limits_is_refused_before_a_row_is_read(ref, extra):
    """A declared width beyond BAOXUE_TABLE_MAX_COLUMNS is refused by every reader; a declared length
    only by the list-building ones (roster, census: BAOXUE_TABLE_MAX_ROWS): the morning-check file
    streams, has no row count, and never trusts the declared size for allocation."""
    data = crafted(ref, extra)
    assert len(data) < 8000
    wide = not ref.startswith("A1:B")
    readers = [lambda: read_table(data, "名单.xlsx")] + ([lambda: parse_attendance(data, filename="晨检.xlsx")] if wide else [])
    for read in readers:
        error, peak = peak_of(read)
        assert isinstance(error, TableError) and re.search(SETTING, str(error)), error
        assert "工作表声明了" in str(error)
        assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MB"
    if not wide:
        error, peak = peak_of(lambda: parse_attendance(data, filename="晨检.xlsx"))
        assert error is None and peak < 20 * 2**20, (error, peak)
        assert [m.student_no for m in parse_attendance(data, filename="晨检.xlsx").marks] == ["G1"]


BLANK_RUN_ERROR = "连续超过 10000 行空行"


@pytest.mark.parametrize("extra, setting, streamed", [
    # an honest small dimension, then a real cell a million rows down: the empty rows before it count
    (b'<row r="1048576"><c r="A1048576" t="inlineStr"><is><t>x</t></is></c></row>', "BAOXUE_TABLE_MAX_ROWS",
     BLANK_RUN_ERROR),
    # a real cell in the last column
    (b'<row r="3"><c r="XFD3" t="inlineStr"><is><t>x</t></is></c></row>', "BAOXUE_TABLE_MAX_COLUMNS",
     "BAOXUE_TABLE_MAX_COLUMNS"),
])
def test_what_a_sheet_really_holds_is_bounded_while_it_streams(extra, setting, streamed):
    data = crafted("A1:B2", extra)
    for read, want in ((lambda: parse_attendance(data, filename="晨检.xlsx"), streamed),
                       (lambda: read_table(data, "名单.xlsx"), setting)):
        error, peak = peak_of(read)
        assert isinstance(error, TableError) and want in str(error), error
        assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MB"


def test_a_declared_size_within_the_limits_is_not_trusted_for_allocation():
    """A1:GR50000 (200 columns, 50,000 rows) is allowed, but only the two real rows are made."""
    data = crafted("A1:GR50000")
    error, peak = peak_of(lambda: parse_attendance(data, filename="晨检.xlsx"))
    assert error is None
    parsed = parse_attendance(data, filename="晨检.xlsx")
    assert [m.student_no for m in parsed.marks] == ["G1"] and parsed.rows == 1
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MB"


def test_a_csv_of_blank_lines_is_refused_by_the_stream_and_by_the_row_limit():
    data = "学籍号,出勤状态\n".encode() + b"\n" * 60000  # a header and 60,000 blank lines
    with pytest.raises(TableError, match=BLANK_RUN_ERROR):
        parse_attendance(data, filename="a.csv")
    with pytest.raises(TableError, match="BAOXUE_TABLE_MAX_ROWS"):
        read_table(data, "a.csv")


def county_csv(rows: int, *, schools: int = 1, status=lambda i: "缺勤" if i % 50 == 0 else "到校") -> bytes:
    """A county export: 学校代码, 学籍号, 出勤状态, 缺勤原因, ``rows`` rows over ``schools`` schools."""
    lines = ["学校代码,学籍号,出勤状态,缺勤原因"]
    lines += [f"S{i % schools:03d},G{i:07d},{status(i)}," for i in range(rows)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def test_a_county_file_over_the_old_row_cap_is_read_whole_in_one_streaming_pass():
    """60,000 rows (the cap was 20,000, then 50,000): every row read, by school, in one pass that holds
    one compact mark per row, never the rows or the text (tracemalloc peak well under the rows' size
    as lists of str). XLSX alike (openpyxl read-only)."""
    from openpyxl import Workbook

    data = county_csv(60_000, schools=30)
    error, peak = peak_of(lambda: parse_attendance(data, filename="county.csv"))
    assert error is None
    parsed = parse_attendance(data, filename="county.csv")
    assert parsed.rows == 60_000 and parsed.county and len(parsed.by_school) == 30
    assert sum(len(m) for m in parsed.by_school.values()) == 60_000 and parsed.error_count == 0
    assert sum(m.status == "unexcused" for m in parsed.by_school["S000"]) == 400
    assert peak < 24 * 2**20, f"peak {peak / 2**20:.1f} MB"
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    for line in data.decode().splitlines():
        sheet.append(line.split(","))
    buf = io.BytesIO()
    book.save(buf)
    parsed_x = parse_attendance(buf.getvalue(), filename="county.xlsx")
    assert parsed_x.by_school == parsed.by_school


def test_bad_rows_are_counted_all_and_listed_first(monkeypatch):
    """A file of 30,000 unreadable rows: every one counted, the first ERRORS_KEPT listed, and the
    refusal names the count (the page and the API show the list and the total)."""
    from store.ingest.attendance_files import ERRORS_KEPT, bad_rows_message

    parsed = parse_attendance(county_csv(30_000, status=lambda i: "飞"), filename="a.csv")
    assert parsed.error_count == 30_000 and len(parsed.errors) == ERRORS_KEPT == 200
    assert [e.row for e in parsed.errors[:2]] == [2, 3] and parsed.more_errors == 29_800
    assert bad_rows_message(30_000, 200).startswith("文件中有 30000 行有误（列出前 200 行）")


def test_the_file_s_byte_size_is_the_limit_and_its_error_names_the_setting(monkeypatch):
    import store.ingest.tabular as tabular
    from store.db import Settings

    monkeypatch.setattr(tabular, "limits", lambda: Settings(upload_max_mb=1))
    data = county_csv(60_000)  # ≈1.6 MB
    with pytest.raises(TableError, match="BAOXUE_UPLOAD_MAX_MB") as info:
        parse_attendance(data, filename="a.csv")
    assert "超过 1MB" in str(info.value)
    assert parse_attendance(county_csv(20_000), filename="a.csv").rows == 20_000


@pytest.fixture
def web(factory, tmp_path):
    with factory() as s:
        county = build_county(s, sessions=True)
        s.commit()
    with TestClient(in_process_app(factory, tmp_path / "archive"), raise_server_exceptions=False) as client:
        yield client, county


def test_the_crafted_workbook_is_refused_by_every_upload_route(web):
    client, county = web
    data = crafted("A1:XFD1048576")
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    for url, user in (("/api/roster", "school"), ("/api/morning-checks/upload", "school")):
        r = client.post(url, headers={"Authorization": f"Bearer {county.tokens[user]}"},
                        files={"file": ("a.xlsx", data, xlsx)})
        assert r.status_code == 422 and re.search(SETTING, r.json()["message"]), (url, r.status_code, r.text[:300])
    client.cookies.set("baoxue_session", county.cookies["school"])
    r = client.post("/morning-check/upload", data={"csrf": county.csrf["school"]}, files={"file": ("a.xlsx", data, xlsx)})
    assert r.status_code == 422 and re.search(SETTING, r.text), r.status_code
    client.cookies.set("baoxue_session", county.cookies["township"])
    r = client.post("/census/upload", data={"csrf": county.csrf["township"]}, files={"file": ("a.xlsx", data, xlsx)})
    assert r.status_code == 422 and re.search(SETTING, r.text), r.status_code


def test_the_crafted_workbook_is_refused_by_every_import_command(blank_db_url, tmp_path):
    from cli.main import app

    runner = CliRunner()
    assert runner.invoke(app, ["--db", blank_db_url, "init", "--at", "2026-09-01T07:00"]).exit_code == 0
    path = tmp_path / "crafted.xlsx"
    path.write_bytes(crafted("A1:XFD1048576"))
    for args in (["roster", "import", str(path)],
                 ["attendance", "import", str(path), "--school", "S1", "--date", "2026-11-16"],
                 ["census", "import", str(path)]):
        result = runner.invoke(app, ["--db", blank_db_url, *args])
        assert result.exit_code != 0, (args, result.output)  # refused, one line (cli/errors.py)
        assert re.search(SETTING, result.output), (args, result.output)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_300_mb_body_gets_413_without_being_read_whole(tmp_path, declared):
    """Over a real socket (uvicorn): a body declaring 300 MB is refused before it is read; a chunked one
    (no length) is cut off once it passes BAOXUE_REQUEST_MAX_MB. Python's peak memory stays far below
    the body, and the client never gets to send most of it."""
    import httpx

    from store.db import Settings, make_engine, session_factory, transaction
    from store.schema import migrate
    from tests.web_support import county_app_on_file, live_server
    from web.app import create_app
    from web.services import InProcess

    app, token, engine = county_app_on_file(tmp_path)  # a real SQLite file for a real socket
    size = 300 * 2**20
    body = Zeros(size)

    def chunks():  # one file part whose content never ends within the 300 MB
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\nContent-Type: text/csv\r\n\r\n'
        while chunk := body.read(2**16):
            yield chunk

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=x"}
    if declared:
        headers["Content-Length"] = str(size)
    with live_server(app) as base:
        tracemalloc.start()
        try:
            try:
                r = httpx.post(f"{base}/api/roster", headers=headers, content=chunks(), timeout=120)
            except httpx.TransportError as exc:  # the server closed while the client was still sending
                r = exc
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    engine.dispose()
    assert isinstance(r, httpx.Response), r
    assert r.status_code == 413 and "BAOXUE_REQUEST_MAX_MB" in r.json()["message"], r.text
    assert body.sent < 150 * 2**20, f"{body.sent / 2**20:.0f} MB sent before the answer"
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.1f} MB for a 300 MB body"


def test_a_file_over_the_old_row_cap_enters_the_api_and_the_page_whole(web):
    """60,000 rows (the cap was 20,000, then 50,000) through the API and the page: read whole, and, as
    none of them is this school's pupil, refused with every bad row counted and the first 200 listed."""
    client, county = web
    data = county_csv(60_000).replace("学校代码,".encode(), b"x,")  # one school's file: no school column
    r = client.post("/api/morning-checks/upload", headers={"Authorization": f"Bearer {county.tokens['school']}"},
                    files={"file": ("big.csv", data, "text/csv")}, data={"day": "2026-11-16"})
    assert r.status_code == 422, r.text[:300]
    assert r.json()["message"].startswith("文件中有 60000 行有误（列出前 200 行）") and len(r.json()["errors"]) == 200
    client.cookies.set("baoxue_session", county.cookies["school"])
    r = client.post("/morning-check/upload", data={"csrf": county.csrf["school"], "day": "2026-11-16"},
                    files={"file": ("big.csv", data, "text/csv")})
    assert r.status_code == 422 and "文件中有 60000 行有误" in r.text, r.status_code


def test_a_large_check_for_a_prefect_run_is_staged_not_inlined(factory):
    """A school's check larger than web.services.INLINE_MARKS, for a run on a Prefect server, is staged in
    the database and named by id and SHA-256 (Prefect refuses run parameters over 512 kB); the run reads
    back exactly the marks the page vetted."""
    from datetime import date, datetime

    from sqlalchemy import select

    from store.cases.intake import MarkIn
    from store.models import Pupil, School
    from tasks.intake import MorningCheckSubmission, _staged_sheets
    from store.access.accounts import Role
    from tasks.runtime import using
    from web import services

    class Server:
        def api_url(self):
            return "http://prefect.invalid/api"

    with factory() as s:
        county = build_county(s, sessions=False)
        s.commit()
        school = s.scalar(select(School).where(School.code == county.school_codes[0]))
        nos = list(s.scalars(select(Pupil.student_no).where(Pupil.school_id == school.id)))
        marks = [MarkIn(nos[i % len(nos)] + ("" if i < len(nos) else f"-{i}"), "unexcused" if i % 7 else "present",
                        "study" if i % 7 else "unknown", i + 2) for i in range(services.INLINE_MARKS + 1)]
    who = type("Who", (), {"role": Role.school_staff, "actor": "user:school"})()
    with factory() as s:
        inline = services._run_marks(s, who, services.InProcess(), school, marks, datetime(2026, 11, 16, 8))
        assert len(inline["marks"]) == len(marks) and "file_id" not in inline
        staged = services._run_marks(s, who, Server(), school, marks, datetime(2026, 11, 16, 8))
    assert staged["marks"] == [] and len(staged["file_sha256"]) == 64
    sub = MorningCheckSubmission(day=date(2026, 11, 16), school_code=school.code, submitted_by="user:school",
                                 file_id=staged["file_id"], file_sha256=staged["file_sha256"])
    with using(factory):
        back = [(m.student_no, m.status, m.reason, sheet.school_code) for sheet in _staged_sheets(sub)
                for m in sheet.marks.marks]
    assert back == [(m.student_no, m.status, m.reason, school.code) for m in marks]
    with using(factory), pytest.raises(ValueError, match="不存在或内容已改变"):
        _staged_sheets(sub.model_copy(update={"file_sha256": "0" * 64}))
