"""The 辍学书面通报 (seed 002) on the case page and the API: the school fills in 行为表现 and 学习情况 on a
form, the parent's refusal and the bureau's copy are recorded, each kept in the history."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from documents.archive import render_for_case
from store.cases.advance import advance
from store.models import Case, CaseEvent, Duty

from tests.web.test_web_pages import as_, csrf, pages  # noqa: F401 - the pages fixture


def test_the_parent_notice_is_filled_in_signed_and_reported_from_the_case_page(pages, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    client = as_(pages, "teacher")
    first = list(pages["names"])[0]
    client.post("/morning-check/form", data={"csrf": csrf(client.get("/morning-check").text), f"status:{first}": "unexcused"})
    pages["clock"].at = datetime(2026, 11, 20, 10, 0)
    advance(pages["factory"], pages["clock"]())
    with pages["factory"]() as s:
        case_id = s.scalar(select(Case.id))
        assert s.get(Case, case_id).state == "judicial_notice"

    page = client.get(f"/cases/{case_id}").text
    assert "填写辍学书面通报" in page and "在校行为表现" in page and "学习情况" in page
    # a blank form is refused with the field named, nothing is written
    r = client.post(f"/cases/{case_id}/act", data={"csrf": csrf(page), "event": "record_class_record", "study": "跟不上"})
    assert r.status_code == 422 and "在校表现" in r.text
    pages["clock"].at = datetime(2026, 11, 20, 16, 0)
    r = client.post(f"/cases/{case_id}/act", data={
        "csrf": csrf(page), "event": "record_class_record", "conduct": "课堂纪律较差，常迟到", "study": "语文及格，数学不及格",
        "at": "2026-11-20T15:00"}, follow_redirects=True)
    assert r.status_code == 200 and "课堂纪律较差，常迟到" in r.text  # the history shows what was entered
    # days later, the parent's refusal (the head teacher, through the API)
    pages["clock"].at = datetime(2026, 11, 24, 11, 0)
    teacher = {"Authorization": f"Bearer {pages['county'].tokens['teacher']}"}
    r = pages["client"].post(f"/api/cases/{case_id}/actions", headers=teacher, json={
        "event": "serve_parent_notice", "at": "2026-11-23T16:00:00",
        "payload": {"recipient": "学生母亲", "refused": True, "witness": "村干部", "opinion": "孩子不想读书"}})
    assert r.status_code == 200, r.text
    # the bureau's copy, through the API (a head teacher may not report it; the school may)
    body = {"event": "report_parent_notice", "at": "2026-11-24T10:00:00", "payload": {"received_by": "基教股刘某"}}
    assert pages["client"].post(f"/api/cases/{case_id}/actions", json=body, headers=teacher).status_code == 403
    school = {"Authorization": f"Bearer {pages['county'].tokens['school']}"}
    r = pages["client"].post(f"/api/cases/{case_id}/actions", json=body, headers=school)
    assert r.status_code == 200, r.text

    with pages["factory"]() as s:
        events = {e.event: e for e in s.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id))}
        assert events["record_class_record"].payload["conduct"] == "课堂纪律较差，常迟到"
        assert events["serve_parent_notice"].payload["refused"] is True
        assert events["report_parent_notice"].payload["received_by"] == "基教股刘某"
        assert {d.action: d.status for d in s.scalars(select(Duty).where(Duty.case_id == case_id))}["report_parent_notice"] == "done"
        notice = render_for_case(s, case_id, "parent_notice", actor="t", fmt="html")
        html = notice.document.data
        assert html["record"]["conduct"] == "课堂纪律较差，常迟到" and html["doc"]["issued_on"] == "2026-11-20"
        receipt = render_for_case(s, case_id, "proof_of_service", actor="t", fmt="html",
                                  event_seq=events["serve_parent_notice"].seq).document.data
        assert receipt["record"]["refused"] and receipt["doc"]["issued_on"] == "2026-11-23"
        assert receipt["doc"]["issuer"]["type"] == "school"
        s.rollback()
