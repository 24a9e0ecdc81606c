"""Scope on every write, census import included (issue 14, rows 11 and 14).

A 城关镇 user uploaded a register row of a 柳河镇 village: a case opened there and a notice was
numbered in 柳河镇's own series. Now a row of a village outside the importing office's scope is a
refused row (reported with its row number), nothing is opened or numbered there, and a township's
notices are numbered in its own series only. Roster errors do not name another school's pupil.
"""
from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from store.prevention import census
from store.models.census import CensusCase, CensusRow
from demo.census_register import village_register
from store.models.documents import Document
from store.models import Jurisdiction, Pupil, School
from store.access.scope import Scope
from store.ingest.roster import import_roster
from tests.web_support import Clock, build_county, in_process_app

NOW = datetime(2026, 11, 23, 10, 0)


def _townships(session) -> list[Jurisdiction]:
    return session.scalars(select(Jurisdiction).where(Jurisdiction.level == "township").order_by(Jurisdiction.id)).all()


def _village_township(session) -> dict[int, int]:
    return dict(session.execute(select(Jurisdiction.id, Jurisdiction.parent_id).where(Jurisdiction.level == "village")).all())


@pytest.fixture
def county(session, tmp_path, monkeypatch):
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    c = build_county(session, sessions=True)
    reg = village_register(session, enrolled=8, unenrolled=6, exempted=1, out_of_age=1)
    session.flush()
    return c, reg


def test_a_township_import_leaves_other_townships_villages_alone(session, county):
    _, reg = county
    home, other = _townships(session)
    village_of = _village_township(session)
    r = census.import_census(session, reg.content, reg.filename, actor="城关镇", now=NOW,
                             scope=Scope(township_ids=frozenset({home.id})))
    rows = session.scalars(select(CensusRow).where(CensusRow.import_id == r.import_id)).all()
    refused = [x for x in rows if any(p["code"] == "out_of_scope" for p in x.problems)]
    assert refused, "the register has rows of the other township's villages"
    assert all(x.outcome == "invalid" and x.village_id is None and x.school_id is None and x.pupil_id is None
               for x in refused)
    assert sorted(e["row"] for e in r.summary["refused"]) == sorted(x.row_no for x in refused)
    assert all("不在您的管辖范围内" in e["message"] for e in r.summary["refused"])
    kept = [x for x in rows if x.village_id is not None]
    assert kept and all(village_of[x.village_id] == home.id for x in kept)
    opened = census.open_cases(session, r.import_id, now=NOW)
    assert opened
    assert {session.get(CensusCase, i).township_id for i in opened} == {home.id}
    # the other township imports the same file as its own import, and opens its own cases
    r2 = census.import_census(session, reg.content, reg.filename, actor="柳河镇", now=NOW,
                              scope=Scope(township_ids=frozenset({other.id})))
    assert not r2.duplicate
    assert {session.get(CensusCase, i).township_id for i in census.open_cases(session, r2.import_id, now=NOW)} == {other.id}


def test_a_census_upload_by_a_township_numbers_notices_in_its_own_series_only(factory, tmp_path, monkeypatch):
    from documents.census import census_step  # noqa: F401 - the page runs the census step in-process

    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    with factory() as s:
        c = build_county(s, sessions=True)
        reg = village_register(s, enrolled=8, unenrolled=6, exempted=1, out_of_age=1)
        s.commit()
        home, other = _townships(s)
    with TestClient(in_process_app(factory, tmp_path / "archive", Clock(NOW))) as client:
        client.cookies.set("baoxue_session", c.cookies["township"])
        r = client.post("/census/upload", data={"csrf": c.csrf["township"]},
                        files={"file": ("register.csv", reg.content, "text/csv")})
        assert r.status_code == 200, r.text[:300]
        assert "不在您的管辖范围内" in r.text
    with factory() as s:
        cases = s.scalars(select(CensusCase)).all()
        assert cases and {x.township_id for x in cases} == {home.id}
        issuers = set(s.scalars(select(Document.issuer).where(Document.kind == "enrolment_notice")))
        assert issuers == {f"township:{home.code}"}


def test_a_roster_error_does_not_name_another_schools_pupil(session, county):
    c, _ = county
    home = session.scalar(select(School).where(School.code == c.school_codes[0]))
    other_school = session.scalar(select(School).where(School.code == c.school_codes[1]))
    other = session.scalar(select(Pupil).where(Pupil.school_id == other_school.id, Pupil.id_number.is_not(None)))
    rows = ["学校代码,学籍号,姓名,身份证号,年级,班级",
            f"{home.code},NEW1,张三,{other.id_number},1,一(9)班",  # another school's pupil's 身份证号
            f"{home.code},{other.student_no},李四,,1,一(9)班"]       # another school's pupil's 学籍号
    result = import_roster(session, "\n".join(rows).encode(), "r.csv", only_school_id=home.id, now=NOW)
    assert [n for n, _ in result.errors] == [2, 3], result.errors
    for _, message in result.errors:
        assert other.student_no not in message and other.name not in message and other_school.name not in message
        assert other_school.code not in message
    assert "身份证号已在其他学籍中登记" in result.errors[0][1]
    assert "学籍号已在其他学校登记" in result.errors[1][1]
