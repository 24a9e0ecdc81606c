"""住校生出入校门登记 (seed 000 §二.3): exits with approval, alerts, the periodic check, the term archive."""
from __future__ import annotations

import io
from datetime import date, datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from store.cases.context import CaseContext
from documents.gate_log import archive_term
from store.prevention.gate import boarders, check_gate, import_boarders, movements, record_exit, record_return, set_boarder
from store.models import SchoolClass
from store.prevention.common import PreventionError, duties
from store.models.prevention import GateArchive, GateMovement, PreventionDuty, PreventionEvent
from tests.store.test_truancy import small_county

FRIDAY = datetime(2026, 11, 20, 16, 0)
SUNDAY_EVENING = datetime(2026, 11, 22, 18, 0)


@pytest.fixture
def boarding(session):
    school, pupils = small_county(session)
    for p in pupils[:3]:
        set_boarder(session, p, dorm="男生3号楼201", actor="test", now=FRIDAY)
    head = session.scalar(select(SchoolClass).where(SchoolClass.id == pupils[0].class_id))
    from store.models import Staff
    return {"school": school, "pupils": pupils, "head": session.get(Staff, head.head_teacher_id)}


def alerts(session, kind=None):
    q = select(PreventionDuty.kind, PreventionDuty.pupil_id, PreventionDuty.owner_id).where(PreventionDuty.source == "gate")
    if kind:
        q = q.where(PreventionDuty.kind == kind)
    return session.execute(q.order_by(PreventionDuty.id)).all()


def test_an_approved_exit_fetched_by_a_parent_and_back_on_time_raises_nothing(session, boarding):
    ctx = CaseContext(session)
    p = boarding["pupils"][0]
    move = record_exit(session, ctx, p.student_no, at=FRIDAY, due_back_at=SUNDAY_EVENING, approved_by=boarding["head"].name,
                       approved_at=datetime(2026, 11, 20, 11, 0), fetched_by="王建国", relation="父亲", reason="周末回家",
                       actor="user:9", now=FRIDAY)
    assert move.approved and move.approver_staff_id == boarding["head"].id and move.fetched_relation == "父亲"
    assert [m["student_no"] for m in movements(session, away_only=True, as_of=datetime(2026, 11, 21, 12, 0))] == [p.student_no]
    record_return(session, p.student_no, at=datetime(2026, 11, 22, 17, 30), returned_with="王建国", actor="user:9",
                  now=datetime(2026, 11, 22, 17, 30))
    assert check_gate(session, ctx, datetime(2026, 11, 23, 9, 30)) == {"unapproved_exit": 0, "late_return": 0}
    assert alerts(session) == []
    assert movements(session, away_only=True, as_of=datetime(2026, 11, 23, 9, 30)) == []
    events = session.scalars(select(PreventionEvent.event).where(PreventionEvent.ref_id == move.id,
                                                                 PreventionEvent.subject == "gate")).all()
    assert events == ["exit", "return"]


def test_an_exit_without_approval_alerts_the_head_teacher_at_once(session, boarding):
    p = boarding["pupils"][1]
    record_exit(session, CaseContext(session), p.student_no, at=datetime(2026, 11, 18, 12, 10), due_back_at=datetime(2026, 11, 18, 14, 0),
                approved_by="", fetched_by=None, reason="自行离校", actor="user:9", now=datetime(2026, 11, 18, 12, 12))
    assert alerts(session) == [("unapproved_exit", p.id, boarding["head"].id)]
    listed = duties(session, as_of=datetime(2026, 11, 18, 12, 15), source="gate")
    assert listed[0]["label"].startswith("住校生未经班主任批准") and listed[0]["due_at"] == datetime(2026, 11, 18, 13, 12)
    # an approved exit without anybody fetching the pupil breaks the rule too (无家长接送的，不得离校)
    q = boarding["pupils"][2]
    record_exit(session, CaseContext(session), q.student_no, at=datetime(2026, 11, 18, 12, 0), due_back_at=datetime(2026, 11, 18, 18, 0),
                approved_by=boarding["head"].name, fetched_by="", actor="user:9", now=datetime(2026, 11, 18, 12, 0))
    assert [a[1] for a in alerts(session, "unapproved_exit")] == [p.id, q.id]


