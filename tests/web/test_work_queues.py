"""The work queues (issue 18 item 3) on both databases: the stuck list's tabs by kind, filters by
school, owner and step, paging done by the database, distinct references per kind, each linking to
its own record; the case list's search by name, 学籍号 or ID number; the watch list paged; the
XLSX export of what the filters show; a school sees only its own; bad parameters are refused."""
from __future__ import annotations

import io
import re
from datetime import date, datetime, time

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select

from store.access.scope import Scope
from store.cases.advance import advance
from store.cases.context import CaseContext
from store.cases.intake import MarkIn, record_morning_check
from store.models import Case, Duty, Pupil, School
from store.models.risk import WatchDuty, WatchEntry
from store.prevention import risk
from store.reporting import work_queues as wq
from tests.web_support import Clock, build_county, in_process_app, pupils_of_class
from web.deps import SESSION_COOKIE

DAYS = [date(2026, 11, d) for d in (16, 17, 18)]
NOW = datetime(2026, 11, 23, 10, 0)


@pytest.fixture
def site(factory, tmp_path):
    with factory() as s:
        county = build_county(s)
        schools = s.scalars(select(School).order_by(School.id)).all()
        home = next(x for x in schools if x.code == county.school_codes[0])
        far = next(x for x in schools if x.code == county.school_codes[2])
        pupils = s.scalars(select(Pupil).order_by(Pupil.id)).all()
        for p in pupils:  # every pupil on the watch list (more than a page of 20)
            p.special_groups = ["left_behind"]
        mine = pupils_of_class(s, county.class_ids[0])
        mine[1].name = "赵明远"
        s.commit()
        far_pupils = s.scalars(select(Pupil).where(Pupil.school_id == far.id).order_by(Pupil.id)).all()
        for d in DAYS:  # absent three days: cases with overdue duties in two schools
            for school, group in ((home, mine[1:4]), (far, far_pupils[:2])):
                record_morning_check(s, CaseContext(s), school_code=school.code, day=d, source="cli", submitted_by="t",
                                     marks=[MarkIn(p.student_no, "缺勤") for p in group], now=datetime.combine(d, time(8)))
                s.commit()
            advance(factory, datetime.combine(d, time(9, 30)))
        risk.refresh_watch_list(s, as_of=datetime(2026, 11, 2, 10, 0))  # their duties fell due before NOW
        s.commit()
        ids = {"home": home.id, "far": far.id, "zhao": mine[1].id}
    app = in_process_app(factory, tmp_path / "archive", Clock(NOW))
    with TestClient(app) as client:
        yield {"client": client, "county": county, "factory": factory, "ids": ids}


def _as(site, user):
    site["client"].cookies.clear()
    site["client"].cookies.set(SESSION_COOKIE, site["county"].cookies[user])
    return site["client"]


def _refs(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<a href="([^"]+)" class="ref">([^<]+)</a>', page)


def test_the_stuck_list_is_a_queue_per_kind_with_its_own_references(site):
    c = _as(site, "county")
    page = c.get("/stuck").text  # the dropouts first: the case ladder's tab is the default
    refs = _refs(page)
    assert refs and all(h.startswith("/cases/") and t.startswith("案件 #") for h, t in refs)
    assert re.search(r'class="on" data-kind="case">控辍案件（\d+）', page)
    watch = _refs(c.get("/stuck?kind=watch&per=100").text)
    assert watch and all(re.fullmatch(r"/risk/entries/\d+", h) and t.startswith("关注 #") for h, t in watch)
    entry = int(watch[0][0].rsplit("/", 1)[1])
    detail = c.get(f"/risk/entries/{entry}")
    assert detail.status_code == 200 and f"关注 #{entry}" in detail.text and "帮扶任务" in detail.text
    everything = _refs(c.get("/stuck?kind=all&per=100").text)
    assert {t.split(" ")[0] for _, t in everything} == {"案件", "关注"}


