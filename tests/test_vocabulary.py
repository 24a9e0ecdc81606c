"""One vocabulary (machines/): every label table covers its enum, no other module keeps a label
table of these words, and the Chinese screens, Prefect artifacts and CLI tables of a generated
county show labels, never the raw identifiers."""
from __future__ import annotations

import ast
import json
import re
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from machines import vocabulary as v
from machines.census import CENSUS_STATE_LABELS, CensusState
from machines.risk import DUTY_LABELS, RiskDuty
from machines.states import ACTION_LABELS, REASON_LABELS, STATE_LABELS, Action, CaseState, DropoutReason, ExcuseReason, OutsideReason
from store.access.accounts import Role
from tests.cli.test_cli import baoxue, pupil_numbers
from tests.web_support import Clock, build_county, in_process_app, pupils_of_class
from web.deps import SESSION_COOKIE
from web.shell import NAV

ROOT = Path(__file__).resolve().parents[1]
# every identifier of the vocabulary's enums
IDENTIFIERS = ({s.value for s in CaseState} | {a.value for a in Action} | {e.value for e in v.Event}
               | {r.value for r in (*ExcuseReason, *OutsideReason, *DropoutReason)} | {g.value for g in v.SpecialGroup}
               | {d.value for d in RiskDuty} | {k.value for k in v.DutyKind})
# the ones that are also English words, looked for only where no English is written (the pages)
ENGLISH = {"absent", "visited", "returned", "escalated", "excused", "open", "escalate", "excuse", "family", "study",
           "poverty", "disaster", "illness", "other", "unknown", "transfer", "exemption", "orphan", "disabled", "poor",
           "tutoring", "case", "census", "prevention", "watch", "enrolled", "psychological"}


def raw_identifiers(text: str, *, english_too: bool) -> set[str]:
    words = IDENTIFIERS if english_too else IDENTIFIERS - ENGLISH
    return {w for w in words if re.search(rf"(?<![A-Za-z0-9_\-/.]){re.escape(w)}(?![A-Za-z0-9_\-/.])", text)}


class _Text(HTMLParser):
    """The text a reader sees: no tags, attributes, scripts or styles."""

    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return "\n".join(parser.parts)


# -- the tables ---------------------------------------------------------------------------------------
def test_every_label_table_covers_its_enum():
    assert set(STATE_LABELS) == set(CaseState)
    assert set(ACTION_LABELS) == set(Action)
    assert {r.value for r in (*ExcuseReason, *OutsideReason, *DropoutReason)} <= set(REASON_LABELS)
    assert set(v.EVENT_LABELS) == {e.value for e in v.Event} | {a.value for a in Action} | {b.value for b in v.Bookkeeping}
    assert set(v.SPECIAL_GROUP_LABELS) == {g.value for g in v.SpecialGroup}
    assert set(DUTY_LABELS) == set(RiskDuty)
    assert set(v.DUTY_KIND_LABELS) == {k.value for k in v.DutyKind}
    assert set(CENSUS_STATE_LABELS) == set(CensusState)
    assert v.DROPOUT_STATES <= v.OUT_OF_SCHOOL_STATES <= set(CaseState)
    for table in (STATE_LABELS, ACTION_LABELS, REASON_LABELS, v.EVENT_LABELS, v.SPECIAL_GROUP_LABELS, DUTY_LABELS,
                  v.DUTY_KIND_LABELS, v.LEVEL_LABELS, v.REPORT_KIND_LABELS, v.ATTENDANCE_LABELS):
        assert all(re.search(r"[\u4e00-\u9fff]", label) for label in table.values())


def test_the_policies_name_only_known_special_groups_and_flags():
    from store.policy_files import policy_files, read_policy_file

    for policy in (read_policy_file(path)[0] for path in policy_files()):
        assert set(policy.special_groups) <= set(v.SPECIAL_GROUP_LABELS), policy.key
        for rule in policy.risk.rules:
            assert set(getattr(rule.when, "flags", [])) <= set(v.SPECIAL_GROUP_LABELS), (policy.key, rule.id)