def test_a_pupil_not_back_by_the_due_time_alerts_after_the_grace_and_only_once(session, boarding):
    ctx = CaseContext(session)
    p, q = boarding["pupils"][0], boarding["pupils"][1]
    for x in (p, q):
        record_exit(session, ctx, x.student_no, at=FRIDAY, due_back_at=SUNDAY_EVENING, approved_by=boarding["head"].name,
                    fetched_by="家长", relation="母亲", actor="user:9", now=FRIDAY)
    assert check_gate(session, ctx, datetime(2026, 11, 22, 18, 29))["late_return"] == 0  # within the 30-minute grace
    record_return(session, q.student_no, at=datetime(2026, 11, 22, 18, 20), actor="user:9", now=datetime(2026, 11, 22, 18, 20))
    assert check_gate(session, ctx, datetime(2026, 11, 22, 18, 30))["late_return"] == 1
    assert alerts(session, "late_return") == [("late_return", p.id, boarding["head"].id)]
    assert check_gate(session, ctx, datetime(2026, 11, 23, 9, 30))["late_return"] == 0  # idempotent
    # back on Monday morning: the alert stays for the head teacher to close with a note
    record_return(session, p.student_no, at=datetime(2026, 11, 23, 7, 40), actor="user:9", now=datetime(2026, 11, 23, 7, 40))
    assert session.scalar(select(PreventionDuty.status).where(PreventionDuty.kind == "late_return")) == "open"
    # a return recorded late but before any check still raises the alert
    record_exit(session, ctx, q.student_no, at=datetime(2026, 11, 27, 16, 0), due_back_at=datetime(2026, 11, 29, 18, 0),
                approved_by=boarding["head"].name, fetched_by="家长", actor="user:9", now=datetime(2026, 11, 27, 16, 0))
    record_return(session, q.student_no, at=datetime(2026, 11, 30, 8, 0), actor="user:9", now=datetime(2026, 11, 30, 8, 0))
    assert check_gate(session, ctx, datetime(2026, 11, 30, 9, 30))["late_return"] == 1


def test_refusals(session, boarding):
    ctx = CaseContext(session)
    day_pupil, p = boarding["pupils"][3], boarding["pupils"][0]
    with pytest.raises(PreventionError, match="不是住校生"):
        record_exit(session, ctx, day_pupil.student_no, at=FRIDAY, due_back_at=SUNDAY_EVENING, approved_by="x",
                    fetched_by="y", actor="t", now=FRIDAY)
    with pytest.raises(PreventionError, match="返校时间应晚于"):
        record_exit(session, ctx, p.student_no, at=FRIDAY, due_back_at=FRIDAY, approved_by="x", fetched_by="y", actor="t", now=FRIDAY)
    with pytest.raises(PreventionError, match="没有未返校"):
        record_return(session, p.student_no, at=FRIDAY, actor="t", now=FRIDAY)
    record_exit(session, ctx, p.student_no, at=FRIDAY, due_back_at=SUNDAY_EVENING, approved_by="x", fetched_by="y", actor="t",
                now=FRIDAY)
    with pytest.raises(PreventionError, match="已离校未返校"):
        record_exit(session, ctx, p.student_no, at=FRIDAY, due_back_at=SUNDAY_EVENING, approved_by="x", fetched_by="y",
                    actor="t", now=FRIDAY)


def test_boarders_from_a_file_with_a_bad_row(session, boarding):
    pupils = boarding["pupils"]
    data = (f"学籍号,住校,宿舍\n{pupils[3].student_no},是,女生1号楼105\n{pupils[0].student_no},否,\nX-NOPE,是,\n").encode()
    out = import_boarders(session, data, "b.csv", actor="test", now=FRIDAY)
    assert out["boarding"] == 1 and out["day_pupils"] == 1 and [e[0] for e in out["errors"]] == [4]
    assert {b["student_no"] for b in boarders(session)} == {pupils[1].student_no, pupils[2].student_no, pupils[3].student_no}


