"""Reports as the people's work (issue 17 items 1–3), through the pages and the API, on both databases:
the 月报 drafted by the scheduler and submitted and signed by the school (on time, late, missing,
corrected), the weekly class count (周查表) and the 季查 results with a discrepancy."""
from __future__ import annotations

import io
from datetime import date, datetime

from openpyxl import load_workbook
from sqlalchemy import select

from store.duties import ledger as duty_ledger
from store.models import School, SchoolClass
from store.models.notifications import AccountabilityEntry
from store.models.report_work import ReportDuty, ReportVersion
from store.policy_files import PolicyRegistry
from store.reporting import people
from store.reporting import reports as rp
from tests.web.test_web_pages import as_, csrf, pages  # noqa: F401 - the pages fixture (app, accounts of every role)

DRAFTED = datetime(2026, 11, 20, 7, 30)  # the daily run: the school (23rd) and township (25th) reports are due within 5 days


def _schedule(factory, now: datetime = DRAFTED) -> dict:
    """What the report-duties deployment does in the morning (flows/report_duties.py)."""
    with factory() as s:
        policy = PolicyRegistry(s).get("default")
        out = people.draft_due(s, policy=policy, now=now)
        out["weekly"] = people.open_weekly(s, day=date(2026, 11, 16), now=datetime(2026, 11, 16, 7, 30),
                                           policy_of=PolicyRegistry(s).get)
        s.commit()
    return out


def _api(pages, username):
    return {"Authorization": f"Bearer {pages['county'].tokens[username]}"}


def test_monthly_report_drafted_edited_signed_late_missing_and_corrected(pages):
    client, clock, county = pages["client"], pages["clock"], pages["county"]
    made = _schedule(pages["factory"])
    assert made["school"] == 4 and made["township"] == 2 and "county" not in made  # the county's is due at month end
    clock.at = datetime(2026, 11, 22, 10, 0)
    school = as_(pages, "school")
    r = school.get("/submissions?period=2026-11")
    assert r.status_code == 200 and "填报本单位月报" in r.text and "签署报送" in r.text
    token = csrf(r.text)
    # the signatures without 存在问题/下一步 are refused
    r = school.post("/submissions", data={"csrf": token, "kind": "monthly", "period": "2026-11", "action": "submit"})
    assert r.status_code == 422 and "存在问题" in r.text
    r = school.post("/submissions", data={"csrf": token, "kind": "monthly", "period": "2026-11", "action": "submit",
                                          "problems": "留守儿童监护缺位", "next_steps": "每周家访一次",
                                          "prepared_by": "王填表", "approved_by": "李校长"}, follow_redirects=False)
    assert r.status_code == 303
    # the other school of the township submits by the API, a day late
    clock.at = datetime(2026, 11, 24, 9, 0)
    body = {"period": "2026-11", "problems": "家长外出务工", "next_steps": "联系村委会", "submit": True}
    r = client.post("/api/submissions", json=body, headers=_api(pages, "school_other"))
    assert r.status_code == 200 and r.json()["late"] is True and r.json()["version"] == 1
    again = client.post("/api/submissions", json=body, headers=_api(pages, "school_other"))
    assert again.json()["created"] is False and again.json()["version"] == 1  # a duplicate is the same submission
    # a correction is a new version; the first stays
    clock.at = datetime(2026, 11, 24, 15, 0)
    r = client.post("/api/submissions", json={**body, "problems": "家长外出务工，监护缺位", "reason": "补充问题"},
                    headers=_api(pages, "school_other"))
    assert r.json()["version"] == 2
    rows = client.get("/api/submissions?period=2026-11", headers=_api(pages, "township")).json()
    mine = {r["code"]: r for r in rows if r["level"] == "school"}
    assert set(mine) == set(county.school_codes[:2])  # the township sees its own two schools only
    home, other = mine[county.school_codes[0]], mine[county.school_codes[1]]
    assert home["status"] == "done" and not home["done_late"] and home["versions"][0]["prepared_by"] == "王填表"
    assert other["done_late"] and [v["version"] for v in other["versions"]] == [1, 2]
    assert [v["problems"] for v in other["versions"]] == ["家长外出务工", "家长外出务工，监护缺位"]
    with pages["factory"]() as s:
        duty_id = s.scalar(select(ReportDuty.id).where(ReportDuty.scope_code == county.school_codes[1],
                                                       ReportDuty.report_kind == "monthly"))
        entry = s.scalar(select(AccountabilityEntry).where(AccountabilityEntry.key == f"report_duty:{duty_id}"))
        assert entry is not None and entry.ground == "late_report" and entry.staff_id is not None
        # the schools of the other township have not submitted: overdue duties of their principals in the ledger
        overdue = [d for d in duty_ledger.overdue(s, clock.at, kinds=("report_due",)) if d["action"] == "submit_report"]
        assert {d["school_id"] for d in overdue} == set(s.scalars(select(School.id).where(
            School.code.in_(county.school_codes[2:]))))
        assert all(d["owner"] and d["kind_label"] == "报表报送" for d in overdue)
        # the frozen submission: the figures and text of version 1 do not change with the draft
        v1 = s.scalar(select(ReportVersion).where(ReportVersion.scope_code == county.school_codes[1], ReportVersion.version == 1))
        assert v1.problems == "家长外出务工" and "rows" in v1.figures
        # the official sheet prints what the school signed
        from documents.reports import monthly_report, ScopeArg

        data = monthly_report(s, ScopeArg("school", county.school_codes[0]), "2026-11", now=clock.at)
        assert (data["problems"], data["prepared_by"], data["approved_by"]) == ("留守儿童监护缺位", "王填表", "李校长")
        town = monthly_report(s, ScopeArg.parse(f"township:{rows[-1]['code']}"), "2026-11", now=clock.at)
        assert town["prepared_by"] and town["approved_by"]  # the township sheet names its signers too
    # a school cannot sign another unit's report: it writes only its own
    r = as_(pages, "township").get("/submissions?period=2026-11")
    assert r.status_code == 200 and "填报本单位月报" in r.text


