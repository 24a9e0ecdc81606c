"""排查 (out-of-school census): a village register matched against enrolment, the 失学 track, its notice."""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from datetime import date, datetime

import pytest
from sqlalchemy import func, select

from documents.archive import file_path
from documents.census import census_step, issue_notices
from machines.census import CensusForbidden, CensusRules, CensusState, check_row
from machines.identity import id_check_digit
from store.prevention import census
from store.models.census import CensusCase, CensusDuty, CensusEvent, CensusRow
from demo.census_register import village_register
from store.models.documents import DocumentFile
from store.models import Pupil, School
from store.ingest.roster import import_roster
from tests.engine_helpers import setup_store

NOW = datetime(2026, 11, 23, 10, 0)


@pytest.fixture
def county(session, tmp_path, monkeypatch):
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    setup_store(session, pupils_per_class=4, grades=(1, 4, 8), schools=2)
    return village_register(session, enrolled=12, unenrolled=4, exempted=2, out_of_age=2)


def _id(first17: str) -> str:
    return first17 + id_check_digit(first17)


# -- pure rules ---------------------------------------------------------------------------------------
def test_school_age_is_taken_on_the_policy_reference_date():
    rules = CensusRules()  # 6–15 on 08-31
    six_on_the_day = _id("11010120200831001")
    six_a_day_late = _id("11010120200901001")
    sixteen = _id("11010120100831001")
    assert check_row({"name": "甲", "id_number": six_on_the_day}, rules, 2026).school_age
    assert not check_row({"name": "乙", "id_number": six_a_day_late}, rules, 2026).school_age
    assert not check_row({"name": "丙", "id_number": sixteen}, rules, 2026).school_age
    late = CensusRules(reference_date="09-30")
    assert check_row({"name": "乙", "id_number": six_a_day_late}, late, 2026).school_age


def test_a_row_with_a_wrong_check_digit_or_a_birth_date_off_its_id_is_flagged():
    good = _id("11010120150305002")
    bad = good[:17] + ("1" if good[17] != "1" else "2")
    assert [p.value for p, _ in check_row({"name": "甲", "id_number": bad}, CensusRules(), 2026).problems] == ["bad_id"]
    c = check_row({"name": "甲", "id_number": good, "birth_date": "2015年3月6日"}, CensusRules(), 2026)
    assert [p.value for p, _ in c.problems] == ["birth_mismatch"] and c.age == 11
    assert check_row({"name": "甲", "id_number": good, "birth_date": "2015/3/5"}, CensusRules(), 2026).ok


# -- matching -----------------------------------------------------------------------------------------
def test_register_is_matched_by_id_number_with_every_problem_reported(session, county):
    r = census.import_census(session, county.content, county.filename, actor="村委会", now=NOW)
    assert not r.duplicate
    assert {k: r.summary[k] for k in county.expected} == {k: len(v) for k, v in county.expected.items()}
    rep = census.report(session)
    problems = {p["code"] for a in rep["attention"] for p in a["problems"]}
    assert {"bad_id", "duplicate_id", "name_mismatch", "birth_mismatch", "unknown_village", "exemption"} <= problems
    by_name = {a["name"]: a for a in rep["attention"]}
    assert {n for n, a in by_name.items() if a["outcome"] == "not_enrolled"} == set(county.expected["not_enrolled"])
    assert all("*" in a["id_number"] for a in rep["attention"]), "ID numbers are masked in the report"
    enrolled_rows = session.scalars(select(CensusRow).where(CensusRow.outcome == "enrolled")).all()
    assert all(row.pupil_id and session.get(Pupil, row.pupil_id).id_number == row.id_number for row in enrolled_rows)


def test_each_school_age_child_enrolled_nowhere_opens_one_case_with_village_and_school_duties(session, county):
    r = census.import_census(session, county.content, county.filename, actor="村委会", now=NOW)
    opened = census.open_cases(session, r.import_id, now=NOW)
    assert len(opened) == len(county.expected["not_enrolled"])
    cases = session.scalars(select(CensusCase).where(CensusCase.id.in_(opened))).all()
    assert {c.name for c in cases} == set(county.expected["not_enrolled"])
    assert all(c.state == "not_enrolled" and c.school_id and c.township_id for c in cases)
    duties = session.execute(select(CensusDuty.census_case_id, CensusDuty.role, CensusDuty.owner_id)
                             .where(CensusDuty.census_case_id.in_(opened))).all()
    assert {(cid, role) for cid, role, _ in duties} == {(cid, role) for cid in opened
                                                       for role in ("village_committee", "principal")}
    assert all(owner for *_, owner in duties), "every duty has a named owner"
    first = session.scalars(select(CensusEvent).where(CensusEvent.census_case_id == opened[0])).all()
    assert [(e.event, e.to_state, e.actor) for e in first] == [("open", "not_enrolled", "system:census")]
    assert "未在任何学校就读" in first[0].reason