def test_term_archive_writes_the_log_and_marks_it(session, boarding, tmp_path, monkeypatch):
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path))
    ctx = CaseContext(session)
    p = boarding["pupils"][0]
    record_exit(session, ctx, p.student_no, at=FRIDAY, due_back_at=SUNDAY_EVENING, approved_by=boarding["head"].name,
                fetched_by="王建国", relation="父亲", reason="周末回家", actor="t", now=FRIDAY)
    record_return(session, p.student_no, at=datetime(2026, 11, 23, 8, 0), actor="t", now=datetime(2026, 11, 23, 8, 0))
    check_gate(session, ctx, datetime(2026, 11, 23, 9, 30))
    code = boarding["school"].code
    with pytest.raises(PreventionError, match="尚未结束"):
        archive_term(session, ctx, code, day=date(2026, 11, 23), actor="t", now=datetime(2026, 11, 23, 10, 0))
    arch = archive_term(session, ctx, code, day=date(2026, 11, 23), actor="t", now=datetime(2027, 1, 25, 10, 0))
    assert (arch.term, arch.first_day, arch.last_day, arch.movements, arch.alerts, arch.partial) == (
        "2026—2027学年第一学期", date(2026, 9, 1), date(2027, 1, 22), 1, 1, False)
    wb = load_workbook(io.BytesIO((tmp_path / arch.path).read_bytes()))
    cells = [c for row in wb.active.iter_rows(values_only=True) for c in row if c]
    assert "王建国" in cells and boarding["head"].name in cells and "逾期未返" in cells
    assert any(str(c).endswith("住校学生进出校门登记表") for c in cells)
    assert session.scalar(select(func.count()).select_from(GateMovement).where(GateMovement.archive_id == arch.id)) == 1
    again = archive_term(session, ctx, code, day=date(2026, 11, 23), actor="t", now=datetime(2027, 1, 26, 10, 0))
    assert again.id == arch.id and session.scalar(select(func.count()).select_from(GateArchive)) == 1


# -- the pages -------------------------------------------------------------------------------------------
def seed_prevention(session, pupil_ids: list[int], now: datetime) -> None:
    """Each pupil boards and left the gate without approval, not back yet; tiers from their marks."""
    from store.models import Pupil
    from store.prevention.truancy import apply_tiers
    ctx = CaseContext(session)
    for pid in pupil_ids:
        p = session.get(Pupil, pid)
        set_boarder(session, p, dorm="1号楼", actor="test", now=now)
        record_exit(session, ctx, p.student_no, at=now.replace(hour=12), due_back_at=now.replace(hour=14),
                    approved_by="", fetched_by="", reason="自行离校", actor="test", now=now)
    check_gate(session, ctx, now)
    apply_tiers(session, ctx, now)


@pytest.fixture
def web(factory, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from tests.web_support import Clock, build_county, pupils_of_class, in_process_app
    with factory() as s:
        county = build_county(s)
        mine = pupils_of_class(s, county.class_ids[0])
        other = pupils_of_class(s, county.class_ids[1])
        for p in mine[:2] + other[:1]:
            set_boarder(s, p, dorm="2号楼", actor="test", now=datetime(2026, 11, 16, 7, 0))
        ids = {"mine": [p.student_no for p in mine[:2]], "other": other[0].student_no, "other_id": other[0].id,
               "mine_id": mine[0].id}
        s.commit()
    clock = Clock(datetime(2026, 11, 18, 12, 0))
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path))
    app = in_process_app(factory, tmp_path, clock)
    with TestClient(app) as client:
        yield {"client": client, "county": county, "clock": clock, "factory": factory, **ids}


def login(w, username):
    from web.deps import SESSION_COOKIE
    w["client"].cookies.clear()
    w["client"].cookies.set(SESSION_COOKIE, w["county"].cookies[username])
    return w["county"].csrf[username]


