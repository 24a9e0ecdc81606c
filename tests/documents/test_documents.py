"""Every document kind renders from generated data under every shipped policy (no database).

Each kind is rendered once per policy and shared by the tests through a module fixture: the PDFs
carry the expected Chinese text (pdftotext), embed every font they use (pdffonts), and no
character falls back to a missing-glyph box (the embedded fonts' cmaps cover the whole text).
"""
from __future__ import annotations

import io
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from openpyxl import load_workbook
from pypdf import PdfReader

from documents import catalog, fonts
from documents.catalog import CASE_KINDS, CATALOG, REPORT_KINDS, policy_kinds, producers
from documents.context import case_context, report_context, with_number
from documents.render import RenderError, cn_date, render, render_html
from documents.samples import sample_facts, sample_report
from store.policy_files import SHIPPED_POLICIES, read_policy_file

POLICIES = ("default", "jingbian", "wutaishan")
ISSUED_ON = "2026-11-23"

needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None or shutil.which("pdffonts") is None,
                                   reason="poppler-utils (pdftotext, pdffonts) not installed")


def load_policy(name: str):
    return read_policy_file(SHIPPED_POLICIES / f"{name}.toml")[0]


def case_doc_context(kind: str, policy_name: str, *, seed: int = 7) -> dict:
    policy = load_policy(policy_name)
    facts = sample_facts(policy, seed=seed, returned=kind == "return_register")
    ctx = case_context(kind, facts, event_seq=facts["events"][-1]["seq"], issued_on=ISSUED_ON, actor="test")
    if kind == "proof_of_service":  # the archive fills the served notice in; here, by hand
        ctx["record"]["served"] = {"title": "辍学学生返校通知书", "doc_number": "城关镇政发〔2026〕3号",
                                   "issuer": "城关镇人民政府", "issued_on": "2026-11-20", "document_id": 1}
    return with_number(ctx, number=12, year=2026)


def report_doc_context(kind: str) -> dict:
    return with_number(report_context(kind, sample_report(kind, seed=7), issued_on=ISSUED_ON, actor="test"),
                       number=None, year=None)


def pdf_text(pdf: bytes) -> str:
    return subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()


def pdf_fonts(pdf: bytes, tmp: Path) -> list[dict]:
    path = tmp / "f.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout.splitlines()[2:]
    rows = []
    for line in out:
        cols = line.split()
        # name type... encoding emb sub uni object ID  — the last five columns are fixed
        rows.append({"name": cols[0], "emb": cols[-5], "sub": cols[-4], "uni": cols[-3]})
    return rows


def embedded_cmaps(pdf: bytes) -> dict[str, set[int]]:
    """Code points each embedded (subset) font maps, read from the font programs inside the PDF."""
    reader = PdfReader(io.BytesIO(pdf))
    out: dict[str, set[int]] = {}
    for page in reader.pages:
        for ref in page["/Resources"].get("/Font", {}).values():
            font = ref.get_object()
            name = str(font["/BaseFont"])
            if name in out:
                continue
            descriptor = (font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font)["/FontDescriptor"].get_object()
            stream = next((descriptor[k] for k in ("/FontFile2", "/FontFile3", "/FontFile") if k in descriptor), None)
            assert stream is not None, f"{name} is not embedded"
            tt = TTFont(io.BytesIO(stream.get_object().get_data()))
            out[name] = set(tt.getBestCmap() or {})
    return out


@lru_cache(maxsize=None)
def _rendered(policy_name: str | None, kind: str) -> tuple[dict, bytes]:
    """One render per (policy, kind) per test process: shared by every test that needs it."""
    ctx = report_doc_context(kind) if policy_name is None else case_doc_context(kind, policy_name)
    return ctx, render(ctx, "pdf").content


@pytest.fixture(scope="module")
def rendered():
    return _rendered


def check_fonts(name: str, pdf: bytes, tmp: Path) -> None:
    """Every font is embedded (pdffonts: emb yes) and no character fell back to a missing glyph."""
    rows = pdf_fonts(pdf, tmp)
    assert rows, name
    assert all(r["emb"] == "yes" and r["uni"] == "yes" for r in rows), (name, rows)
    covered = set().union(*embedded_cmaps(pdf).values())
    missing = {ch for ch in pdf_text(pdf) if not ch.isspace() and ord(ch) not in covered}
    assert not missing, f"{name}: no embedded font has {sorted(missing)}"


