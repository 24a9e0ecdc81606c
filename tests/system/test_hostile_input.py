"""Hostile input (issue 7, part 5): what clerks' spreadsheets and attackers send to the importers and pages.

Hypothesis writes morning-check files and rosters in every encoding Chinese offices use (UTF-8 with
and without BOM, GBK, GB18030, UTF-16), with extra columns, bad 身份证号, impossible and future
dates, unknown pupils, formula-looking names and random bytes; the properties: nothing crashes, each
bad row is reported with its row number and reason, every good row is kept. Then the web layer:
50 MB uploads, SQL injection and path traversal in file names, paths and query parameters (no 5xx),
and formula injection in every exported XLSX/CSV (an ``=HYPERLINK(…)`` pupil name comes out inert).
Each test prints how many inputs it tried (``[hostile] …``).
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import date
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from machines.identity import id_check_digit
from store.ingest.attendance_files import AttendanceFileError, parse_attendance
from store.db import Settings
from store.models import Case, Pupil, School
from store.ingest.roster import import_roster
from store.ingest.tabular import FORMULA_START, TableError, csv_safe, limits, read_table, xlsx_safe
from tests.web_support import MONDAY, Zeros, Clock, build_county, in_process_app, page_login, pupils_of_class
from web.app import create_app
from web.services import InProcess

FAST = dict(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
ENCODINGS = ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16"]
# all encodable in GBK; formula starters, quotes, separators and a line break inside a cell
NAME_CHARS = "张李王赵小明红华=+-@'\";,，；\t\n 0123456789abcXYZ（）()HYPERLINK"
FORMULA = '=HYPERLINK("http://e.vil","点")'  # fits the 32 characters of a pupil's name
SQLI = ["' OR '1'='1", "1; DROP TABLE pupils;--", "\" OR 1=1 --", "1 UNION SELECT password_hash FROM users",
        "%' AND 1=0 UNION SELECT 1--"]
TRAVERSAL = ["../../../../etc/passwd", "..\\..\\windows\\win.ini", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/etc/passwd",
             "....//....//etc/passwd", "a/../../b", "..%00.pdf", "x\x00.csv"]


def tried(capsys, what: str, n: int) -> None:
    with capsys.disabled():
        print(f"\n[hostile] {what}: {n} inputs tried")


def _id(first17: str) -> str:
    return first17 + id_check_digit(first17)


# -- the morning-check file parser ---------------------------------------------------------------------
GOOD_STATUS = ["到校", "缺勤", "病假", "事假", "√", "×", "present", "旷课"]
BAD_STATUS = ["迟到", "飞", "xyz", "=1+1"]
GOOD_DAYS = ["2026-11-16", "2026/11/16", "2026年11月16日", "2026.11.16", "2099-01-01"]  # the future is the web's call
BAD_DAYS = ["2026-02-30", "2026-13-01", "16/11/2026x", "明天", "0000-01-01"]

row_st = st.fixed_dictionaries({
    "no": st.one_of(st.just(""), st.from_regex(r"[A-Z][0-9]{1,10}", fullmatch=True)),
    "name": st.text(NAME_CHARS, max_size=12),
    "status": st.one_of(st.sampled_from(GOOD_STATUS), st.sampled_from(BAD_STATUS), st.just("")),
    "day": st.one_of(st.just(""), st.sampled_from(GOOD_DAYS), st.sampled_from(BAD_DAYS)),
    "extra": st.text(NAME_CHARS, max_size=6),
})


def _expected_bad(r: dict) -> bool:
    from store.ingest.attendance_files import status_of

    if not (r["no"] or r["status"] or r["name"].strip() or r["day"] or r["extra"].strip()):
        return False  # a blank row: skipped, neither mark nor error
    return (not r["no"] or not r["status"] or status_of(r["status"]) is None
            or (r["day"] in BAD_DAYS))


def _is_blank(r: dict) -> bool:
    return not (r["no"] or r["status"] or r["name"].strip() or r["day"] or r["extra"].strip())


def _sheet(rows: list[dict], title: bool, order: list[int]) -> list[list[str]]:
    header = ["学籍号", "姓名", "出勤状态", "日期", "备注（多余列）"]
    table = ([["某某小学 晨检表"]] if title else []) + [[header[i] for i in order]]
    return table + [[[r["no"], r["name"], r["status"], r["day"], r["extra"]][i] for i in order] for r in rows]


def _expected(rows: list[dict], first: int) -> tuple[set[int], list[tuple[int, str]]]:
    bad = {first + i for i, r in enumerate(rows) if _expected_bad(r)}
    good = [(first + i, r["no"]) for i, r in enumerate(rows) if not _is_blank(r) and not _expected_bad(r)]
    return bad, good


def test_attendance_csv_each_bad_row_reported_good_rows_kept(capsys):
    n = {"files": 0, "rows": 0}

    @given(rows=st.lists(row_st, min_size=1, max_size=12), encoding=st.sampled_from(ENCODINGS), title=st.booleans(),
           order=st.permutations(range(5)))
    @settings(max_examples=150, **FAST)
    def run(rows, encoding, title, order):
        buf = io.StringIO()
        csv.writer(buf).writerows(_sheet(rows, title, order))
        parsed = parse_attendance(buf.getvalue().encode(encoding), filename="晨检.csv")
        bad, good = _expected(rows, 3 if title else 2)
        assert {e.row for e in parsed.errors} == bad, repr((rows, encoding, title, order, [(e.row, e.message) for e in parsed.errors]))
        assert all(re.search(r"[\u4e00-\u9fff]", e.message) and "(" in e.message for e in parsed.errors)
        assert [(m.row, m.student_no) for m in parsed.marks] == good
        n["files"] += 1
        n["rows"] += len(rows)

    run()
    tried(capsys, f"attendance CSV property, 5 encodings ({n['rows']} rows)", n["files"])


def test_attendance_xlsx_each_bad_row_reported_good_rows_kept(capsys):
    n = {"files": 0}

    @given(rows=st.lists(row_st, min_size=1, max_size=8), title=st.booleans())
    @settings(max_examples=30, **FAST)
    def run(rows, title):
        book = Workbook()
        for line in _sheet(rows, title, list(range(5))):
            book.active.append([re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", c) for c in line])
        xlsx_safe(book)  # "=1+1" stays the text the clerk typed
        out = io.BytesIO()
        book.save(out)
        parsed = parse_attendance(out.getvalue(), filename="晨检.xlsx")
        bad, good = _expected(rows, 3 if title else 2)
        assert {e.row for e in parsed.errors} == bad
        assert [(m.row, m.student_no) for m in parsed.marks] == good
        n["files"] += 1

    run()
    tried(capsys, "attendance XLSX property", n["files"])


def test_no_bytes_crash_the_importers(capsys):
    """Random bytes: each importer either reads rows or raises TableError with a message (never anything else)."""
    n = {"inputs": 0}

    @given(data=st.one_of(st.binary(max_size=400),
                          st.text(max_size=200).map(lambda t: ("学籍号,出勤状态\n" + t).encode("utf-8", "surrogatepass")),
                          st.builds(lambda t, e: ("学籍号,出勤状态\n" + t).encode(e, "replace"),
                                    st.text(max_size=120), st.sampled_from(ENCODINGS)),
                          st.binary(max_size=300).map(lambda b: b"PK\x03\x04" + b)),
           name=st.sampled_from(["a.csv", "a.xlsx", "a.txt", "a.xls", "", "a"]))
    @settings(max_examples=300, **FAST)
    def run(data, name):
        for read in (lambda: parse_attendance(data, filename=name), lambda: read_table(data, name or "a.csv")):
            n["inputs"] += 1
            try:
                read()
            except TableError as exc:
                assert str(exc)

    run()
    tried(capsys, "random bytes into the 2 importers", n["inputs"])


# -- regressions found by fuzzing the readers -----------------------------------------------------------
SHEET = "学籍号,出勤状态\r\nG1,到校\r\nG2,缺勤\r\n"


def test_utf16_from_excel_unicode_text_is_read():
    for encoding in ("utf-16", "utf-16-le", "utf-16-be"):
        bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}.get(encoding, b"")
        parsed = parse_attendance(bom + SHEET.replace(",", "\t").encode(encoding), filename="晨检.txt")
        assert [m.student_no for m in parsed.marks] == ["G1", "G2"]
    assert read_table(SHEET.encode("utf-16"), "r.csv")[0] == (2, {"学籍号": "G1", "出勤状态": "到校"})


@pytest.mark.parametrize("data, words", [
    (SHEET.encode("utf-16-le"), "编码"),                    # UTF-16 without a BOM: NUL bytes, refused
    (b"\x00\x01\x02garbage\x00", "编码"),
    ('学籍号,出勤状态\nG1,"到校\n'.encode() + b"x" * 200_000, "CSV"),  # unclosed quote: a field over csv's limit
])
def test_unreadable_text_is_a_clear_file_error_not_a_crash(data, words):
    for read in (lambda: parse_attendance(data, filename="a.csv"), lambda: read_table(data, "a.csv")):
        with pytest.raises(TableError, match=words):
            read()


def test_old_mac_line_endings_are_read():
    data = "学籍号,出勤状态\rG1,到校\rG2,缺勤\r".encode("gbk")
    assert [m.row for m in parse_attendance(data, filename="a.csv").marks] == [2, 3]
    assert [n for n, _ in read_table(data, "a.csv")] == [2, 3]


def _xlsx(mutate) -> bytes:
    book = Workbook()
    book.active.append(["学籍号", "出勤状态"])
    book.active.append(["G1", "到校"])
    src = io.BytesIO()
    book.save(src)
    out = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = mutate(item.filename, zin.read(item.filename))
            if data is not None:
                zout.writestr(item.filename, data)
    return out.getvalue()


@pytest.mark.parametrize("mutate, words", [
    (lambda n, d: d[: len(d) // 2] if n.endswith("sheet1.xml") else d, "损坏"),  # broken XML, read lazily
    (lambda n, d: None if n.endswith("sheet1.xml") else d, "工作表|Excel"),        # no sheet at all
])
def test_a_damaged_workbook_is_a_file_error(mutate, words):
    data = _xlsx(mutate)
    with pytest.raises(AttendanceFileError, match=words):
        parse_attendance(data, filename="a.xlsx")
    with pytest.raises(TableError, match=words):
        read_table(data, "a.xlsx")


def test_a_zip_bomb_workbook_is_refused_before_it_is_unpacked():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z, z.open("xl/worksheets/sheet1.xml", "w") as f:
        chunk = b" " * 2**20
        for _ in range(limits().xlsx_max_unpacked_mb + 1):
            f.write(chunk)
    data = out.getvalue()
    assert len(data) < 2 * 2**20  # a small upload…
    for read in (lambda: parse_attendance(data, filename="a.xlsx"), lambda: read_table(data, "a.xlsx")):
        with pytest.raises(TableError, match="解压后超过.*BAOXUE_XLSX_MAX_UNPACKED_MB"):  # …refused from the zip directory alone
            read()


# -- the roster import (database) ---------------------------------------------------------------------
ROSTER_HEADER = ["学校代码", "学籍号", "姓名", "身份证号", "性别", "年级", "班级", "监护人", "联系电话", "备注"]
ROW_KINDS = ["good", "good", "good", "formula_name", "bad_checksum", "future_birth", "impossible_birth", "short_id",
             "no_name", "grade_0", "grade_word", "unknown_school", "other_school", "long_name", "control_char",
             "dup_id", "other_schools_pupil"]


def _roster_row(kind: str, i: int, ctx: dict) -> list[str]:
    code, no = ctx["code"], f"H{ctx['run']}x{i}"
    idn = _id(f"1101052015{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}")
    row = [code, no, "学生" + str(i), idn, "女", "3", "三(1)班", "家长", "13800000000", "多余"]
    if kind == "formula_name":
        row[2] = FORMULA
    elif kind == "bad_checksum":
        row[3] = idn[:17] + ("0" if idn[17] != "0" else "1")
    elif kind == "future_birth":
        row[3] = _id("11010520990101" + f"{i % 1000:03d}")
    elif kind == "impossible_birth":
        row[3] = _id("11010520150230" + f"{i % 1000:03d}")
    elif kind == "short_id":
        row[3] = idn[:15]
    elif kind == "no_name":
        row[2] = ""
    elif kind == "grade_0":
        row[5] = "0"
    elif kind == "grade_word":
        row[5] = "三年级x"
    elif kind == "unknown_school":
        row[0] = "NO-SUCH-SCHOOL' OR '1'='1"
    elif kind == "other_school":
        row[0] = ctx["other_code"]
    elif kind == "long_name":
        row[2] = "长" * 40
    elif kind == "control_char":
        row[2] = "坏\x07名"
    elif kind == "dup_id":
        row[3] = ctx["taken_id"]
    elif kind == "other_schools_pupil":
        row[1] = ctx["other_pupil"]
    return row


@pytest.fixture
def county(session):
    c = build_county(session, sessions=False)
    school_id = session.scalar(select(School.id).where(School.code == c.school_codes[0]))
    other_id = session.scalar(select(School.id).where(School.code == c.school_codes[1]))
    taken = session.scalar(select(Pupil).where(Pupil.school_id == school_id))
    taken.id_number = _id("11010520140505123")
    session.flush()
    return {"code": c.school_codes[0], "other_code": c.school_codes[1], "school_id": school_id,
            "taken_id": taken.id_number,
            "other_pupil": session.scalar(select(Pupil.student_no).where(Pupil.school_id == other_id))}


def test_roster_each_bad_row_reported_good_rows_kept(session, county, capsys):
    runs = {"n": 0, "rows": 0}

    @given(kinds=st.lists(st.sampled_from(ROW_KINDS), min_size=1, max_size=10), encoding=st.sampled_from(ENCODINGS),
           fmt=st.sampled_from(["csv", "csv", "xlsx"]))
    @settings(max_examples=40, **FAST)
    def run(kinds, encoding, fmt):
        assume(fmt == "csv" or "control_char" not in kinds)  # openpyxl cannot even write a BEL character
        runs["n"] += 1
        runs["rows"] += len(kinds)
        ctx = county | {"run": runs["n"]}
        rows = [_roster_row(k, i, ctx) for i, k in enumerate(kinds)]
        if fmt == "csv":
            buf = io.StringIO()
            csv.writer(buf).writerows([ROSTER_HEADER] + rows)
            data, name = buf.getvalue().encode(encoding), "花名册.csv"
        else:
            book = Workbook()
            for r in [ROSTER_HEADER] + rows:
                book.active.append(r)
            xlsx_safe(book)  # a name typed as text, not a formula without a cached value
            out = io.BytesIO()
            book.save(out)
            data, name = out.getvalue(), "花名册.xlsx"
        savepoint = session.begin_nested()
        try:
            result = import_roster(session, data, name, only_school_id=county["school_id"], now=MONDAY)
            good = {i + 2 for i, k in enumerate(kinds) if k in ("good", "formula_name")}
            assert {n for n, _ in result.errors} == set(range(2, len(kinds) + 2)) - good, repr((kinds, result.errors))
            assert all(re.search(r"[\u4e00-\u9fff]", m) for _, m in result.errors)
            assert result.added == len(good) and result.updated == 0
            kept = session.scalars(select(Pupil.name).where(Pupil.student_no.like(f"H{runs['n']}x%"))).all()
            assert len(kept) == len(good)
            if "formula_name" in kinds:
                assert FORMULA in kept  # stored as written; neutralised on export
        finally:
            savepoint.rollback()

    run()
    tried(capsys, f"roster property ({runs['rows']} rows in {runs['n']} files)", runs["n"])


def test_roster_missing_columns_is_a_file_error_extra_columns_are_ignored(session, county):
    with pytest.raises(TableError, match="缺少必填列.*姓名"):
        import_roster(session, "学校代码,学籍号,年级,班级\nX,1,1,1\n".encode("gbk"), "r.csv", now=MONDAY)
    data = f"多余,学校代码,学籍号,姓名,年级,班级,另一多余\nq,{county['code']},E1,张三,1,一(9)班,z\n".encode("gb18030")
    assert import_roster(session, data, "r.csv", now=MONDAY).added == 1


@pytest.mark.parametrize("kind, words", [
    ("dup_id", "身份证号与本校学籍号"), ("other_schools_pupil", "该学籍号已在其他学校登记"), ("future_birth", "晚于今天"),
    ("long_name", "超过 32"), ("control_char", "控制字符"),
])
def test_roster_regressions_are_row_errors_not_crashes(session, county, kind, words):
    """Each crashed (duplicate ID: IntegrityError; a long name: DataError on PostgreSQL) or was let through;
    and the good row after it, in a class the bad row had created inside its rolled-back savepoint, crashed too."""
    row = _roster_row(kind, 1, county | {"run": 0})
    good = _roster_row("good", 2, county | {"run": 0})
    data = "\n".join(",".join(r) for r in [ROSTER_HEADER, row, good]).encode()
    result = import_roster(session, data, "r.csv", only_school_id=county["school_id"], now=MONDAY)
    assert [n for n, _ in result.errors] == [2] and words in result.errors[0][1], result.errors
    assert result.added == 1


# -- the web layer ------------------------------------------------------------------------------------
@pytest.fixture
def web(factory, tmp_path):
    with factory() as s:
        county = build_county(s, sessions=True)
        s.commit()
        pupils = [p.student_no for p in pupils_of_class(s, county.class_ids[0])]
    app = in_process_app(factory, tmp_path / "archive")
    with TestClient(app, raise_server_exceptions=False) as client:
        yield {"client": client, "app": app, "county": county, "pupils": pupils, "factory": factory,
               "archive": tmp_path / "archive"}


def bearer(web, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {web['county'].tokens[user]}"}


def page_client(web, user: str) -> TestClient:
    web["client"].cookies.clear()
    web["client"].cookies.set("baoxue_session", web["county"].cookies[user])
    return web["client"]


def test_a_50_mb_upload_is_refused_with_a_clear_error(web, capsys):
    big = 50 * 2**20
    client = web["client"]
    r = client.post("/api/roster", headers=bearer(web, "school"), files={"file": ("big.csv", io.BufferedReader(Zeros(big)))})
    assert r.status_code == 413 and "10MB" in r.json()["message"], r.text
    r = client.post("/api/morning-checks/upload", headers=bearer(web, "school"),
                    files={"file": ("big.xlsx", io.BufferedReader(Zeros(big)))})
    assert r.status_code == 413 and "文件超过" in r.json()["message"]
    client = page_client(web, "school")
    r = client.post("/morning-check/upload", data={"csrf": web["county"].csrf["school"]},
                    files={"file": ("big.csv", io.BufferedReader(Zeros(big)))})
    assert r.status_code == 413 and "文件超过" in r.text
    tried(capsys, "50 MB uploads (API roster, API morning check, page morning check)", 3)


def test_a_50_mb_upload_never_sits_in_memory(tmp_path):
    """Over a real socket (uvicorn), streamed by the client: the server spools the upload to disk and
    reads at most the limit + 1 byte, so Python's peak memory stays far below the file's 50 MB."""
    import tracemalloc

    import httpx

    from store.db import make_engine, session_factory, transaction
    from store.schema import migrate
    from tests.web_support import county_app_on_file, live_server

    app, token, engine = county_app_on_file(tmp_path)  # a real SQLite file for a real socket
    with live_server(app) as base:
        tracemalloc.start()
        try:
            r = httpx.post(f"{base}/api/roster", headers={"Authorization": f"Bearer {token}"}, timeout=120,
                           files={"file": ("big.csv", io.BufferedReader(Zeros(50 * 2**20)))})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    engine.dispose()
    assert r.status_code == 413 and "文件超过 10MB" in r.json()["message"]
    assert peak < 30 * 2**20, f"peak {peak / 2**20:.1f} MB for a 50 MB upload"


def test_hostile_upload_file_names_are_harmless(web, capsys):
    """SQL and path tricks in the file name: the file is read by its content, nothing is written by its name."""
    client, n = web["client"], 0
    before = _count_pupils(web)
    body = f"学校代码,学籍号,姓名,年级,班级\n{web['county'].school_codes[0]},N1,张三,1,一(9)班\n".encode("gbk")
    for name in SQLI + TRAVERSAL + ["", ".csv", "a" * 300 + ".csv", "名单.CSV", "x.exe"]:
        r = client.post("/api/roster", headers=bearer(web, "school"), files={"file": (name, body, "text/csv")})
        n += 1
        assert r.status_code in (200, 422), (name, r.status_code, r.text)
        r = client.post("/api/morning-checks/upload", headers=bearer(web, "school"),
                        files={"file": (name, f"学籍号,出勤状态\n{web['pupils'][0]},到校\n".encode(), "text/csv")})
        n += 1
        assert r.status_code in (200, 202, 422), (name, r.status_code, r.text)
    assert _count_pupils(web) == before + 1  # N1 once; the pupils table is still there
    assert not any(p.suffix not in (".jpg", ".png", ".webp") for p in web["archive"].rglob("*") if p.is_file())
    tried(capsys, "hostile upload file names", n)


def test_sql_injection_at_the_login_is_just_a_wrong_password(web, capsys):
    client, n = web["client"], 0
    for evil in SQLI + ["admin'--", "' OR ''='", "\x00", "a" * 5000]:
        client.cookies.clear()
        r = page_login(client, evil, evil, follow_redirects=False)
        assert r.status_code in (401, 422) and "用户名或密码不正确" in r.text or r.status_code == 422, (evil, r.status_code)
        r = client.post("/api/auth/token", json={"username": evil, "password": "' OR '1'='1"})
        assert r.status_code in (401, 422), (evil, r.status_code)
        n += 2
    tried(capsys, "SQL injection logins", n)


def _count_pupils(web) -> int:
    with web["factory"]() as s:
        return s.scalar(select(func.count()).select_from(Pupil))


def test_morning_check_upload_with_unknown_pupils_and_bad_dates(web):
    client, pupils = web["client"], web["pupils"]
    r = client.post("/api/morning-checks/upload", headers=bearer(web, "school"),
                    files={"file": ("a.csv", f"学籍号,出勤状态,日期\n{pupils[0]},缺勤,2026-02-30\nNOBODY,缺勤,2026-11-16\n".encode())})
    # the impossible date and the unknown pupil, each by row: one rule, every bad row listed, nothing saved
    assert r.status_code == 422 and [e["row"] for e in r.json()["errors"]] == [2, 3]
    r = client.post("/api/morning-checks/upload", headers=bearer(web, "school"),
                    files={"file": ("a.csv", f"学籍号,出勤状态,日期\n{pupils[0]},缺勤,2099-11-16\n".encode())})
    assert r.status_code == 422 and "还没到" in r.json()["message"]  # the future
    with web["factory"]() as s:
        cases_before = s.scalar(select(func.count()).select_from(Case))
    r = client.post("/api/morning-checks/upload", headers=bearer(web, "school"),
                    files={"file": ("a.csv", f"学籍号,出勤状态\n{pupils[0]},缺勤\nNOBODY,缺勤\n".encode("utf-16"))})
    assert r.status_code == 422, r.text  # an unknown pupil is a row error: the whole file waits for the fix
    body = r.json()
    assert [e["row"] for e in body["errors"]] == [3] and "不属于本校" in body["errors"][0]["message"]
    with web["factory"]() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == cases_before
    r = client.post("/api/morning-checks", headers=bearer(web, "teacher"),
                    json={"day": "0387-01-05", "marks": [{"student_no": pupils[1], "status": "缺勤"}]})
    assert r.status_code == 422 and "补报期限" in r.json()["message"]  # was a 500; now past the late window (issue 14)


def test_morning_check_json_each_bad_row_reported_nothing_kept(web, capsys):
    """The JSON importer: known pupils, unknown ones, SQL in a 学籍号, unknown statuses, a pupil twice —
    every bad row reported, and the check refused whole (store.ingest.attendance_files.vet_check)."""
    pupils, n = web["pupils"], {"posts": 0, "marks": 0}
    JSON_STATUS = ["到校", "缺勤", "病假", "事假", "present", "unexcused"]
    mark = st.one_of(
        st.tuples(st.sampled_from(pupils), st.sampled_from(JSON_STATUS), st.just("good")),
        st.tuples(st.sampled_from([x for x in SQLI if len(x) <= 32] + ["NOBODY", " ", "Ｇ1"]), st.sampled_from(JSON_STATUS), st.just("unknown")),
        st.tuples(st.sampled_from(pupils), st.sampled_from(BAD_STATUS), st.just("bad_status")))

    @given(marks=st.lists(mark, min_size=1, max_size=10))
    @settings(max_examples=25, **FAST)
    def run(marks):
        n["posts"] += 1
        marks = marks + [(f"NONCE{n['posts']}", "到校", "unknown")]  # each submission differs (no duplicate no-op)
        n["marks"] += len(marks)
        r = web["client"].post("/api/morning-checks", headers=bearer(web, "school"), json={
            "marks": [{"student_no": no, "status": st_} for no, st_, _ in marks]})
        assert r.status_code == 422, r.text  # the NONCE row at least is bad
        seen, bad = set(), set()
        for row, (no, _, kind) in enumerate(marks, start=1):
            if kind != "good" or no in seen:
                bad.add(row)
            else:
                seen.add(no)
        body = r.json()
        assert {e["row"] for e in body["errors"]} == bad, (marks, body["errors"])
        assert "整份晨检未保存" in body["message"] and all(e["message"] for e in body["errors"])

    run()
    tried(capsys, f"JSON morning checks ({n['marks']} marks)", n["posts"])


def _open_case(web) -> int:
    r = web["client"].post("/api/morning-checks", headers=bearer(web, "teacher"),
                           json={"marks": [{"student_no": web["pupils"][2], "status": "缺勤"}]})
    assert r.status_code == 200, r.text
    return r.json()["opened_case_ids"][0]


def test_regressions_found_by_schemathesis(web):
    client, case_id = web["client"], _open_case(web)
    for url in (f"/api/cases/{2**63}", f"/api/cases/{2**31}/history", f"/api/documents/{10**30}",
                "/api/reports/99999999999999999999/xlsx", f"/cases/{2**63}", f"/documents/{2**40}.pdf"):
        r = page_client(web, "county").get(url, headers=bearer(web, "county"))
        assert r.status_code == 422, (url, r.status_code)  # was a 500: OverflowError / integer out of range
    r = client.post(f"/api/cases/{case_id}/actions", headers=bearer(web, "teacher"),
                    json={"event": "record_phone_call", "at": "2026-11-16T07:30:00+08:00", "payload": {}})
    assert r.status_code == 200, r.text  # was a 500: aware vs naive datetimes
    r = client.post(f"/api/cases/{case_id}/visits", headers=bearer(web, "teacher"),
                    data={"event": "record_home_visit", "at": "2026-11-15T23:30:00Z"})
    assert r.status_code in (200, 403, 409), r.text
    page = page_client(web, "teacher")
    r = page.post(f"/cases/{case_id}/act", data={"csrf": web["county"].csrf["teacher"], "event": "record_phone_call",
                                                 "at": "2026-11-16T07:40:00+08:00", "contact": "家长"},
                  follow_redirects=False)
    assert r.status_code == 303, r.text  # the page form: was a 500 as well
    page.cookies.clear()
    r = client.get("/api/figures/monthly", params={"month": "99999999999999999999-1"}, headers=bearer(web, "county"))
    assert r.status_code == 422 and "月份" in r.json()["message"]
    r = client.get("/api/reports", params={"period": "\x00"}, headers=bearer(web, "county"))
    assert r.status_code in (200, 422), r.text  # PostgreSQL refuses NUL: was a 500 (DataError)
    r = client.get("/api/cases", params={"school_code": "x\x00' OR 1=1--"}, headers=bearer(web, "county"))
    assert r.status_code in (200, 422) and (r.status_code == 422 or r.json() == [] or "cases" in r.text)


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "0000-01", "2026-1x", "99999999999999999999-1"])
def test_a_month_that_does_not_exist_is_a_422_on_every_month_page(web, month):
    """/risk?month=2026-13 answered 500 (month_period(2026, 13)); /reconcile took it as a month."""
    for url, user in (("/risk", "county"), ("/reconcile", "county"), ("/figures", "county"), ("/late", "county"),
                      ("/risk", "teacher")):
        r = page_client(web, user).get(url, params={"month": month})
        assert r.status_code == 422 and "月份格式应为" in r.text, (url, month, r.status_code)


@pytest.mark.parametrize("bad", [str(2**31), str(2**63), str(10**30), "-1", "0"])
def test_ids_out_of_range_on_the_post_routes_are_a_422(web, bad):
    """Huge ids on the oversight, prevention, census and hand-off POST routes answered 500 (integer out of
    range on PostgreSQL, OverflowError on SQLite); /truancy?pupil= too."""
    for url, user in ((f"/risk/duties/{bad}/done", "school"), (f"/prevention/duties/{bad}/done", "school"),
                      (f"/census/{bad}/act", "township"), (f"/handoffs/{bad}/ack", "township")):
        r = page_client(web, user).post(url, data={"csrf": web["county"].csrf[user], "event": "record_persuasion",
                                                   "reason": "劝返", "received_by": "村委会"}, follow_redirects=False)
        assert r.status_code == 422 and ("超出范围" in r.text or "应为数字" in r.text), (url, r.status_code)
    r = page_client(web, "county").get("/truancy", params={"pupil": bad})
    assert r.status_code == 422 and "学生编号" in r.text, r.status_code
    r = page_client(web, "county").post("/reconcile/accept", data={"csrf": web["county"].csrf["county"],
                                                                   "submission_id": bad}, follow_redirects=False)
    assert r.status_code == 404, r.status_code


def test_document_and_report_paths_cannot_leave_the_archive(web, capsys):
    """A document file row pointing outside the archive (a tampered row) and traversal in fmt: 404, no file."""
    from store.models.documents import Document, DocumentFile

    case_id = _open_case(web)
    secret = web["archive"].parent / "secret.txt"
    secret.write_text("top secret")
    with web["factory"]() as s:
        doc = Document(doc_key=f"case:{case_id}:return_notice:1", version=1, kind="return_notice",  # the county reads its files
                       title="返校通知书", case_id=case_id, event_seq=1, data={}, template_sha256="0" * 64, actor="test",
                       created_at=MONDAY)
        s.add(doc)
        s.flush()
        s.add(DocumentFile(document_id=doc.id, fmt="xlsx", media_type="text/plain", path="../secret.txt",
                           sha256="0" * 64, size=10, actor="test", created_at=MONDAY))
        s.commit()
        doc_id = doc.id
    client, n = web["client"], 0
    r = client.get(f"/api/documents/{doc_id}", params={"fmt": "xlsx"}, headers=bearer(web, "county"))
    n += 1
    assert r.status_code == 404 and "top secret" not in r.text
    for evil in TRAVERSAL + SQLI:
        for url in (f"/documents/{doc_id}.{quote(evil, safe='')}", f"/reports/1.{quote(evil, safe='')}",
                    f"/api/reports/1/{quote(evil, safe='')}", f"/api/attachments/{quote(evil, safe='')}",
                    f"/attachments/{quote(evil, safe='')}", f"/static/{quote(evil)}"):
            r = page_client(web, "county").get(url, headers=bearer(web, "county"))
            n += 1
            assert r.status_code in (404, 422) and "top secret" not in r.text and "root:" not in r.text, (url, r.status_code)
    tried(capsys, "path traversal URLs", n)


def _page_routes():
    from fastapi.routing import APIRoute

    from web.app import routers

    return [r for router in routers() for r in router.routes if isinstance(r, APIRoute) and "GET" in r.methods]


def test_every_get_route_survives_hostile_path_and_query_values(web, capsys):
    """SQL injection, traversal, NUL, huge numbers and odd Unicode in every path and query parameter of
    every GET page and API route, as several roles: never a 5xx, never a leaked traceback."""
    routes = _page_routes()
    assert len(routes) >= 30
    client, count = web["client"], {"n": 0}
    hostile = st.one_of(st.sampled_from(SQLI + TRAVERSAL + ["-1", "0", str(2**63), "1e309", "NaN", "2026-02-30",
                                                            "99999-99", "\x00", "%00", "１２", "<script>", "{{7*7}}"]),
                        st.text(max_size=20))

    @given(route=st.sampled_from(routes), values=st.lists(hostile, min_size=8, max_size=8),
           user=st.sampled_from(["teacher", "school", "township", "county", "operator"]))
    @settings(max_examples=400, **FAST)
    def run(route, values, user):
        params = iter(values)
        path = re.sub(r"\{(\w+)\}", lambda m: quote(next(params), safe=""), route.path)
        query = {p.alias: next(params) for p in route.dependant.query_params}
        assume("\x00" not in "".join(query))
        r = page_client(web, user).get(path, params=query, headers=bearer(web, user), follow_redirects=False)
        count["n"] += 1
        assert r.status_code < 500, (route.path, path, query, user, r.status_code, r.text[:300])
        assert "Traceback" not in r.text

    run()
    tried(capsys, f"hostile GET requests over {len(routes)} routes", count["n"])


# -- formula injection in every export --------------------------------------------------------------
def _formula_free(xlsx: bytes) -> list[str]:
    """Cells of every sheet that start like a formula; asserts none is a formula or typed other than text."""
    found = []
    with zipfile.ZipFile(io.BytesIO(xlsx)) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/") and name.endswith(".xml"):
                assert b"<f>" not in z.read(name) and b"<f " not in z.read(name), name
    book = load_workbook(io.BytesIO(xlsx))
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith(FORMULA_START):
                    assert cell.data_type == "s" and cell.quotePrefix, (cell.coordinate, cell.value)
                    found.append(cell.value)
    return found


def test_exported_documents_xlsx_never_carry_a_formula():
    from documents.context import case_context, report_context, with_number
    from documents.samples import sample_facts, sample_report
    from documents.xlsx import render_xlsx
    from store.policy_files import SHIPPED_POLICIES, read_policy_file

    policy = read_policy_file(SHIPPED_POLICIES / "default.toml")[0]
    for kind in ("absence_register", "return_register"):
        facts = sample_facts(policy, seed=3, returned=kind == "return_register", photos=False)
        facts["pupil"]["name"], facts["pupil"]["address"] = FORMULA, "@SUM(1+1)*cmd|' /C calc'!A0"
        facts["guardians"][0]["phone"], facts["guardians"][0]["name"] = "+86 138 0000 0000", "-2+3"
        ctx = with_number(case_context(kind, facts, event_seq=facts["events"][-1]["seq"], issued_on="2026-11-23",
                                       actor="test"), number=1, year=2026)
        found = _formula_free(render_xlsx(ctx))
        assert FORMULA in found and "+86 138 0000 0000" in found and "-2+3" in found
    for kind, field in (("accountability_sheet", "pupil"), ("spot_check_sheet", "head_teacher")):
        rep = sample_report(kind, seed=3)
        rep["rows"][0][field] = FORMULA
        ctx = with_number(report_context(kind, rep, issued_on="2026-11-23", actor="test"), number=None, year=None)
        assert FORMULA in _formula_free(render_xlsx(ctx))


def test_web_exports_neutralise_a_formula_pupil_name(web):
    with web["factory"]() as s:
        pupil = s.scalar(select(Pupil).where(Pupil.student_no == web["pupils"][0]))
        pupil.name = FORMULA
        s.commit()
    client = web["client"]
    r = client.get("/api/morning-checks/template", params={"fmt": "xlsx"}, headers=bearer(web, "teacher"))
    assert r.status_code == 200 and FORMULA in _formula_free(r.content)
    r = client.get("/api/morning-checks/template", params={"fmt": "csv"}, headers=bearer(web, "teacher"))
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert ["'" + FORMULA] == [c for row in rows for c in row if FORMULA in c]
    assert not any(c.startswith(FORMULA_START) for row in rows for c in row)
    client = page_client(web, "teacher")
    r = client.get("/morning-check/template.csv")
    assert r.status_code == 200 and "'" + FORMULA.replace('"', '""') in r.content.decode("utf-8-sig")


def test_accountability_csv_cells_never_start_like_a_formula(web):
    client = page_client(web, "county")
    r = client.get("/accountability.csv", params={"start": "2026-11-01", "end": "2026-11-16"})
    assert r.status_code == 200
    for row in csv.reader(io.StringIO(r.content.decode("utf-8-sig"))):
        assert not any(c.startswith(FORMULA_START) for c in row), row
    assert csv_safe("=1+1") == "'=1+1" and csv_safe("@x") == "'@x" and csv_safe("\tx") == "'\tx"
    assert csv_safe("张三") == "张三" and csv_safe(-3) == -3