def test_head_teacher_records_an_exit_and_a_return_and_closes_the_alert_on_the_pages(web):
    client, csrf = web["client"], login(web, "teacher")
    page = client.get("/gate")
    assert page.status_code == 200 and "登记离校" in page.text
    r = client.post("/gate/out", data={"csrf": csrf, "student_no": web["mine"][0], "out_at": "2026-11-18T12:00",
                                       "due_back_at": "2026-11-18T14:00", "approved_by": "", "fetched_by": "",
                                       "reason": "自行离校"}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/gate")
    assert "住校生未经班主任批准" in page.text and "现未返校" in page.text
    assert "门卫提醒、旷课分级待办 1 项" in client.get("/teacher").text  # and on the head teacher's home page
    r = client.post("/gate/out", data={"csrf": csrf, "student_no": web["mine"][1], "out_at": "2026-11-18T12:00",
                                       "due_back_at": "2026-11-18T17:00", "approved_by": "李老师",
                                       "fetched_by": "张桂兰", "relation": "祖母"}, follow_redirects=False)
    assert r.status_code == 303
    r = client.post("/gate/in", data={"csrf": csrf, "student_no": web["mine"][1], "returned_with": "张桂兰"},
                    follow_redirects=False)
    assert r.status_code == 303
    with web["factory"]() as s:
        moves = s.execute(select(GateMovement.approved, GateMovement.in_at).order_by(GateMovement.id)).all()
        duty_id = s.scalar(select(PreventionDuty.id).where(PreventionDuty.kind == "unapproved_exit"))
    assert moves == [(False, None), (True, datetime(2026, 11, 18, 12, 0))]
    r = client.post(f"/prevention/duties/{duty_id}/done", data={"csrf": csrf, "note": "已联系家长，学生在家"},
                    follow_redirects=False)
    assert r.status_code == 303
    alerts_part = client.get("/gate").text.split("现未返校")[0]
    assert "住校生未经班主任批准" not in alerts_part and "没有待办事项" in alerts_part  # the alert left the open list


def test_pages_refuse_pupils_and_duties_outside_the_scope(web):
    client, csrf = web["client"], login(web, "teacher_next_class")
    # the next class's teacher cannot record an exit of a pupil of the first class, nor close its alert
    r = client.post("/gate/out", data={"csrf": csrf, "student_no": web["mine"][0], "out_at": "2026-11-18T12:00",
                                       "due_back_at": "2026-11-18T14:00"}, headers={"accept": "text/html"})
    assert r.status_code == 422 and "不在您的管辖范围内" in r.text
    with web["factory"]() as s:
        seed_prevention(s, [web["mine_id"]], datetime(2026, 11, 18, 12, 0))
        s.commit()
        duty_id = s.scalar(select(PreventionDuty.id).where(PreventionDuty.pupil_id == web["mine_id"]))
        before = s.scalar(select(func.count()).select_from(GateMovement))
    r = client.post(f"/prevention/duties/{duty_id}/done", data={"csrf": csrf, "note": "x"})
    assert r.status_code == 404
    r = client.post("/gate/in", data={"csrf": csrf, "student_no": web["mine"][0]})
    assert r.status_code == 422
    assert client.get(f"/truancy?pupil={web['mine_id']}").status_code == 404
    assert client.get(f"/truancy?pupil={web['other_id']}").status_code == 200
    with web["factory"]() as s:
        assert s.scalar(select(func.count()).select_from(GateMovement)) == before
        assert s.scalar(select(PreventionDuty.status).where(PreventionDuty.id == duty_id)) == "open"
    # offices read the tiers (masked), never the gate form
    login(web, "township")
    assert client.get("/gate").status_code == 403
    assert client.get("/truancy").status_code == 200


# -- the command line ------------------------------------------------------------------------------------
def test_gate_out_in_check_and_report_through_the_cli(blank_db_url, tmp_path, monkeypatch):
    import json

    from tests.cli.test_cli import baoxue, pupil_numbers
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path))
    db = blank_db_url
    baoxue(db, "init", "--at", "2026-09-01T07:00")
    baoxue(db, "generate", "--seed", "3", "--townships", "1", "--schools", "1", "--pupils-per-class", "2")
    no = pupil_numbers(db)[0]
    baoxue(db, "gate", "out", no, "--due", "2026-11-20T18:00", "--at", "2026-11-20T16:00", code=1)  # not a boarder
    baoxue(db, "gate", "board", no, "--dorm", "3号楼", "--at", "2026-11-01T08:00")
    out = json.loads(baoxue(db, "gate", "out", no, "--due", "2026-11-20T18:00", "--at", "2026-11-20T16:00", "--json"))
    assert out["alert"] is True and out["approved"] is False
    assert json.loads(baoxue(db, "gate", "check", "--as-of", "2026-11-20T18:31", "--json")) == {
        "unapproved_exit": 0, "late_return": 1, "overdue": 1}  # the unapproved-exit alert was due at 17:00
    baoxue(db, "gate", "in", no, "--at", "2026-11-20T19:00")
    report = json.loads(baoxue(db, "gate", "report", "--as-of", "2026-11-21T08:00", "--json"))
    school = report["schools"][0]
    assert (school["movements"], school["late"], school["unapproved"], school["away_now"], school["open_alerts"]) == (
        1, 1, 1, [], 2)
    baoxue(db, "gate", "report", "--archive", "--as-of", "2026-11-21T08:00", code=1)  # the term is not over
    archived = json.loads(baoxue(db, "gate", "report", "--archive", "--partial", "--as-of", "2026-11-21T08:00", "--json"))
    assert archived["schools"][0]["archive"]["movements"] == 1
    assert (tmp_path / archived["schools"][0]["archive"]["path"]).exists()


