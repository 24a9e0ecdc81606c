"""One read model per report: for a month and a scope, the page, the API, the filed 月报表 (XLSX
cells, PDF text), the Prefect artifact's Markdown and the reconciliation show the same numbers —
the numbers filed, even after the ledger has moved on. And the 季查 sheet prints exactly the sealed
draw, from a seed nobody can predict (on both databases)."""
from __future__ import annotations

import io
import re
from datetime import date, datetime

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select

from store.reporting import reconcile as rc
from store.reporting import reports as rp
from store.cases.context import CaseContext
from store.db import transaction
from store.models import Jurisdiction, School
from store.models.reports import ReportFiling
from tests.engine_helpers import morning, sweep
from tests.web_support import Clock, build_county, in_process_app, pupils_of_class
from web.deps import SESSION_COOKIE

DAYS = [date(2026, 11, d) for d in (16, 17, 18, 19, 20)]
FILED_AT = datetime(2026, 11, 23, 16, 0)


@pytest.fixture
def county(factory, tmp_path, monkeypatch):
    """A county with five pupils of one class absent all week (dropouts by Wednesday), the month
    filed by the school and the county on the 23rd, then two more pupils absent on the 24th-26th."""
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    with factory() as s:
        c = build_county(s)
        s.commit()
        nos = [p.student_no for p in pupils_of_class(s, c.class_ids[0])]
        home = c.school_codes[0]
    for day in DAYS:
        morning(factory, home, day, nos[:5])
        sweep(factory, day)
    with transaction(factory) as s:
        policy = CaseContext(s).policies.get("default")
        period = rp.month_period(2026, 11)
        for level in ("school", "county"):
            rp.file_level(s, policy=policy, level=level, period=period, as_of=FILED_AT, actor="test")
    for d in (24, 25, 26):  # after the filing: more dropouts in the ledger, not in the filed month
        morning(factory, home, date(2026, 11, d), nos[:6])
        sweep(factory, date(2026, 11, d))
    clock = Clock(datetime(2026, 11, 27, 10, 0))
    app = in_process_app(factory, tmp_path / "archive", clock)
    with TestClient(app) as client:
        yield {"client": client, "county": c, "factory": factory, "home": home, "archive": tmp_path / "archive"}


def _percent(text: str) -> float:
    return float(text.strip().rstrip("%"))


def _surfaces(county, username: str, level: str, code: str) -> dict[str, tuple[int, float]]:
    """(dropouts, dropout rate in %) as each surface shows them for 2026-11."""
    import documents
    from documents.archive import file_path

    client, factory = county["client"], county["factory"]
    out = {}
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, county["county"].cookies[username])
    html = client.get("/figures", params={"month": "2026-11"}).text
    n = re.search(r'<div class="big red">(\d+)</div>未返校（辍学）', html).group(1)
    rate = re.search(r'<div class="big">([\d.]+%)</div>辍学率', html).group(1)
    out["page"] = (int(n), _percent(rate))
    client.cookies.clear()
    api = client.get("/api/figures/monthly", params={"month": "2026-11"},
                     headers={"Authorization": f"Bearer {county['county'].tokens[username]}"}).json()["total"]
    out["api"] = (api["dropouts"], api["dropout_rate"] * 100)
    with transaction(factory) as s:
        filing = s.scalar(select(ReportFiling).where(ReportFiling.level == level, ReportFiling.scope_code == code,
                                                     ReportFiling.period == "2026-11"))
        out["filed"] = (filing.figures["dropouts"], filing.figures["dropout_rate"] * 100)
        md = rp.figures_markdown(filing)
        m = re.search(r"辍学 dropouts: (\d+); 辍学率 dropout rate: ([\d.]+%)", md)
        out["artifact"] = (int(m.group(1)), _percent(m.group(2)))
        scope = rp.scope_of(s, level, code)
        ledger = rc.ledger_cases(s, list(scope.school_ids), "2026-11", filing.filed_at)
        n_rec = sum(len(v["dropouts"]) for v in ledger.values())
        out["reconciliation"] = (n_rec, round(n_rec / filing.figures["enrolled"] * 100, 4))
        for fmt in ("xlsx", "pdf"):
            doc = documents.render_report(s, "monthly_report", scope=f"{level}:{code}", period="2026-11", actor="test",
                                          fmt=fmt, now=datetime(2026, 11, 27, 10, 0))
            data = file_path(doc).read_bytes()
            if fmt == "xlsx":
                ws = load_workbook(io.BytesIO(data)).active
                total = next(r for r in ws.iter_rows(values_only=True) if r[0] == "合计")
                assert ws.cell(row=5, column=15).number_format == "0.00%"  # the rate: a number shown as a percentage
                out["xlsx"] = (total[13], total[14] * 100)
            else:
                text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
                row = re.search(r"合计((?:\s+\d+)+)\s+([\d.]+%)", text)
                out["pdf"] = (int(row.group(1).split()[-1]), _percent(row.group(2)))
    return out


