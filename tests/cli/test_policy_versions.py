"""A changed policy file carries a new version; a database that stored the old one takes the new one beside
it, and ``baoxue policy migrate`` (README: Policies are data) moves the open cases, logged."""
from __future__ import annotations

import json

from sqlalchemy import select

from store.db import make_engine, settings
from store.models import Case, CaseEvent, PolicyMigration, PolicyVersion
from store.policy_files import SHIPPED_POLICIES

from tests.cli.test_cli import baoxue, pupil_numbers

NAMES = ("default", "jingbian", "wutaishan")


def _policy_dir(monkeypatch, folder) -> None:
    if folder is None:
        monkeypatch.delenv("BAOXUE_POLICY_DIR", raising=False)
    else:
        monkeypatch.setenv("BAOXUE_POLICY_DIR", str(folder))
    settings.cache_clear()


def test_the_shipped_policies_are_version_2():
    for name in NAMES:
        assert "\nversion = 2\n" in (SHIPPED_POLICIES / f"{name}.toml").read_text(encoding="utf-8"), name


def test_a_database_that_stored_version_1_takes_version_2_and_migrates_its_open_cases(blank_db_url, tmp_path,
                                                                                      monkeypatch):
    old, unbumped = tmp_path / "v1", tmp_path / "unbumped"
    old.mkdir(), unbumped.mkdir()
    for name in NAMES:
        text = (SHIPPED_POLICIES / f"{name}.toml").read_text(encoding="utf-8")
        v1 = text.replace("\nversion = 2\n", "\nversion = 1\n")
        (old / f"{name}.toml").write_text(v1 + "# 第1版 (as a database stored it before the notices changed)\n",
                                          encoding="utf-8")
        (unbumped / f"{name}.toml").write_text(v1, encoding="utf-8")
    try:
        _policy_dir(monkeypatch, old)
        baoxue(blank_db_url, "init", "--at", "2026-09-01T07:00")
        baoxue(blank_db_url, "generate", "--seed", "5", "--townships", "1", "--schools", "1", "--pupils-per-class", "3",
               "--policy", "wutaishan")
        pupil = pupil_numbers(blank_db_url)[0]
        baoxue(blank_db_url, "absent", pupil, "--date", "2026-11-16", "--at", "2026-11-16T08:10")
        baoxue(blank_db_url, "advance", "--as-of", "2026-11-16T09:30")
        # the changed files still saying version 1 are refused: the cases started under 1 keep their rules
        _policy_dir(monkeypatch, unbumped)
        refused = baoxue(blank_db_url, "init", "--at", "2026-11-16T12:00", code=2)
        assert "still says version 1" in refused and "raise the version" in refused
        # the shipped files (version 2) are taken beside version 1
        _policy_dir(monkeypatch, None)
        baoxue(blank_db_url, "init", "--at", "2026-11-16T12:00")
        case = json.loads(baoxue(blank_db_url, "case", "1", "--json"))
        assert case["state"] == "family_contacted"
        out = baoxue(blank_db_url, "policy", "migrate", "wutaishan", "--to", "2", "--reason", "返校通知书期限写入政策第2版",
                     "--by", "county:admin", "--at", "2026-11-16T12:05")
        assert "1 件在办案件迁移至 wutaishan@2" in out
        baoxue(blank_db_url, "advance", "--as-of", "2026-11-17T09:30")  # the ladder goes on under version 2
        engine = make_engine(blank_db_url)
        with engine.connect() as c:
            versions = sorted(c.execute(select(PolicyVersion.name, PolicyVersion.version)).all())
            assert versions == sorted((n, v) for n in NAMES for v in (1, 2))
            assert c.scalar(select(Case.policy_version)) == 2
            events = c.execute(select(CaseEvent.event, CaseEvent.to_state).order_by(CaseEvent.seq)).all()
            assert [e.event for e in events] == ["open", "escalate", "migrate_policy", "escalate"]
            assert events[-1].to_state == "visited"
            assert c.execute(select(PolicyMigration.from_version, PolicyMigration.to_version,
                                    PolicyMigration.cases_moved)).one() == (1, 2, 1)
        engine.dispose()
        from sqlalchemy.orm import Session
        from store.cases.replay import replay
        engine = make_engine(blank_db_url)
        with Session(engine) as s:
            assert replay(s, 1).value == "visited"
        engine.dispose()
    finally:
        _policy_dir(monkeypatch, None)