# -- the demo's story lines --------------------------------------------------------------------------------
def test_the_demo_gate_round_gives_late_returns_and_an_unapproved_exit(factory, tmp_path, monkeypatch):
    from demo.prevention import gate_round, summary
    from tests.engine_helpers import setup_store
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path))
    with factory() as s:
        setup_store(s, pupils_per_class=10, grades=(5, 6))
        s.commit()
    days = [date(2026, 11, d) for d in (16, 17, 18, 19, 20)]
    for n, day in enumerate(days, start=1):
        for at in ("10:30", "15:00"):
            gate_round(factory, datetime.fromisoformat(f"{day}T{at}"), n + 1, 6)
        with factory() as s:
            check_gate(s, CaseContext(s), datetime.combine(day, datetime.min.time()).replace(hour=23))
            s.commit()
    got = summary(factory)
    assert got["boarders"] >= 3 and got["gate_movements"] == 10
    duties = got["prevention_duties"]
    by_kind = {k: sum(n for key, n in duties.items() if key.startswith(k)) for k in ("gate:unapproved_exit", "gate:late_return")}
    assert by_kind["gate:unapproved_exit"] == 1 and by_kind["gate:late_return"] >= 2
    assert any(k.endswith(":done") for k in duties) and any(not k.endswith(":done") for k in duties)  # some closed


def test_the_truancy_page_shows_a_pupils_tiers_and_links_the_written_warning(web):
    from documents.truancy_warning import issue_warnings, pending
    from store.cases.intake import MarkIn, record_morning_check
    from store.models import School
    from store.prevention.truancy import apply_tiers
    with web["factory"]() as s:
        code = s.scalar(select(School.code).join(SchoolClass, SchoolClass.school_id == School.id)
                        .where(SchoolClass.id == web["county"].class_ids[0]))
        for day in (date(2026, 11, 16), date(2026, 11, 18)):
            record_morning_check(s, CaseContext(s), school_code=code, day=day, marks=[MarkIn(web["mine"][0], "缺勤")],
                                 source="cli", submitted_by="test", now=datetime.combine(day, datetime.min.time()), complete=False)
        apply_tiers(s, CaseContext(s), datetime(2026, 11, 18, 9, 30))
        [doc_id] = issue_warnings(s, pending(s), actor="system", now=datetime(2026, 11, 18, 9, 30))
        s.commit()
    client = web["client"]
    login(web, "teacher")
    page = client.get(f"/truancy?pupil={web['mine_id']}")
    assert page.status_code == 200 and "第二次旷课：班主任书面警告" in page.text and f"/documents/{doc_id}.pdf" in page.text
    assert client.get(f"/documents/{doc_id}.pdf").content.startswith(b"%PDF-")
    assert "第2级" in client.get("/truancy").text
    login(web, "teacher_next_class")
    assert client.get(f"/documents/{doc_id}.pdf").status_code in (403, 404)
    assert "第2级" not in client.get("/truancy").text


def test_the_roster_column_marks_boarders(session, boarding):
    from store.ingest.roster import import_roster
    school, pupils = boarding["school"], boarding["pupils"]
    klass = session.get(SchoolClass, pupils[3].class_id)
    data = ("学校代码,学籍号,姓名,年级,班级,住校,宿舍\n"
            f"{school.code},{pupils[3].student_no},{pupils[3].name},{klass.grade},{klass.name},是,女生1号楼105\n"
            f"{school.code},{pupils[0].student_no},{pupils[0].name},{klass.grade},{klass.name},否,\n").encode()
    result = import_roster(session, data, "roster.csv", now=datetime(2026, 11, 16, 8, 0))
    assert result.errors == []
    assert {b["student_no"]: b["dorm"] for b in boarders(session)} == {
        pupils[1].student_no: "男生3号楼201", pupils[2].student_no: "男生3号楼201", pupils[3].student_no: "女生1号楼105"}