@pytest.mark.parametrize("username,level", [("school", "school"), ("county", "county")])
def test_every_surface_shows_the_filed_figures_of_a_filed_month(county, username, level):
    with county["factory"]() as s:
        code = county["home"] if level == "school" else s.scalar(
            select(ReportFiling.scope_code).where(ReportFiling.level == "county"))
        scope = rp.scope_of(s, level, code)
        live = rp.ledger_figures(s, scope, rp.month_period(2026, 11), datetime(2026, 11, 27, 10))
    got = _surfaces(county, username, level, code)
    filed_n, filed_rate = got["filed"]
    assert filed_n == 5 and live["dropouts"] == 6  # the ledger moved on after the filing
    for surface, (n, rate) in got.items():
        assert n == filed_n, (surface, got)
        assert rate == pytest.approx(filed_rate, abs=0.01), (surface, got)


def test_an_unfiled_month_shows_the_ledger_at_its_end_on_the_page_and_the_api(county):
    client = county["client"]
    client.cookies.set(SESSION_COOKIE, county["county"].cookies["township"])
    html = client.get("/figures", params={"month": "2026-11"}).text
    n = int(re.search(r'<div class="big red">(\d+)</div>未返校（辍学）', html).group(1))
    with county["factory"]() as s:
        scope = rp.scopes(s, "township")[0]
        live = rp.ledger_figures(s, scope, rp.month_period(2026, 11), datetime(2026, 11, 27, 10))
    assert n == live["dropouts"] == 6


def test_the_spot_check_sheet_lists_exactly_the_sealed_classes(factory, tmp_path):
    from documents.reports import ScopeArg as Scope, spot_check_sheet

    with factory() as s:
        build_county(s)
        s.commit()
    with transaction(factory) as s:
        check, _ = rp.spot_check(s, quarter="2026Q4", fraction=0.5, as_of=FILED_AT, actor="test")
        county_code = s.scalar(select(Jurisdiction.code).where(Jurisdiction.level == "county"))
        sheet = spot_check_sheet(s, Scope("county", county_code), "2026Q4")
        names = dict(s.execute(select(School.code, School.name)).all())
        sealed = sorted((names[code], klass) for code, classes in check.sample["classes"].items() for klass in classes)
        assert sorted((r["school"], r["class_name"]) for r in sheet["rows"]) == sealed
        assert sheet["seed"] == check.seed and sheet["seal"] == check.sample_sha256
        again = spot_check_sheet(s, Scope("county", county_code), "2026Q4")  # a re-render: the same sample
        assert again["rows"] == sheet["rows"]


def test_two_draws_for_the_same_quarter_on_fresh_databases_differ(factory):
    """Each draw starts from an empty database (the county built, drawn, then rolled back): the
    seeds differ, so nobody can predict the sample from the county and the quarter; within one
    database the quarter's draw is sealed (a rerun returns it)."""
    seeds = []
    for _ in range(2):
        with factory() as s:
            build_county(s, sessions=False)
            check, created = rp.spot_check(s, quarter="2026Q4", fraction=0.5, as_of=FILED_AT, actor="test")
            assert created and rp.seal(check.sample, check.seed) == check.sample_sha256
            seeds.append(check.seed)
            again, created = rp.spot_check(s, quarter="2026Q4", fraction=0.5, as_of=FILED_AT, actor="test")
            assert not created and again.seed == check.seed and again.sample == check.sample
            s.rollback()
    assert seeds[0] != seeds[1]


def _html_rows(html: str) -> dict[str, list[str]]:
    """The 月报表's table as the HTML document shows it: first cell → the other cells' texts."""
    table = html.split('<table class="grid">', 1)[1].split("</table>", 1)[0]
    rows = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


def _model_line(f: dict) -> list:
    """A 月报表 row's figures straight from the read model's keys (``ledger_figures_many``)."""
    from machines.states import LADDER
    from machines.vocabulary import REPORTED_GROUPS

    steps = [f["open_by_step"][s.value] for s in LADDER]
    return ([f["enrolled"], *steps, sum(steps), f["opened"], f["returned"], f["excused"], f["escalated"], f["dropouts"],
             f["dropout_rate"], *(f["special_groups"][g] for g in REPORTED_GROUPS)])