def test_the_same_register_twice_opens_no_second_case(session, county):
    r1 = census.import_census(session, county.content, county.filename, actor="村委会", now=NOW)
    first = census.open_cases(session, r1.import_id, now=NOW)
    again = census.import_census(session, county.content, county.filename, actor="村委会", now=NOW)
    assert again.duplicate and again.import_id == r1.import_id
    assert census.open_cases(session, again.import_id, now=NOW) == []
    # the same children in a re-typed file (another import): linked to the open cases, nothing new
    retyped = county.content.decode("utf-8-sig").replace("\r\n", "\n").encode("utf-8")
    r2 = census.import_census(session, retyped, "again.csv", actor="镇政府", now=NOW)
    assert not r2.duplicate and r2.import_id != r1.import_id
    assert census.open_cases(session, r2.import_id, now=NOW) == []
    assert session.scalar(select(func.count()).select_from(CensusCase)) == len(first)
    linked = session.scalars(select(CensusRow.census_case_id).where(CensusRow.import_id == r2.import_id,
                                                                   CensusRow.outcome == "not_enrolled")).all()
    assert sorted(linked) == sorted(first)


def test_the_case_closes_when_the_roster_enrols_the_child(session, county):
    r = census.import_census(session, county.content, county.filename, actor="村委会", now=NOW)
    opened = census.open_cases(session, r.import_id, now=NOW)
    case = session.get(CensusCase, opened[0])
    school = session.get(School, case.school_id)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["学校代码", "学籍号", "姓名", "身份证号", "年级", "班级"])
    w.writerow([school.code, "G-CENSUS-1", case.name, case.id_number, "1", "一年级(1)班"])
    result = import_roster(session, buf.getvalue().encode(), "roster.csv", now=NOW)
    assert result.errors == [] and result.census_closed == [case.id]
    session.refresh(case)
    assert case.state == "enrolled" and case.pupil_id is not None and case.closed_on is not None
    last = session.scalars(select(CensusEvent).where(CensusEvent.census_case_id == case.id)
                           .order_by(CensusEvent.seq.desc())).first()
    assert (last.event, last.from_state, last.to_state, last.actor) == ("enrol", "not_enrolled", "enrolled", "system:roster")
    assert "G-CENSUS-1" in last.reason
    assert session.scalar(select(func.count()).select_from(CensusDuty).where(
        CensusDuty.census_case_id == case.id, CensusDuty.status == "open")) == 0
    others = session.scalars(select(CensusCase.state).where(CensusCase.id.in_(opened[1:]))).all()
    assert set(others) == {"not_enrolled"}
    # a later import of the register still lists the child, now matched to the roster: no new case
    retyped = county.content.decode("utf-8-sig").replace("\r\n", "\n").encode("utf-8")
    r2 = census.import_census(session, retyped, "after.csv", actor="村委会", now=NOW, year=2026)
    assert not r2.duplicate and r2.summary["not_enrolled"] == len(opened) - 1
    assert census.open_cases(session, r2.import_id, now=NOW) == []


def test_staff_record_persuasion_and_an_exemption_and_a_closed_case_refuses_more(session, county):
    r = census.import_census(session, county.content, county.filename, actor="村委会", now=NOW)
    a, b = census.open_cases(session, r.import_id, now=NOW)[:2]
    census.act(session, a, "record_persuasion", actor="村干部", reason="入户动员，家长同意下周送学", now=NOW,
               action="village_persuasion")
    statuses = dict(session.execute(select(CensusDuty.action, CensusDuty.status).where(CensusDuty.census_case_id == a)).all())
    assert statuses == {"village_persuasion": "done", "school_persuasion": "open"}
    assert census.act(session, b, "exempt", actor="教育局", reason="延缓入学：经批准", now=NOW) is CensusState.exempted
    with pytest.raises(CensusForbidden):
        census.act(session, b, "record_persuasion", actor="村干部", reason="x", now=NOW)
    # an exempted child of the same census year is not reopened by the next import
    retyped = county.content.decode("utf-8-sig").replace("\r\n", "\n").encode("utf-8")
    r2 = census.import_census(session, retyped, "later.csv", actor="村委会", now=NOW)
    assert r2.summary["exempted"] == len(county.expected["exempted"]) + 1