# -- the catalog ----------------------------------------------------------------------------------
@pytest.mark.parametrize("policy_name", POLICIES)
def test_every_kind_a_policy_asks_for_is_in_the_catalog(policy_name):
    policy = load_policy(policy_name)
    assert policy_kinds(policy) <= set(CATALOG)
    for kind in policy_kinds(policy):
        assert producers(policy, kind), kind


def test_catalog_entries_are_complete():
    template_dir = Path(catalog.__file__).parent / "templates"
    for kind in CATALOG.values():
        assert (template_dir / kind.template).is_file(), kind.id
        assert "pdf" in kind.formats and "html" in kind.formats
        assert set(kind.formats) <= set(catalog.MEDIA_TYPES)
        assert kind.issuer in ("school", "township", "county")
        if kind.layout == "gov":
            assert kind.numbered, f"{kind.id}: a government document carries a 发文字号"
    assert {"monthly_report", "absence_register", "return_register"} <= {k for k, v in CATALOG.items() if "xlsx" in v.formats}


def test_doc_number_has_the_full_year_in_hexagonal_brackets_and_no_leading_zeros():
    assert catalog.TOWNSHIP_SERIES.format("城关镇", 2026, 12) == "城关镇政发〔2026〕12号"
    assert catalog.SCHOOL_SERIES.format("石门", 2026, 3) == "石门校发〔2026〕3号"


def test_dates_are_arabic_without_leading_zeros():
    assert cn_date("2026-01-05") == "2026年1月5日"
    assert cn_date("2026-11-23") == "2026年11月23日"


# -- rendering --------------------------------------------------------------------------------------
@needs_poppler
@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_every_case_kind_renders_under_every_policy(rendered, kind, policy_name, tmp_path):
    """The PDF carries the expected Chinese text, embeds its fonts and has no missing glyph."""
    ctx, pdf = rendered(policy_name, kind)
    assert pdf.startswith(b"%PDF-")
    text = re.sub(r"\s+", "", pdf_text(pdf))
    assert ctx["pupil"]["name"] in text
    assert ctx["school"]["name"] in text or ctx["school"]["short"] in text
    title = {"report_to_township": "情况的报告", "report_to_bureau": "劝返工作的报告", "control_plan": "控辍保学工作方案"}
    assert title.get(kind, CATALOG[kind].name) in text
    if CATALOG[kind].numbered:
        assert ctx["doc"]["doc_number"] in text and "〔2026〕12号" in text
        assert "2026年11月23日" in text
        assert "—1—" in text, "GB/T 9704 page number"
    reader = PdfReader(io.BytesIO(pdf))
    assert [round(float(v)) for v in reader.pages[0].mediabox[2:]] == [595, 842], "A4 portrait"
    check_fonts(f"{policy_name}/{kind}", pdf, tmp_path)


@needs_poppler
@pytest.mark.parametrize("kind", REPORT_KINDS)
def test_every_report_renders(rendered, kind, tmp_path):
    ctx, pdf = rendered(None, kind)
    text = re.sub(r"\s+", "", pdf_text(pdf))
    assert ctx["report"]["unit"]["name"] in text
    assert {"monthly_report": "控辍保学工作月报表", "spot_check_sheet": "随机抽查记录表",
            "accountability_sheet": "责任追究事实材料", "referral_ledger": "辍学学生台账",
            "responsibility_pledge": "控辍保学责任书"}[kind] in text
    size = [round(float(v)) for v in PdfReader(io.BytesIO(pdf)).pages[0].mediabox[2:]]
    assert size == ([842, 595] if CATALOG[kind].landscape else [595, 842]), "A4 landscape for the tables"
    check_fonts(kind, pdf, tmp_path)


