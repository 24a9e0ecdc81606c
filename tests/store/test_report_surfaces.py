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
                out["xlsx"] = (total[13], _percent(total[14]))
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