def _sheet_lines(ws, n_names: int) -> dict[tuple, list]:
    assert "在校生数" in [c.value for c in ws[3]]
    out = {}
    for r in ws.iter_rows(min_row=5, values_only=True):  # the table's rows down to its 合计
        out[tuple(r[:n_names])] = list(r[n_names:])
        if r[0] == "合计":
            return out
    raise AssertionError("no 合计 row")


@pytest.mark.parametrize("level", ["county", "township"])
def test_the_monthly_xlsx_is_the_pdfs_table_and_one_sheet_per_level_below_every_cell_the_read_model(county, level):
    """The XLSX of the 月报表 and its HTML/PDF render the same archived figures: every figure cell of the
    first sheet equals the HTML table's cell (the rate as printed) and the read model's number; the
    sheets below (a county's schools and classes, a township's classes) hold each unit's figures from
    ``ledger_figures_many`` at the moment the report describes — the filed moment for the filed county —
    and their 合计 is the report's total and the sum of their rows."""
    import documents
    from documents.archive import file_path
    from documents.formats import pct

    factory = county["factory"]
    period = rp.month_period(2026, 11)
    with transaction(factory) as s:
        code = rp.scopes(s, level)[0].code
        scope = rp.scope_of(s, level, code)
        files = {fmt: file_path(documents.render_report(s, "monthly_report", scope=f"{level}:{code}", period="2026-11",
                                                        actor="test", fmt=fmt, now=datetime(2026, 11, 27, 10, 0))).read_bytes()
                 for fmt in ("xlsx", "html")}
        model = rp.figures_for(s, scope, period, datetime(2026, 11, 27, 10, 0))
        as_of = datetime.fromisoformat(model["as_of"])
        schools = [sc for sc in rp.scopes(s, "school") if set(sc.school_ids) <= set(scope.school_ids)]
        classes = [c for sc in schools for c in rp.row_scopes(s, sc)]
        live = rp.ledger_figures_many(s, [scope, *schools, *classes], period, as_of)
        town_of = {sc.code: next(t.name for t in rp.scopes(s, "township") if set(sc.school_ids) <= set(t.school_ids))
                   for sc in schools}
        school_name = {sc.school_ids[0]: sc.name for sc in schools}
    assert (level == "county") == ("filed_at" in model)  # the county filed its month, the township did not
    book = load_workbook(io.BytesIO(files["xlsx"]))
    html = _html_rows(files["html"].decode())
    first = book.worksheets[0]
    row_label = "乡镇" if level == "county" else "学校"
    assert first.title == f"月报表（{row_label}）" and first["A3"].value == row_label
    assert {str(m) for m in first.merged_cells.ranges} >= {"A3:A4", "B3:B4"}  # the PDF's two-row table head
    assert first.print_title_rows == "$3:$4" and first.page_setup.orientation == "landscape"
    lines = _sheet_lines(first, 1)
    expected = {(r["name"],): _model_line(r) for r in model["rows"]} | {("合计",): _model_line(model)}
    assert list(lines) == list(expected)
    rate = len(_model_line(model)) - 4  # 辍学率: before the three special groups
    for key, cells in lines.items():
        assert cells[:len(expected[key])] == expected[key], key
        shown = [pct(v) if i == rate else str(v) for i, v in enumerate(cells[:len(expected[key])])]
        assert shown == html[key[0]], key
    # the levels below, one sheet each
    below = ["各学校", "各班级"] if level == "county" else ["各班级"]
    assert book.sheetnames == [first.title, *below, "每日数据"]
    figures = iter(live[1:])
    school_lines = {(town_of[sc.code], sc.name): _model_line(next(figures)) for sc in schools}
    class_lines = {((town_of[sc.code],) if level == "county" else ()) + (school_name[c.school_ids[0]], c.name):
                   _model_line(f) for sc in schools for c, f in zip([c for c in classes if c.school_ids == sc.school_ids],
                                                                   figures)}
    total = _model_line(live[0])
    assert total == _model_line(model), "the sheets below describe the same moment as the report"
    for title, want in zip(below, [school_lines, class_lines] if level == "county" else [class_lines]):
        ws = book[title]
        n = len(next(iter(want)))
        got = _sheet_lines(ws, n)
        assert ws.freeze_panes == f"{'ABCD'[n]}5" and ws.print_title_rows == "$3:$4"
        assert [c.value for c in ws[3]][:n] == ["乡镇", "学校", "班级"][:n] if level == "county" else ["学校", "班级"]
        totals = got.pop(("合计",) + ("",) * (n - 1), None) or got.pop(("合计",) + (None,) * (n - 1))
        assert got == want, title
        assert totals == total, title
        for i, v in enumerate(total):
            if i != rate:
                assert sum(row[i] for row in got.values()) == v, (title, i)
        assert ws.cell(row=5, column=n + 1 + rate).number_format == "0.00%"