def test_the_stuck_list_filters_sorts_and_pages_in_the_database(site, factory):
    c = _as(site, "county")
    with factory() as s:
        full = wq.stuck_queue(s, Scope(), NOW, kind="watch", paging=wq.Paging(1, 100))
        assert full["total"] == len(full["rows"]) > 20
        first = wq.stuck_queue(s, Scope(), NOW, kind="watch", paging=wq.Paging(1, 20))
        second = wq.stuck_queue(s, Scope(), NOW, kind="watch", paging=wq.Paging(2, 20))
        assert [r["duty_id"] for r in first["rows"] + second["rows"]] == [r["duty_id"] for r in full["rows"]][:40]
        assert first["has_next"] and not first["has_prev"] and first["pages"] == -(-full["total"] // 20)
        owner = full["rows"][0]["owner_id"]
        mine = wq.stuck_queue(s, Scope(), NOW, kind="watch", owner_id=owner, paging=wq.Paging(1, 100))
        assert mine["rows"] and {r["owner_id"] for r in mine["rows"]} == {owner}
        by_owner = wq.stuck_queue(s, Scope(), NOW, kind="watch", sort="owner", paging=wq.Paging(1, 100))["rows"]
        assert [r["owner"] for r in by_owner] == sorted(r["owner"] for r in by_owner)
    page = c.get("/stuck?kind=watch&per=20").text
    assert len(_refs(page)) == 20 and 'rel="next"' in page and f"共 {full['total']} 条" in page
    page2 = c.get("/stuck?kind=watch&per=20&page=2").text
    assert not set(_refs(page)) & set(_refs(page2))
    home = c.get(f"/stuck?kind=case&school={site['ids']['home']}").text
    with factory() as s:
        home_school = s.get(School, site["ids"]["home"]).name
        far_school = s.get(School, site["ids"]["far"]).name
    assert home_school in home and far_school not in home.split('id="queue"')[1]
    step = c.get("/stuck?kind=case&step=absent").text
    assert "欠办事项" in step or "没有符合条件" in step


def test_the_lists_export_what_the_filters_show_with_chinese_headers(site, factory):
    c = _as(site, "county")
    r = c.get(f"/stuck.xlsx?kind=case&school={site['ids']['home']}")
    assert r.status_code == 200 and "filename*=UTF-8''" in r.headers["content-disposition"]
    assert r.headers["content-disposition"].endswith(".xlsx")
    ws = load_workbook(io.BytesIO(r.content)).active
    assert [c.value for c in ws[3]] == wq.STUCK_HEADERS
    shown = _refs(c.get(f"/stuck?kind=case&school={site['ids']['home']}&per=100").text)
    exported = [row[1] for row in ws.iter_rows(min_row=4, values_only=True) if row[1] and str(row[1]).startswith("案件")]
    assert exported == [t for _, t in shown]
    # every cell of every row is the queue's row for the same filters (the streamed writer loses nothing),
    # numbers stay numbers, and the sheet keeps its frozen, repeated header, widths and landscape print set-up
    with factory() as s:
        items = wq.stuck_queue(s, Scope(), NOW, kind="case", school_id=site["ids"]["home"], paging=wq.Paging(1, 5000),
                               masked=True)["rows"]
    body = [list(row) for row in ws.iter_rows(min_row=4, max_row=3 + len(items), values_only=True)]
    assert body == [[v if v != "" else None for v in row] for row in wq.stuck_export_rows(items)]
    assert body and all(isinstance(row[-1], (int, float)) for row in body)  # 逾期（小时） a number, not text
    assert ws.cell(row=4 + len(items), column=1).value == f"共 {len(items)} 行。"
    assert ws.freeze_panes == "A4" and ws.print_title_rows == "$3:$3" and ws.page_setup.orientation == "landscape"
    assert ws.column_dimensions["B"].width >= 8 and ws["A4"].border.left.style == "thin"
    cases = load_workbook(io.BytesIO(c.get("/cases.xlsx?q=赵明远").content)).active
    assert [c.value for c in cases[3]] == wq.CASE_HEADERS
    assert [row[1] for row in cases.iter_rows(min_row=4, max_row=4, values_only=True)] == ["赵*远"]  # masked for the county
    watch = load_workbook(io.BytesIO(c.get("/risk.xlsx").content)).active
    assert [c.value for c in watch[3]] == wq.WATCH_HEADERS


def test_an_export_says_whether_it_holds_the_whole_list(site, factory, monkeypatch):
    """An export of a list that fits its limit ends with 共 N 行 — also when the list is longer than the pages'
    count cap (it used to say 仅导出前 N 行 then); one row over the limit, it says it stopped. The stuck list in
    due order reads one row past the limit; regrouped by owner it is the COUNT_CAP longest overdue, and says so
    when the list holds more."""
    from web import pages_queues

    monkeypatch.setattr(wq, "COUNT_CAP", 1)
    c = _as(site, "county")
    with factory() as s:
        n_stuck = len(wq.stuck_queue(s, Scope(), NOW, kind="case", paging=wq.Paging(1, 1000))["rows"])
        n_cases = len(wq.case_queue(s, Scope(), NOW, paging=wq.Paging(1, 1000))["rows"])
        n_watch = len(wq.watch_queue(s, Scope(), NOW, paging=wq.Paging(1, 1000))["rows"])
    assert min(n_stuck, n_cases, n_watch) > 2

    def exported(path, limit):
        monkeypatch.setattr(pages_queues, "EXPORT_ROWS", limit)
        ws = load_workbook(io.BytesIO(c.get(path).content)).active
        rows = [r for r in ws.iter_rows(min_row=4, values_only=True)]
        return len(rows) - 1, rows[-1][0]

    for path, n in (("/stuck.xlsx?kind=case", n_stuck), ("/cases.xlsx", n_cases), ("/risk.xlsx", n_watch)):
        assert exported(path, n) == (n, f"共 {n} 行。"), path
        assert exported(path, n - 1) == (n - 1, f"注：仅导出前 {n - 1} 行，请缩小筛选范围后再导出其余部分。"), path
    assert exported("/stuck.xlsx?kind=case&sort=owner", n_stuck) == (1, "注：仅导出前 1 行，请缩小筛选范围后再导出其余部分。")
    monkeypatch.setattr(wq, "COUNT_CAP", 2000)
    assert exported("/stuck.xlsx?kind=case&sort=owner", n_stuck) == (n_stuck, f"共 {n_stuck} 行。")


def test_the_case_list_searches_by_name_number_or_id_and_pages(site, factory):
    c = _as(site, "school")
    with factory() as s:
        zhao = s.get(Pupil, site["ids"]["zhao"])
        no, idn = zhao.student_no, zhao.id_number
    for q in ("赵明远", "赵明", no, idn):
        page = c.get("/cases", params={"q": q}).text
        assert len(_refs(page)) == 1 and "赵明远" in page, q
        table = page.split('id="queue"')[1].split("</table>")[0]
        assert idn not in table and idn[-4:] in table  # the list shows the ID number masked
    page = c.get("/cases").text
    assert "学籍号" in page and "下一截止" in page and "已逾期" in page
    assert len(_refs(c.get("/cases?all=1&per=20").text)) <= 20
    with factory() as s:  # sort by the next deadline: each case once, soonest first
        due = wq.case_queue(s, Scope(), NOW, sort="due", paging=wq.Paging(1, 100))["rows"]
        assert len({r["id"] for r in due}) == len(due) > 0
        assert [r["due_at"] for r in due] == sorted(r["due_at"] for r in due)
        nxt = {cid: min(d for d, in s.execute(select(Duty.due_at).where(Duty.case_id == cid,
                                                                          Duty.status.in_(("open", "overdue")))))
               for cid in (r["id"] for r in due)}
        assert all(r["due_at"] == nxt[r["id"]] for r in due)


def test_a_school_sees_only_its_own_in_every_queue(site, factory):
    c = _as(site, "school")
    with factory() as s:
        own = set(s.scalars(select(Case.id).where(Case.school_id == site["ids"]["home"])))
        own_entries = set(s.scalars(select(WatchEntry.id).where(WatchEntry.school_id == site["ids"]["home"])))
    stuck = {int(h.rsplit("/", 1)[1]) for h, _ in _refs(c.get("/stuck?kind=case&per=100").text)}
    assert stuck and stuck <= own
    cases = {int(h.rsplit("/", 1)[1]) for h, _ in _refs(c.get("/cases?all=1&per=100").text)}
    assert cases == own
    risky = {int(h.rsplit("/", 1)[1]) for h, _ in _refs(c.get("/risk?per=100").text)}
    assert risky == own_entries
    # another school's school filter or watch entry is not reachable
    assert not _refs(c.get(f"/stuck?kind=case&school={site['ids']['far']}").text)
    with factory() as s:
        far_entry = s.scalar(select(WatchEntry.id).where(WatchEntry.school_id == site["ids"]["far"]))
    assert c.get(f"/risk/entries/{far_entry}").status_code == 404


def test_the_watch_list_is_paged_and_marks_overdue_duties(site, factory):
    c = _as(site, "county")
    with factory() as s:
        total = s.scalar(select(WatchEntry.id).where(WatchEntry.until.is_(None)).order_by(WatchEntry.id.desc()).limit(1))
        n = len(s.scalars(select(WatchEntry.id).where(WatchEntry.until.is_(None))).all())
        late = s.scalar(select(WatchDuty.id).limit(1))
    assert total and n > 20 and late
    page = c.get("/risk?per=20").text
    assert len(_refs(page)) == 20 and f"共 {n} 条" in page and "已逾期" in page and "baoxue risk" not in page
    pages = [_refs(c.get(f"/risk?per=20&page={k}").text) for k in (1, 2, 3)]
    assert [len(p) for p in pages] == [20, 20, n - 40] and len({r for p in pages for r in p}) == n


def test_bad_parameters_are_refused(site):
    c = _as(site, "county")
    for query in ("kind=bogus", "page=0", "page=99999", "per=7", "per=30", "school=99999999999", "owner=-1",
                  "step=x;drop", "sort=name"):
        assert c.get(f"/stuck?{query}").status_code == 422, query
    assert c.get("/cases?q=" + "x" * 41).status_code == 422
    assert c.get("/cases?state=nope").status_code == 422
    assert c.get("/risk?page=-1").status_code == 422
    assert c.get("/cases?q=%25").status_code == 200  # a wildcard is a character, not a pattern


def test_print_the_days_documents_as_one_pdf(site, factory, tmp_path):
    """打印今日文书: the PDFs issued today at the reader's school, merged; another school's are not in it."""
    from pypdf import PdfReader, PdfWriter

    from store.models.documents import Document, DocumentFile

    archive = tmp_path / "archive"
    archive.mkdir(exist_ok=True)
    with factory() as s:
        cases = {sid: s.scalar(select(Case.id).where(Case.school_id == sid)) for sid in (site["ids"]["home"], site["ids"]["far"])}
        for n, (sid, case_id) in enumerate([*cases.items(), (site["ids"]["home"], cases[site["ids"]["home"]])]):
            w = PdfWriter()
            for _ in range(n + 1):
                w.add_blank_page(width=595, height=842)
            path = archive / f"doc{n}.pdf"
            with open(path, "wb") as fh:
                w.write(fh)
            doc = Document(doc_key=f"case:{case_id}:return_notice:{n}", version=1, kind="return_notice",
                           title="辍学学生返校通知书", case_id=case_id, event_seq=n + 1, data={}, template_sha256="x" * 64,
                           actor="t", created_at=NOW.replace(hour=9, minute=n))
            s.add(doc)
            s.flush()
            s.add(DocumentFile(document_id=doc.id, fmt="pdf", media_type="application/pdf", path=path.name,
                               sha256="y" * 64, size=path.stat().st_size, actor="t", created_at=doc.created_at))
        s.commit()
    r = _as(site, "school").get("/print/documents.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert len(PdfReader(io.BytesIO(r.content)).pages) == 1 + 3  # doc0 (1 page) and doc2 (3 pages): not the far school's
    assert "filename*=UTF-8''" in r.headers["content-disposition"] and ".pdf" in r.headers["content-disposition"]
    assert _as(site, "school").get("/print/documents.pdf?day=2026-11-20").status_code == 404  # nothing that day
    assert _as(site, "county").get("/print/documents.pdf").status_code == 403


@pytest.mark.parametrize("at", [datetime(2026, 11, 30, 17, 0), datetime(2026, 1, 2, 3, 4, 59, 999_999),
                                datetime(2026, 11, 30, 17, 5, tzinfo=__import__("zoneinfo").ZoneInfo("Asia/Shanghai"))])
def test_an_export_writes_a_due_time_to_the_minute_as_strftime_did(at):
    assert wq.minute(at) == at.strftime("%Y-%m-%d %H:%M")