def test_weekly_count_prefilled_submitted_rolled_up_and_missing_overdue(pages):
    client, clock, county = pages["client"], pages["clock"], pages["county"]
    _schedule(pages["factory"])
    clock.at = datetime(2026, 11, 16, 9, 0)
    teacher = as_(pages, "teacher")
    r = teacher.get("/weekly?day=2026-11-16")
    assert r.status_code == 200 and "周查表" in r.text and 'name="present"' in r.text
    own, sibling = county.class_ids
    r = teacher.post("/weekly", data={"csrf": csrf(r.text), "class_id": sibling, "day": "2026-11-16"})
    assert r.status_code == 404  # not their class
    r = client.post("/api/weekly-counts", json={"class_id": own, "day": "2026-11-16", "absent": 1, "present": 5},
                    headers=_api(pages, "teacher"))
    assert r.status_code == 200, r.text
    assert (r.json()["enrolled"], r.json()["present"], r.json()["absent"], r.json()["late"]) == (6, 5, 1, False)
    r = client.post("/api/weekly-counts", json={"class_id": own, "day": "2026-11-16", "absent": 2, "present": 5},
                    headers=_api(pages, "teacher"))
    assert r.status_code == 422 and "在册" in r.json()["message"]
    clock.at = datetime(2026, 11, 17, 8, 0)
    sheet = client.get("/api/weekly-counts?day=2026-11-16", headers=_api(pages, "township")).json()
    by_class = {c["class_id"]: c for c in sheet["classes"]}
    assert by_class[own]["status"] == "submitted" and by_class[sibling]["status"] == "overdue"
    home = next(s for s in sheet["schools"] if s["submitted"])
    assert home["submitted"] == 1 and home["missing"] == home["classes"] - 1 and sheet["townships"][0]["classes"] >= 2
    r = as_(pages, "township").get("/weekly.xlsx?day=2026-11-16")
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["班级", "学校", "乡镇"] and wb["班级"]["A1"].value == "控辍保学周查表 2026-11-16"
    with pages["factory"]() as s:
        missing = [d for d in duty_ledger.overdue(s, clock.at, kinds=("report_due",)) if d["action"] == "submit_weekly_count"]
        head = s.scalar(select(SchoolClass.head_teacher_id).where(SchoolClass.id == sibling))
        assert any(d["owner_id"] == head and d["role"] == "head_teacher" for d in missing)
        assert own not in {s.get(ReportDuty, d["duty_id"]).class_id for d in missing}