@needs_poppler
def test_government_documents_keep_the_gb9704_text_block(rendered, tmp_path):
    """Body text starts at the 28 mm binding margin and stays inside the 156 mm text block."""
    _, pdf = rendered("default", "return_notice")
    path = tmp_path / "n.pdf"
    path.write_bytes(pdf)
    html = subprocess.run(["pdftotext", "-bbox", "-f", "1", "-l", "1", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    words = [(float(a), float(b), float(c), float(d)) for a, b, c, d in
             re.findall(r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)"', html)]
    mm = 72 / 25.4
    body = [w for w in words if 37 * mm <= w[1] <= (37 + 225) * mm]
    assert min(w[0] for w in body) == pytest.approx(28 * mm, abs=1.5)
    assert max(w[2] for w in body) <= (28 + 156) * mm + 1.5


def test_a_missing_field_fails_the_render():
    ctx = case_doc_context("return_notice", "default")
    del ctx["pupil"]["class_name"]
    with pytest.raises(RenderError, match="class_name"):
        render_html(ctx)


def test_text_is_escaped_in_html():
    ctx = case_doc_context("phone_record", "default")
    ctx["record"]["result"] = "<script>alert(1)</script>"
    html = render_html(ctx)
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_html_preview_is_one_self_contained_file():
    html = render_html(case_doc_context("collective_visit_record", "default"))
    assert "<style>" in html and "仿宋_GB2312" in html
    assert not re.search(r'(src|href)="(?!data:)', html), "no external resources"


def test_monthly_report_xlsx_has_merged_two_level_headers_and_the_chart():
    ctx = report_doc_context("monthly_report")
    wb = load_workbook(io.BytesIO(render(ctx, "xlsx").content))
    ws = wb.worksheets[0]  # the PDF's 月报表; the levels below follow
    merged = {str(r) for r in ws.merged_cells.ranges}
    assert "A1:U1" in merged or any(r.startswith("A1:") for r in merged), "merged title row"
    heads = {ws.cell(row=3, column=c).value for c in range(1, ws.max_column + 1)}
    assert {"本月末在办案件（按处置环节）", "本月变动", "辍学"} <= heads
    subs = {ws.cell(row=4, column=c).value for c in range(1, ws.max_column + 1)}
    assert {"新增", "复学", "辍学率", "合计"} <= subs
    assert any(r.startswith("C3:") for r in merged), "the step header spans its sub-columns"
    assert ws._images, "the chart of the month is in the sheet"
    assert "每日数据" in wb.sheetnames


@pytest.mark.parametrize("kind", ["absence_register", "return_register", "spot_check_sheet", "accountability_sheet"])
def test_tables_export_to_xlsx(kind):
    ctx = case_doc_context(kind, "default") if kind in CASE_KINDS else report_doc_context(kind)
    ws = load_workbook(io.BytesIO(render(ctx, "xlsx").content)).active
    assert ws.cell(row=1, column=1).value
    assert ws.max_row >= 5


def test_rendering_the_same_context_twice_gives_the_same_bytes(rendered):
    ctx, pdf = rendered("default", "return_notice")
    assert render(ctx, "pdf").content == pdf


@needs_poppler
def test_the_weasyprint_tuning_takes_and_changes_nothing_a_reader_sees(rendered):
    """Every part of documents.weasy_tuning applies to the installed WeasyPrint (an upgrade that
    moves its internals fails here instead of silently losing the speed), and a document rendered
    tuned has the text, fonts and glyph coverage of the same document from WeasyPrint as shipped."""
    from documents import weasy_tuning

    ctx, tuned = rendered("wutaishan", "legal_notice")
    assert weasy_tuning.applied() == {"compression", "font_blobs", "subsets", "array_types"}
    with weasy_tuning.plain():
        assert weasy_tuning.applied() == set()
        shipped = render(ctx, "pdf").content
    assert weasy_tuning.applied() == {"compression", "font_blobs", "subsets", "array_types"}
    assert pdf_text(tuned) == pdf_text(shipped)
    assert embedded_cmaps(tuned) == embedded_cmaps(shipped)


# -- fonts --------------------------------------------------------------------------------------------
def test_standard_font_names_resolve_to_chinese_fonts():
    plan = fonts.font_plan()
    for role in ("title", "body", "heading"):
        assert plan[role].family, role
        assert fonts.font_cmap(plan[role].file, plan[role].family) >= {ord(c) for c in "控辍保学返校通知书"}


def test_font_check_says_when_harfbuzz_subset_is_missing(monkeypatch):
    monkeypatch.setattr(fonts, "harfbuzz_subset_available", lambda: False)
    warnings = fonts.check()
    assert any("libharfbuzz-subset" in w and "40" in w for w in warnings)


def test_font_check_is_quiet_on_a_complete_machine():
    if not fonts.harfbuzz_subset_available():
        pytest.skip("libharfbuzz-subset0 not installed here")
    assert fonts.check() == []


def test_a_font_folder_is_added_to_the_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("BAOXUE_FONT_DIR", str(tmp_path))
    fonts.configure.cache_clear()
    try:
        conf = fonts.configure()
        assert conf != fonts.FONTS_CONF
        text = conf.read_text(encoding="utf-8")
        assert f"<dir>{tmp_path}</dir>" in text and str(fonts.FONTS_CONF) in text
    finally:
        monkeypatch.delenv("BAOXUE_FONT_DIR")
        fonts.configure.cache_clear()
        fonts.configure()
