"""Every document kind's HTML stays byte-identical (issue 20, the render speed work).

The renderer's speed-ups (documents/render.py, the macros) must not change one byte a reader or an
archive sees: every kind is rendered from fixed generated contexts (case kinds under every shipped
policy, the reports, the census, truancy and exemption documents), as preview (stylesheet inlined)
and as the PDF's input, and its SHA-256 compared with ``render_golden.json``, written from the
renderer before the work began. A plain shared Jinja2 Environment (bench.documents' floor) must
render the same bytes too.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from documents import catalog
from documents.context import case_context, issuer_info, report_context, trace_line, with_number
from documents.render import render_html
from documents.samples import sample_facts, sample_report
from store.policy_files import SHIPPED_POLICIES, read_policy_file

GOLDEN = Path(__file__).with_name("render_golden.json")
ISSUED_ON = "2026-11-23"


def _policy(name: str):
    return read_policy_file(SHIPPED_POLICIES / f"{name}.toml")[0]


def _case(kind: str, policy: str, seed: int) -> dict:
    facts = sample_facts(_policy(policy), seed=seed, returned=kind == "return_register")
    ctx = case_context(kind, facts, event_seq=facts["events"][-1]["seq"], issued_on=ISSUED_ON, actor="golden")
    if kind == "proof_of_service":
        ctx["record"]["served"] = {"title": "辍学学生返校通知书", "doc_number": "城关镇政发〔2026〕3号",
                                   "issuer": "城关镇人民政府", "issued_on": "2026-11-20", "document_id": 1}
    return with_number(ctx, number=seed, year=2026)


def _census() -> dict:
    from documents.census import census_context

    facts = sample_facts(_policy("default"), seed=5, photos=False)
    facts = {"child": {"name": "王小明", "gender": "男", "birth_date": "2015-03-09", "id_number_masked": "6108**********1234",
                       "age": 11, "guardian": "王军 <监护人>"},
             "school": facts["school"], "township": facts["township"], "county": facts["county"],
             "village": {"name": "河口村"},
             "people": {"school_contact": {"name": "李校长", "phone": "13900001111"}, "village_contact": None},
             "census": {"id": 3, "ref": "排查-2026-3", "reference_date": "2026-09-01", "policy": "default@2"}}
    return with_number(census_context("enrolment_notice", facts, issued_on=ISSUED_ON, actor="golden"), number=4, year=2026)


def _truancy() -> dict:
    from datetime import date

    from documents.truancy_warning import warning_context

    facts = sample_facts(_policy("default"), seed=6, photos=False)
    tier = SimpleNamespace(school_year=2026, id=9, tier=2, occurrence=2, policy="default@2")
    rows = [{"occurrence": 1, "first_day": date(2026, 10, 12), "action": "班主任电话联系家长"},
            {"occurrence": 2, "first_day": date(2026, 11, 3), "action": "班主任书面警告 & 个别谈话"}]
    return warning_context(facts, tier, rows, issued_on=ISSUED_ON, actor="golden")


def _exemption() -> dict:
    kind = catalog.get("exemption_decision")
    facts = sample_facts(_policy("default"), seed=8, photos=False)
    facts = {k: facts[k] for k in ("pupil", "school", "township", "county")}
    doc = {"kind": kind.id, "title": kind.name, "short": kind.short, "layout": kind.layout, "ref": "免缓学-2026-2",
           "case_id": None, "event_seq": None, "step": {"state": "exemption", "label": "批准缓学"}, "policy": "default@2",
           "issuer": issuer_info(kind, facts), "issued_on": ISSUED_ON, "actor": "golden", "version": 1,
           "correction_reason": None, "internal": True, "cc": [], "number": None, "year": None, "doc_number": None}
    doc["trace"] = trace_line(doc)
    record = {"kind_label": "缓学", "first_day": "2026-12-01", "last_day": "2027-06-30", "reason": "病休 <住院>",
              "certificate": "诊断证明.pdf", "requested_by": "王军", "requested_on": "2026-11-20",
              "decision_label": "批准缓学", "approved": True, "note": None, "decided_by": "县教育局", "decided_on": "2026-11-22"}
    return {"doc": doc, **facts, "record": record}


def contexts() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for policy in ("default", "jingbian", "wutaishan"):
        for kind in catalog.CASE_KINDS:
            out[f"{kind}/{policy}"] = _case(kind, policy, 7)
    for kind in catalog.REPORT_KINDS:
        out[kind] = with_number(report_context(kind, sample_report(kind, seed=7), issued_on=ISSUED_ON, actor="golden"),
                                number=None, year=None)
    out["enrolment_notice"] = _census()
    out["truancy_written_warning"] = _truancy()
    out["exemption_decision"] = _exemption()
    return out


def digests() -> dict[str, str]:
    out = {}
    for name, ctx in contexts().items():
        for standalone in (False, True):
            html = render_html(ctx, standalone=standalone)
            out[f"{name}/{'preview' if standalone else 'print'}"] = hashlib.sha256(html.encode()).hexdigest()
    return out


def test_every_kind_is_in_the_golden_file():
    kinds = {name.split("/")[0] for name in json.loads(GOLDEN.read_text())}
    assert kinds == set(catalog.CATALOG)


def test_every_kind_renders_byte_identical_html():
    golden = json.loads(GOLDEN.read_text())
    now = digests()
    assert now.keys() == golden.keys()
    changed = sorted(k for k in golden if golden[k] != now[k])
    assert not changed, f"HTML changed for {changed}"


@pytest.mark.parametrize("kind", catalog.CASE_KINDS)
def test_the_bench_floor_renders_the_same_bytes(kind):
    from bench.documents import _shared_jinja

    ctx = _case(kind, "jingbian", 11)
    assert render_html(ctx, standalone=False) == _shared_jinja(ctx)


if __name__ == "__main__":  # python -m tests.documents.test_render_golden: rewrite the golden file
    GOLDEN.write_text(json.dumps(digests(), indent=1, sort_keys=True) + "\n")


def test_the_documents_environment_renders_what_plain_jinja2_renders():
    """documents.render's Environment (item-first dict reads, documents.codegen, direct calls) gives
    the bytes and the errors plain Jinja2 gives, on the cases its shortcuts treat specially."""
    from types import SimpleNamespace

    from jinja2 import UndefinedError, pass_context
    from markupsafe import Markup

    from bench.documents import _plain_env
    from documents.render import environment

    @pass_context
    def who(ctx, suffix=""):
        return ctx["name"] + suffix

    source = ('{% macro m(a, b="<b>") -%}[{{ a }}|{{ b }}]{%- endmacro %}'
              '{{ d.x }} {{ d.items }} {{ d.get("x") }} {{ o.y }} {{ n }} {{ 3 }} {{ f }} {{ s }} {{ none }}'
              '{{ m(d.x, b=s) }}{{ m(1) }}{{ who("!") }}{{ blank(none, "short") }}{{ box(true) }}'
              '{% for k in d %}{{ k }}{% if not loop.last %},{% endif %}{% endfor %}{{ "a" ~ s }}')
    values = {"d": {"x": "<x&>", "items": "ignored"}, "o": SimpleNamespace(y="'y'"), "n": 7, "f": 1.5,
              "s": Markup("<i>safe</i>"), "name": "张三", "who": who}
    ours = environment().from_string(source).render(**values)
    assert ours == _plain_env(0).from_string(source).render(**values)
    assert "&lt;x&amp;&gt;" in ours and "<i>safe</i>" in ours
    for missing in ("{{ d.nothing }}", "{{ o.nothing }}", "{{ nothing }}", "{{ blank(d.nothing) }}"):
        with pytest.raises(UndefinedError):
            environment().from_string(missing).render(**values)
