"""Issue 16 through the pages (both databases): under wutaishan, a whereabouts-unknown and a working-away case
are referred from the case page, keep their follow-up duties, return via the morning check and are 销号 in
the 台账 page and its files."""
from __future__ import annotations

from datetime import datetime

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from store.cases.advance import advance
from store.models import Case, School
from tests.web.test_web_pages import csrf
from tests.web_support import Clock, build_county, in_process_app, pupils_of_class

import pytest


@pytest.fixture
def wutaishan(factory, tmp_path):
    with factory() as s:
        county = build_county(s)
        s.execute(update(School).values(policy_name="wutaishan"))
        s.commit()
        names = {p.student_no: p.name for p in pupils_of_class(s, county.class_ids[0])}
    clock = Clock()
    app = in_process_app(factory, tmp_path / "archive", clock)
    with TestClient(app) as client:
        yield {"client": client, "app": app, "county": county, "clock": clock, "names": names, "factory": factory}


def as_now(pages, username: str) -> TestClient:
    """A page session opened at the clock's time (a session lapses after a night without use)."""
    from store.access.accounts import start_session
    from store.models.accounts import User
    from web.deps import SESSION_COOKIE

    with pages["factory"]() as s:
        raw, _ = start_session(s, s.get(User, pages["county"].users[username]), now=pages["clock"](), hours=24)
        s.commit()
    client = pages["client"]
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, raw)
    return client


def test_referred_cases_are_followed_up_on_the_pages_and_closed_by_the_morning_check(wutaishan):
    pages, (lost, working) = wutaishan, list(wutaishan["names"])[:2]
    for day in (16, 17):
        pages["clock"].at = datetime(2026, 11, day, 8, 0)
        client = as_now(pages, "teacher")
        client.post("/morning-check/form", data={"csrf": csrf(client.get("/morning-check").text),
                                                 f"status:{lost}": "unexcused", f"status:{working}": "unexcused"})
        advance(pages["factory"], datetime(2026, 11, day, 9, 30))
    with pages["factory"]() as s:
        ids = dict(s.execute(select(Case.id, Case.state).order_by(Case.id)).all())
    assert list(ids.values()) == ["visited", "visited"]
    first, second = ids
    pages["clock"].at = datetime(2026, 11, 17, 15, 0)
    client = as_now(pages, "school")
    for case_id, reason in ((first, "whereabouts_unknown"), (second, "working_away")):
        page = client.get(f"/cases/{case_id}").text
        assert f'value="{reason}"' in page
        r = client.post(f"/cases/{case_id}/act", data={"csrf": csrf(page), "event": "escalate_outside", "reason": reason,
                                                       "version": "3"}, follow_redirects=True)
        assert r.status_code == 200 and "已移交跟踪" in r.text
    page = client.get(f"/cases/{second}").text
    assert "劝返监护人" in page and "劝返用工单位" in page and "已移交跟踪·第1轮" in page
    assert 'value="record_employer_persuasion"' in page
    r = client.post(f"/cases/{second}/act", data={"csrf": csrf(page), "event": "record_employer_persuasion",
                                                  "unit": "某某砖厂", "result": "用工单位同意辞退", "at": "2026-11-17T14:00"},
                    follow_redirects=True)
    assert r.status_code == 200 and "某某砖厂" in r.text
    township = as_now(pages, "township")
    page = township.get(f"/cases/{first}").text
    assert "会同公安机关查找下落" in page and 'value="record_police_search"' in page
    r = township.post(f"/cases/{first}/act", data={"csrf": csrf(page), "event": "record_police_search",
                                                   "unit": "城关派出所", "result": "已立案查找"}, follow_redirects=True)
    assert r.status_code == 200
    page = township.get("/ledger-book?month=2026-11").text
    assert page.count("移交跟踪中") == 2 and "去向不明" in page and "外出务工" in page
    pages["clock"].at = datetime(2026, 11, 18, 8, 0)  # both back: the head teacher's morning check, nobody absent
    client = as_now(pages, "teacher")
    r = client.post("/morning-check/form", data={"csrf": csrf(client.get("/morning-check").text),
                                                 f"status:{lost}": "present", f"status:{working}": "present"},
                    follow_redirects=True)
    assert r.status_code == 200, r.text
    with pages["factory"]() as s:
        assert [(c.state, c.closed_on.isoformat()) for c in s.scalars(select(Case).order_by(Case.id))] == [
            ("returned", "2026-11-18"), ("returned", "2026-11-18")]
    township = as_now(pages, "township")
    page = township.get("/ledger-book?month=2026-11").text
    assert page.count("已复学·销号") == 2 and "2026-11-18" in page
    r = township.get("/ledger-book/file?month=2026-11&fmt=xlsx")
    assert r.status_code == 200 and r.content[:2] == b"PK"
    county_page = as_now(pages, "county").get("/ledger-book?month=2026-11").text
    assert pages["names"][lost] not in county_page and "已复学·销号" in county_page
    assert as_now(pages, "teacher").get("/ledger-book").status_code in (403, 404)