def test_a_school_sees_only_its_own_census_children(session, county):
    from store.access.scope import Scope

    r = census.import_census(session, county.content, county.filename, actor="村委会", now=NOW)
    census.open_cases(session, r.import_id, now=NOW)
    everyone = census.case_rows(session)
    school_id = session.get(CensusCase, everyone[0]["id"]).school_id
    own = census.case_rows(session, Scope(school_ids=frozenset({school_id})))
    assert own and len(own) <= len(everyone)
    assert {c["school_code"] for c in own} == {session.get(School, school_id).code}
    assert census.case_rows(session, Scope(school_ids=frozenset({school_id}), class_ids=frozenset({1}))) == []


# -- the notice ----------------------------------------------------------------------------------------
def test_the_enrolment_notice_names_the_child_and_is_issued_once(session, county):
    r = census.import_census(session, county.content, county.filename, actor="村委会", now=NOW)
    done = census_step(session, r.import_id, actor="镇政府", now=NOW)
    assert len(done["documents"]) == len(done["opened"]) == len(county.expected["not_enrolled"])
    case = session.get(CensusCase, done["opened"][0])
    pdf = session.scalar(select(DocumentFile).where(DocumentFile.document_id == done["documents"][0],
                                                    DocumentFile.fmt == "pdf"))
    text = re.sub(r"\s+", "", subprocess.run(["pdftotext", str(file_path(pdf)), "-"], capture_output=True, text=True,
                                             check=True).stdout)
    assert case.name in text and "入学通知书" in text and "政发〔2026〕" in text
    assert case.id_number not in text, "the ID number is masked on the notice"
    assert issue_notices(session, [case.id], actor="镇政府", now=NOW) == done["documents"][:1]
    assert len(done["handoffs"]) == len(done["opened"]), "each notice is handed to the village committee"


def test_the_enrolment_notice_and_its_handoff_are_dated_when_the_case_opened_not_when_rendered(session, county):
    """An official paper carries the date of its act (issue 16 §2): the 失学 case's opening. A notice rendered a
    week later (a queue that ran late, a retry) and rendered again give that date, and the village committee's
    hand-off is sent then."""
    from datetime import timedelta
    from store.duties.handoffs import sync_handoffs
    from store.models.census import Handoff
    from store.models.documents import Document
    r = census.import_census(session, county.content, county.filename, actor="村委会", now=NOW)
    opened = census.open_cases(session, r.import_id, now=NOW)
    later = NOW + timedelta(days=9)
    [doc_id] = issue_notices(session, opened[:1], actor="镇政府", now=later)
    doc = session.get(Document, doc_id)
    assert doc.data["doc"]["issued_on"] == NOW.date().isoformat() and doc.year == NOW.year
    assert doc.data["record"]["deadline"] > NOW.date().isoformat()
    assert issue_notices(session, opened[:1], actor="镇政府", now=later + timedelta(days=30)) == [doc_id]
    [h] = session.scalars(select(Handoff).where(Handoff.id.in_(sync_handoffs(session, now=later)))).all()
    assert h.sent_at == NOW