def test_spot_check_result_with_a_discrepancy_opens_a_reconciliation_item(pages):
    client, clock, county = pages["client"], pages["clock"], pages["county"]
    clock.at = datetime(2026, 11, 18, 10, 0)
    with pages["factory"]() as s:
        rp.spot_check(s, quarter="2026Q4", seed=3, fraction=1.0, as_of=datetime(2026, 11, 15, 10), actor="test")
        s.commit()
    township = as_(pages, "township")
    r = township.get("/spot-results?quarter=2026Q4")
    assert r.status_code == 200 and "签署" in r.text
    target = client.get("/api/spot-results?quarter=2026Q4", headers=_api(pages, "school")).json()[0]  # a class of the home school
    payload = {"quarter": "2026Q4", "class_id": target["class_id"], "enrolled": target["ledger_enrolled"],
               "present": target["ledger_enrolled"] - 1, "absent": 1, "discrepancies": 1,
               "findings": "一名学生晨检记为到校，实际未到", "inspector": "赵督学"}
    r = client.post("/api/spot-results", json=payload, headers=_api(pages, "township_other"))
    assert r.status_code == 404  # not in the other township's scope
    r = township.post("/spot-results", data={"csrf": csrf(township.get("/spot-results?quarter=2026Q4").text),
                                             **{k: str(v) for k, v in payload.items()}}, follow_redirects=False)
    assert r.status_code == 303
    rows = client.get("/api/spot-results?quarter=2026Q4", headers=_api(pages, "school")).json()
    result = next(r for r in rows if r["class_id"] == target["class_id"])["result"]
    assert result["status"] == "open" and result["inspector"] == "赵督学" and result["differences"][0]["submitted"] == 1
    r = client.post("/api/spot-results", json={**payload, "absent": 0, "present": target["ledger_enrolled"]},
                    headers=_api(pages, "township"))
    assert r.status_code == 422 and "已由" in r.json()["message"]  # a signed result is not rewritten
    with pages["factory"]() as s:
        duty = next(d for d in duty_ledger.listed(s, clock.at, due_by=datetime(2026, 12, 31), kinds=("report_due",))
                    if d["action"] == "reconcile_spot_check")
        assert duty["owner"] and duty["state"] == "spot_check"
        assert people.spot_evidence(s, [duty["school_id"]], "2026Q4")[0]["ground"] == "季查发现底数不清、数据不实"
        from documents.reports import ScopeArg, spot_check_sheet

        sheet = spot_check_sheet(s, ScopeArg.parse(f"school:{county.school_codes[0]}"), "2026Q4")
        assert [row["result"]["inspector"] for row in sheet["rows"] if row["result"]] == ["赵督学"]
        result_id = next(r["result_id"] for r in people.spot_results(s, quarter="2026Q4") if r["class_id"] == target["class_id"])
    r = client.post(f"/api/spot-results/{result_id}/resolve", json={"explanation": "晨检漏记，已更正"}, headers=_api(pages, "county"))
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    with pages["factory"]() as s:
        assert not [d for d in duty_ledger.overdue(s, datetime(2026, 12, 31), kinds=("report_due",))
                    if d["action"] == "reconcile_spot_check"]


def test_a_term_report_is_drafted_signed_and_printed_as_an_official_pdf(pages, tmp_path, monkeypatch):
    from pypdf import PdfReader

    import documents
    from documents.archive import file_path

    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    client, clock, county = pages["client"], pages["clock"], pages["county"]
    with pages["factory"]() as s:
        term = people.report_period("term_start", "20260901")
        made = people.open_level(s, policy=PolicyRegistry(s).get("default"), level="school", period=term,
                                 now=datetime(2026, 9, 1, 17, 0))
        assert len(made) == 4 and made[0][0].due_at == datetime(2027, 1, 22, 23, 59, 59)  # due on the term's last day
        s.commit()
    clock.at = datetime(2026, 11, 18, 10, 0)
    r = client.post("/api/submissions", json={"kind": "term_start", "period": "20260901", "problems": "开学初摸排发现 2 名学生未报到",
                                              "next_steps": "逐户核查并劝返", "submit": True}, headers=_api(pages, "school"))
    assert r.status_code == 200 and r.json()["late"] is False
    r = as_(pages, "school").get("/submissions?kind=term_start&period=20260901")
    assert r.status_code == 200 and "学期初报告报送" in r.text
    with pages["factory"]() as s:
        doc = documents.render_report(s, "monthly_report", scope=f"school:{county.school_codes[0]}",
                                      period="ts:20260901", actor="test", now=clock.at)
        text = "".join(p.extract_text() for p in PdfReader(file_path(doc)).pages)
        report = doc.document.data["report"]
        s.commit()
    assert report["title"] == "控辍保学学期初报告" and report["period_end"] == "2027-01-22"
    assert report["problems"] == "开学初摸排发现 2 名学生未报到" and "学期初报告" in text.replace(" ", "")