def _label_tables(path: Path):
    """Dict literals in ``path`` mapping two or more identifiers of the vocabulary to Chinese text."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            chinese = [x for x in node.values if isinstance(x, ast.Constant) and isinstance(x.value, str)
                       and re.search(r"[\u4e00-\u9fff]", x.value) and len(x.value) <= 12]  # a label, not a sentence
            if len(set(keys) & IDENTIFIERS) >= 2 and len(chinese) >= 2:
                yield node.lineno, sorted(set(keys) & IDENTIFIERS)


def test_no_module_outside_machines_keeps_its_own_label_table():
    found = []
    for folder in ("store", "documents", "web", "flows", "tasks", "deploy"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts or path.name in ("samples.py", "demo.py"):
                continue  # sample wording and the demo's scripted notes are text, not labels
            found += [(str(path.relative_to(ROOT)), line, keys) for line, keys in _label_tables(path)]
    assert found == []


# -- the screens, artifacts and CLI tables of a generated county --------------------------------------------
DAYS = [date(2026, 11, d) for d in (16, 17, 18, 19, 20)]
NOW = datetime(2026, 11, 30, 10, 0)


@pytest.fixture
def county(factory, tmp_path, monkeypatch):
    """Cases on every step and out of it, special groups (学困生 too) on the cases, a watch list with
    overdue duties, a month filed and a quarter drawn."""
    from store.reporting import reports as rp
    from store.prevention import risk
    from store.cases.actions import act
    from store.cases.context import CaseContext
    from store.db import transaction
    from store.models import Case, Pupil
    from tests.engine_helpers import morning, sweep

    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    with factory() as s:
        c = build_county(s)
        pupils = pupils_of_class(s, c.class_ids[0])
        for p, groups in zip(pupils, (["learning_difficulty", "poor"], ["left_behind"], ["orphan", "disabled"])):
            p.special_groups = groups
        s.commit()
        nos = [p.student_no for p in pupils]
    home = c.school_codes[0]
    for i, day in enumerate(DAYS):
        morning(factory, home, day, nos[:5] if i < 2 else nos[:4])
        sweep(factory, day)
    with transaction(factory) as s:
        ctx = CaseContext(s)
        first = s.scalar(select(Case.id).join(Pupil, Pupil.id == Case.pupil_id).where(Pupil.student_no == nos[3]))
        act(s, ctx, first, "escalate_outside", actor="user:school", at=datetime(2026, 11, 20, 15), now=datetime(2026, 11, 20, 15),
            reason="working_away")
        risk.refresh_watch_list(s, as_of=datetime(2026, 11, 16, 18))
        policy = ctx.policies.get("default")
        for level in ("school", "township", "county"):
            rp.file_level(s, policy=policy, level=level, period=rp.month_period(2026, 11), as_of=datetime(2026, 11, 25, 17),
                          actor="test")
        rp.spot_check(s, quarter="2026Q4", seed=5, fraction=0.5, as_of=datetime(2026, 11, 16, 10), actor="test")
    app = in_process_app(factory, tmp_path / "archive", Clock(NOW))
    with TestClient(app) as client:
        yield {"client": client, "county": c, "factory": factory}


def test_the_pages_of_every_role_show_no_raw_identifier(county):
    from store.models import Case

    client = county["client"]
    with county["factory"]() as s:
        case_ids = list(s.scalars(select(Case.id).order_by(Case.id)))
    seen = {}
    for username, role in [("teacher", Role.head_teacher), ("school", Role.school_staff), ("township", Role.township),
                           ("county", Role.county), ("operator", Role.operator)]:
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, county["county"].cookies[username])
        hrefs = [h for h, _ in NAV[role]] + (["/figures?month=2026-11"] if role not in (Role.operator, Role.head_teacher) else [])
        if role in (Role.head_teacher, Role.school_staff):
            hrefs += [f"/cases/{cid}" for cid in case_ids]
        for href in hrefs:
            r = client.get(href)
            assert r.status_code == 200, (username, href)
            raw = raw_identifiers(visible_text(r.text), english_too=True)
            if raw:
                seen[(username, href)] = raw
    assert seen == {}
    client.cookies.set(SESSION_COOKIE, county["county"].cookies["school"])
    assert "学困生" in visible_text(client.get(f"/cases/{case_ids[0]}").text)


def test_the_prefect_artifacts_show_no_raw_identifier(county):
    from flows.monthly_report import report_markdown
    from store.reporting import reports as rp
    from store.models.reports import ReportFiling, SpotCheck
    from tasks.publish import sweep_artifacts
    from tasks.runtime import using
    from tasks.sweep import sweep_summary

    with county["factory"]() as s:
        filings = list(s.scalars(select(ReportFiling)))
        texts = {str(f.id): rp.figures_markdown(f) for f in filings}
        rows = [{"scope": f.scope_name, "due_on": f.due_on.isoformat(), "late": f.late, "dropouts": f.figures["dropouts"],
                 "dropout_rate": f.figures["dropout_rate"]} for f in filings]
        check = s.scalar(select(SpotCheck))
        markdown = [report_markdown(level, rp.month_period(2026, 11), rows, texts) for level in rp.LEVELS]
        markdown.append(rp.spot_check_markdown(check))
    assert "控辍保学月报 2026-11 — 县" in markdown[2]
    with using(county["factory"]):
        summary = sweep_summary.fn(NOW)
    by_school, overdue, description = sweep_artifacts(summary)
    assert overdue and by_school
    tables = json.dumps([by_school, overdue], ensure_ascii=False)
    found = {i: raw_identifiers(m, english_too=False) for i, m in enumerate(markdown + [tables, description])}
    assert {i: w for i, w in found.items() if w} == {}


@pytest.fixture
def cli_county(blank_db_url):
    baoxue(blank_db_url, "init", "--at", "2026-09-01T07:00")
    baoxue(blank_db_url, "generate", "--seed", "3", "--townships", "1", "--schools", "1", "--pupils-per-class", "3",
           "--policy", "default")
    pupils = pupil_numbers(blank_db_url)[:3]
    for day in ("2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19"):
        for pupil in pupils:
            baoxue(blank_db_url, "absent", pupil, "--date", day, "--at", f"{day}T08:10")
        baoxue(blank_db_url, "advance", "--as-of", f"{day}T09:30")
    baoxue(blank_db_url, "act", "1", "record_phone_call", "--by", "王老师", "--at", "2026-11-19T10:00")
    return blank_db_url


def test_the_cli_tables_show_no_raw_identifier(cli_county):
    outputs = {
        "case": baoxue(cli_county, "case", "1"),
        "cases": baoxue(cli_county, "cases"),
        "stuck": baoxue(cli_county, "cases", "--stuck", "--at", "2026-11-25T10:00"),
        "act": baoxue(cli_county, "act", "2", "record_phone_call", "--by", "李老师", "--at", "2026-11-19T11:00"),
        "policy": baoxue(cli_county, "policy", "show", "default"),
    }
    assert "record_phone_c" not in outputs["case"] and "电话联系家长" in outputs["case"]
    found = {k: raw_identifiers(out, english_too=False) for k, out in outputs.items()}
    assert {k: w for k, w in found.items() if w} == {}


def test_a_follow_up_rounds_duty_is_labelled_on_every_list():
    """The accountability sheet and the queues read a referred case's round duty (step escalated:<n>)."""
    from store.duties.ledger import context_label

    assert context_label("case", "escalated:2") == v.STATE_LABELS[CaseState.escalated] + "·第2轮"
    assert context_label("case", "visited") == v.STATE_LABELS[CaseState.visited]