# -- CLI ----------------------------------------------------------------------------------------------------
def test_census_import_and_report_through_the_cli(blank_db_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from store.db import make_engine, session_factory
    from cli.main import app

    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    runner = CliRunner()

    def baoxue(*args, code=0):
        result = runner.invoke(app, ["--db", blank_db_url, *args])
        assert result.exit_code == code, result.output
        return result.output

    baoxue("init", "--at", "2026-09-01T07:00")
    baoxue("generate", "--seed", "3", "--townships", "1", "--schools", "1", "--pupils-per-class", "3")
    engine = make_engine(blank_db_url)
    with session_factory(engine)() as s:
        reg = village_register(s, enrolled=5, unenrolled=2, exempted=1, out_of_age=1)
    engine.dispose()
    path = tmp_path / "register.csv"
    path.write_bytes(reg.content)
    out = json.loads(baoxue("census", "import", str(path), "--at", "2026-11-23T10:00", "--json"))
    assert out["opened"] == 2 and out["documents"] == 2 and out["handoffs"] == 2 and not out["duplicate"]
    again = json.loads(baoxue("census", "import", str(path), "--at", "2026-11-23T11:00", "--json"))
    assert again["duplicate"] and again["opened"] == 0
    rep = json.loads(baoxue("census", "report", "--json"))
    assert rep["open_cases"] == 2 and rep["counts"]["not_enrolled"] == 2
    assert "失学案件" in baoxue("census", "report")
    case_id = rep["cases"][0]["id"]
    baoxue("census", "act", str(case_id), "dismiss", "--reason", "已随父母迁出本县")
    baoxue("census", "act", str(case_id), "exempt", "--reason", "x", code=1)
    assert json.loads(baoxue("census", "report", "--json"))["open_cases"] == 1
    # 送达回证: the notices went to the village committees; one receipt recorded, a second refused
    pending = json.loads(baoxue("handoff", "list", "--as-of", "2026-11-23T12:00", "--json"))
    assert len(pending) == 2 and {h["recipient"] for h in pending} == {"village_committee"}
    first = pending[0]["id"]
    assert "签收" in baoxue("handoff", "ack", str(first), "--by", "村主任 王建国", "--at", "2026-11-24T09:00")
    baoxue("handoff", "ack", str(first), "--by", "别人", "--at", "2026-11-24T10:00", code=1)
    left = json.loads(baoxue("handoff", "list", "--as-of", "2026-11-30T12:00", "--stuck", "--json"))
    assert [h["id"] for h in left] == [pending[1]["id"]]


# -- web ------------------------------------------------------------------------------------------------------
def test_the_township_uploads_a_register_and_the_pages_show_cases_and_receipts(factory, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from store.db import Settings
    from tests.web_support import Clock, build_county, in_process_app
    from web.app import create_app
    from web.deps import SESSION_COOKIE

    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    with factory() as s:
        county = build_county(s)
        reg = village_register(s, enrolled=6, unenrolled=3, exempted=1, out_of_age=1)
        s.commit()
    app = in_process_app(factory, tmp_path / "archive", Clock(NOW))
    with TestClient(app) as client:
        def login(name):
            client.cookies.clear()
            client.cookies.set(SESSION_COOKIE, county.cookies[name])

        login("township")
        r = client.post("/census/upload", data={"csrf": county.csrf["township"]},
                        files={"file": ("register.csv", reg.content, "text/csv")})
        assert r.status_code == 200, r.text[:300]
        assert "新开失学案件" in r.text and "身份证号无效" in r.text
        login("school")  # a school cannot upload, and sees only its own census children
        assert client.post("/census/upload", data={"csrf": county.csrf["school"]},
                           files={"file": ("r.csv", reg.content, "text/csv")}).status_code == 403
        with factory() as s:
            home = s.scalar(select(School.id).where(School.code == county.school_codes[0]))
            own = s.scalars(select(CensusCase).where(CensusCase.school_id == home)).all()
            other = s.scalars(select(CensusCase).where(CensusCase.school_id != home)).all()
        page = client.get("/census").text
        assert all(c.name in page for c in own) and not any(c.name in page for c in other)
        login("teacher")
        assert client.get("/census").status_code == 403
        login("township")
        pending = client.get("/handoffs").text
        assert "入学通知书" in pending and "登记签收" in pending
        with factory() as s:
            from store.models.census import Handoff
            h = s.scalars(select(Handoff).order_by(Handoff.id)).first()
        r = client.post(f"/handoffs/{h.id}/ack", data={"csrf": county.csrf["township"], "received_by": "村主任 王建国",
                                                       "received_at": "2026-11-23T09:30"}, follow_redirects=False)
        assert r.status_code == 422, "received before it was sent (10:00)"
        r = client.post(f"/handoffs/{h.id}/ack", data={"csrf": county.csrf["township"], "received_by": "村主任 王建国",
                                                       "received_at": "2026-11-23T10:00"}, follow_redirects=False)
        assert r.status_code == 303
        assert "村主任 王建国" in client.get("/handoffs?all=1").text


def test_with_a_prefect_server_the_upload_starts_one_census_import_run(factory, tmp_path, monkeypatch):
    """The page hands the census step to the census-import deployment: one run per import, keyed by it."""
    from fastapi.testclient import TestClient

    from deploy.deployments import spec
    from store.db import Settings
    from tests.web_support import Clock, build_county
    from web.app import create_app
    from web.deps import SESSION_COOKIE
    from web.services import RunStarted

    class Recorder:  # the Prefect server's side of web.services.Deployments
        def __init__(self):
            self.calls = []

        def start(self, name, parameters, *, idempotency_key=None):
            self.calls.append((name, parameters, idempotency_key))
            return RunStarted("run-1", "http://prefect/runs/flow-run/run-1")

        def recent_runs(self, limit=50):
            return []

    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    with factory() as s:
        county = build_county(s)
        reg = village_register(s, enrolled=4, unenrolled=2, exempted=0, out_of_age=0, bad_rows=False)
        s.commit()
    runs = Recorder()
    app = create_app(Settings(archive_dir=tmp_path / "archive"), factory=factory, clock=Clock(NOW), deployments=runs, init=False)
    with TestClient(app) as client:
        client.cookies.set(SESSION_COOKIE, county.cookies["county"])
        r = client.post("/census/upload", data={"csrf": county.csrf["county"]}, files={"file": ("r.csv", reg.content, "text/csv")})
        # the county sees that a run does the work; the link to the run (Prefect) is the operator's (issue 18 item 5)
        assert r.status_code == 200 and "由流程运行完成" in r.text and "查看运行" not in r.text
    with factory() as s:
        import_id = s.scalar(select(func.max(CensusRow.import_id)))
        assert s.scalar(select(func.count()).select_from(CensusCase)) == 0, "the run opens the cases, not the page"
    assert runs.calls == [(spec("census-import").full_name, {"import_id": import_id, "as_of": NOW.isoformat()},
                           f"census-import-{import_id}")]


# -- the flow ----------------------------------------------------------------------------------------------
def _census_flow_runs() -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["census_import"]))))


