"""Accountability on the pages and the API (issue 17 items 4 and 7), both databases: the evidence page, its
CSV and the API list the same rows of every kind; a township official records a 约谈 and the county its
outcome; talks and 责任书 stay in scope; the 包保 chain on the case page; the 一票否决 list and the ranking."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from store.accountability import chain, pledges
from store.cases.advance import advance
from store.models import Case, School, Staff
from tests.web.test_web_pages import as_, csrf, pages  # noqa: F401 - the pages fixture (app, accounts of every role)

EVENING = datetime(2026, 11, 17, 19, 0)


def _api(pages, username: str):
    client = pages["client"]
    client.cookies.clear()
    return client, {"Authorization": f"Bearer {pages['county'].tokens[username]}"}


def _absent_and_late(pages) -> int:
    client = as_(pages, "teacher")
    first = list(pages["names"])[0]
    client.post("/morning-check/form", data={"csrf": csrf(client.get("/morning-check").text), f"status:{first}": "unexcused"})
    pages["clock"].at = EVENING
    advance(pages["factory"], pages["clock"]())
    with pages["factory"]() as s:
        return s.scalar(select(Case.id).order_by(Case.id))


def test_talks_pledges_and_chains_through_the_pages_and_the_api(pages):
    case_id = _absent_and_late(pages)
    home = pages["county"].school_codes[0]
    # the township official records a talk about a school of the township, on the page
    client = as_(pages, "township")
    page = client.get("/interviews")
    assert page.status_code == 200 and "记录一次约谈" in page.text
    r = client.post("/interviews", data={
        "csrf": csrf(page.text), "interviewee": "王校长", "interviewee_role": "principal", "school_code": home,
        "held_at": "2026-11-17T16:00", "subject": "两项职责逾期", "items": "当日补录家访\n落实帮扶责任人",
        "deadline": "2026-11-18", "evidence": "duty:1"}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    talk_url = r.headers["location"]
    talk_id = int(talk_url.rsplit("/", 1)[1])
    text = client.get(talk_url).text
    assert "当日补录家访" in text and "待跟踪" in text
    # the other township neither sees it nor may act on it; a township cannot talk about another's school
    other, headers = _api(pages, "township_other")
    assert other.get(f"/api/interviews/{talk_id}", headers=headers).status_code == 404
    assert other.get("/api/interviews", headers=headers).json() == []
    r = other.post(f"/api/interviews/{talk_id}/outcome", headers=headers, json={"rectified": True, "outcome": "x"})
    assert r.status_code == 404
    r = other.post("/api/interviews", headers=headers, json={
        "interviewee": "x", "school_code": home, "held_at": "2026-11-17T16:00", "subject": "s", "items": ["i"],
        "deadline": "2026-11-18"})
    assert r.status_code == 422 and "管辖范围" in r.text
    school, headers = _api(pages, "school")
    assert school.post("/api/interviews", headers=headers, json={}).status_code == 403  # a school holds no talks
    assert [t["id"] for t in school.get("/api/interviews", headers=headers).json()] == [talk_id]  # but reads its own
    # after the deadline the follow-up is overdue evidence: page, CSV and API list the same rows
    pages["clock"].at = datetime(2026, 11, 19, 9, 0)
    api, headers = _api(pages, "county")
    data = api.get("/api/accountability?start=2026-11-01", headers=headers).json()
    kinds = {r["kind"] for r in data["rows"]}
    assert {"case", "talk"} <= kinds and all(r["ground_seed"] for r in data["rows"])
    client = as_(pages, "county")
    html = client.get("/accountability?start=2026-11-01").text
    assert html.count('data-kind="talk"') == 2  # the count by kind and the row
    lines = client.get("/accountability.csv?start=2026-11-01").content.decode("utf-8-sig").splitlines()
    assert len(lines) - 1 == len(data["rows"]) and any(",约谈整改," in line for line in lines)
    # the county records the outcome through the API: the follow-up is done (late)
    api, headers = _api(pages, "county")
    r = api.post(f"/api/interviews/{talk_id}/outcome", headers=headers, json={"rectified": True, "outcome": "已整改到位"})
    assert r.status_code == 200 and r.json()["status"] == "rectified" and r.json()["followup"]["status"] == "done"
    rows = api.get("/api/accountability?start=2026-11-01", headers=headers).json()["rows"]
    assert [r["status"] for r in rows if r["kind"] == "talk"] == ["done_late"]
    # the 包保 chain: on the case page, assigned by the school office; a head teacher may not assign
    client = as_(pages, "school")
    page = client.get(f"/cases/{case_id}")
    assert "包保责任链" in page.text
    with pages["factory"]() as s:
        mentor = s.scalar(select(Staff).join(School, School.id == Staff.school_id)
                          .where(School.code == home, Staff.role == "mentor_teacher"))
        mentor_id, mentor_name = mentor.id, mentor.name
    r = client.post(f"/cases/{case_id}/chain", data={"csrf": csrf(page.text), "role": "head_teacher", "person": mentor_name},
                    follow_redirects=False)
    assert r.status_code == 303
    api, headers = _api(pages, "teacher")
    members = {m["role"]: m for m in api.get(f"/api/cases/{case_id}/chain", headers=headers).json()}
    assert members["head_teacher"]["staff_id"] == mentor_id
    assert api.post(f"/api/cases/{case_id}/chain", headers=headers, json={"role": "head_teacher", "person": "x"}).status_code == 403
    with pages["factory"]() as s:  # the case's open head-teacher duties went to the chain's 包保班主任
        from store.models import Duty
        owners = {d.owner_id for d in s.scalars(select(Duty).where(Duty.case_id == case_id, Duty.role == "head_teacher",
                                                                   Duty.status.in_(("open", "overdue"))))}
        assert owners <= {mentor_id}
        # the year's 责任书
        chain.fill_defaults(s, school_ids=None, actor="test", now=EVENING)
        issued = pledges.issue_year(s, year=2026, now=EVENING)
        s.commit()
    api, headers = _api(pages, "school")
    mine = [p["id"] for p in api.get("/api/pledges?year=2026", headers=headers).json()]
    client = as_(pages, "school")
    page = client.get("/pledges?year=2026")
    assert page.status_code == 200 and "待签订" in page.text and "登记已签订" in page.text
    theirs = sorted(set(issued) - set(mine))
    assert mine and theirs
    r = client.post(f"/pledges/{mine[0]}/signed", data={"csrf": csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/pledges?year=2026", (r.status_code, r.headers, r.text[:300])
    api, headers = _api(pages, "school")
    assert api.post(f"/api/pledges/{theirs[0]}/signed", headers=headers).status_code == 404  # another school's
    api, headers = _api(pages, "township")
    assert api.post(f"/api/pledges/{mine[1]}/signed", headers=headers).status_code == 403  # the school or county records it
    signed = {p["id"]: p["status"] for p in api.get("/api/pledges?year=2026", headers=headers).json()}
    assert signed[mine[0]] == "signed" and signed[mine[1]] == "issued"
    # the veto list and the ranking render for the offices
    client = as_(pages, "county")
    assert client.get("/veto?year=2026").status_code == 200
    r = client.get("/ranking?month=2026-11")
    assert r.status_code == 200 and "名次" in r.text
    api, headers = _api(pages, "township")
    ranking = api.get("/api/ranking?month=2026-11", headers=headers).json()
    assert ranking["asked"] and len(ranking["rows"]) == 1  # a township sees its own place