def test_one_flow_run_per_import_opens_the_cases_and_a_second_run_changes_nothing(fresh_db, prefect_harness, tmp_path,
                                                                                  monkeypatch):
    from deploy.deployments import no_heartbeat
    from flows.census import census_import
    from store.models.census import Handoff
    from store.db import transaction
    from tasks.runtime import using

    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    with transaction(fresh_db) as s:
        setup_store(s, pupils_per_class=3, grades=(2, 6))
        reg = village_register(s, enrolled=6, unenrolled=3, exempted=1, out_of_age=1)
        imported = census.import_census(s, reg.content, reg.filename, actor="村委会", now=NOW)
    before = _census_flow_runs()
    with no_heartbeat(), using(fresh_db):
        first = census_import(import_id=imported.import_id, as_of=NOW)
        again = census_import(import_id=imported.import_id, as_of=NOW)
    assert _census_flow_runs() == before + 2, "one flow run per call, not one per child"
    assert (first["opened"], first["documents"], first["handoffs"]) == (3, 3, 3)
    assert (again["opened"], again["documents"], again["handoffs"]) == (0, 0, 0)
    assert first["summary"]["not_enrolled"] == 3 and "name" not in json.dumps(first["summary"])
    with transaction(fresh_db) as s:
        assert s.scalar(select(func.count()).select_from(CensusCase)) == 3
        assert s.scalar(select(func.count()).select_from(Handoff)) == 3


def test_an_xlsx_register_with_dates_as_cells_reads_like_the_csv(session, county):
    from openpyxl import Workbook

    rows = list(csv.reader(io.StringIO(county.content.decode("utf-8-sig"))))
    wb = Workbook()
    ws = wb.active
    ws.append(rows[0])
    for r in rows[1:]:
        try:
            born = datetime.strptime(r[2], "%Y-%m-%d")  # a date cell, as Excel keeps it
        except ValueError:
            born = r[2]
        ws.append([r[0], r[1], born, *r[3:]])
    buf = io.BytesIO()
    wb.save(buf)
    r = census.import_census(session, buf.getvalue(), "register.xlsx", actor="村委会", now=NOW)
    assert {k: r.summary[k] for k in county.expected} == {k: len(v) for k, v in county.expected.items()}
