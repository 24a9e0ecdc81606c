"""In Chromium (issue 18 items 1, 4, 5): the day's template comes back pre-filled; re-uploading a sheet
that would close a case shows the preview and applies nothing until 确认提交; a file with a bad row is
refused whole with the row listed; the case page gives the calendar dates of the next steps and, before
the morning check's end, when the first duty appears; the teacher's home page lists her duties of every
kind with overdue marks; after a submission run by a worker the page shows the result by itself."""
from __future__ import annotations

import threading
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from store.cases.context import CaseContext
from store.cases.intake import MarkIn, record_morning_check
from store.db import transaction
from store.models import Case, Pupil
from store.models.risk import WatchDuty, WatchEntry
from tests.web_support import browser, login, pupils_of_class, shot, site  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def _sheet(tmp_path, name: str, rows: list[tuple[str, str]]):
    path = tmp_path / name
    path.write_bytes(("学籍号,出勤状态\n" + "".join(f"{no},{st}\n" for no, st in rows)).encode("gbk"))
    return str(path)


def test_uploads_preview_before_closing_and_the_case_page_dates_its_next_steps(browser, site, tmp_path):
    base, factory, clock, county = site  # Monday 2026-11-16 08:00
    with transaction(factory) as s:
        pupils = [(p.student_no, p.name) for p in pupils_of_class(s, county.class_ids[0])]
    absent_no, absent_name = pupils[0]
    page = login(browser, base, "teacher")
    page.wait_for_url(f"{base}/teacher")
    page.goto(f"{base}/morning-check")
    page.set_input_files("input[name=file]", _sheet(tmp_path, "a.csv", [(absent_no, "缺勤")]))
    page.click("button:has-text('上传并提交')")
    page.wait_for_selector("text=晨检已记录")
    with transaction(factory) as s:
        case_id = s.scalar(select(Case.id))

    # 08:05, before the morning check's end: the case page says when the first duty appears, and dates each step
    page.goto(f"{base}/cases/{case_id}")
    assert page.inner_text("#first-duty") == "暂无。今日 09:00 晨检结束后生成（如学生仍未到校）"
    steps = page.inner_text("table.next-steps")
    assert "11月17日（周二） 09:00" in steps and "第2日 家访" in steps and "截止 11月17日（周二） 18:00" in steps
    assert "第5日 司法督促" in steps and "截止 11月24日（周二） 17:00" in steps  # 2 school days after Friday
    shot(page, "case-page")

    # the template is the day as recorded: the absent pupil stays 无故缺勤
    template = page.request.get(f"{base}/morning-check/template.csv").text()
    assert f"{absent_no},{absent_name}," in template and ",无故缺勤," in template.split(absent_no)[1].split("\n")[0]

    # everyone 到校 (the old template sent back): a preview, nothing applied
    everyone = _sheet(tmp_path, "b.csv", [(no, "到校") for no, _ in pupils])
    page.goto(f"{base}/morning-check")
    page.set_input_files("input[name=file]", everyone)
    page.click("button:has-text('上传并提交')")
    page.wait_for_selector("#check-preview")
    assert page.inner_text("#check-preview") == "将覆盖 1 条已上报记录，1 个案件将结案"
    assert absent_name in page.inner_text("table.grid")
    shot(page, "morning-check-confirm")
    with transaction(factory) as s:
        assert s.scalar(select(Case.state).where(Case.id == case_id)) == "absent"

    # a file with a bad row: refused whole, the row listed, nothing applied
    page.goto(f"{base}/morning-check")
    page.set_input_files("input[name=file]", _sheet(tmp_path, "c.csv", [(no, "到校") for no, _ in pupils[1:]]
                                                    + [(absent_no, "迟到")]))
    page.click("button:has-text('上传并提交')")
    page.wait_for_selector("text=整份晨检未保存")
    row = page.locator("tr", has_text="迟到")
    assert row.count() == 1 and row.locator("td").first.inner_text() == str(len(pupils) + 1)
    with transaction(factory) as s:
        assert s.scalar(select(Case.state).where(Case.id == case_id)) == "absent"

    # the pupil did come after all: confirmed, the case closes and the page links it
    page.goto(f"{base}/morning-check")
    page.set_input_files("input[name=file]", everyone)
    page.click("button:has-text('上传并提交')")
    page.click("#confirm-check")
    page.wait_for_selector("text=晨检已记录")
    assert page.locator(f"table.check-result a[href='/cases/{case_id}']").count() == 1
    with transaction(factory) as s:
        assert s.scalar(select(Case.state).where(Case.id == case_id)) == "returned"


class Worker:
    """The morning-check run on a worker: started now, recorded 1.5 s later (as the flow does, with
    the submission's time as its ``now``); the page knows only that a run started."""

    def __init__(self, factory):
        self.factory, self.threads = factory, []

    def start(self, name, parameters, *, idempotency_key=None):
        from web.services import RunStarted

        sub = next(iter(parameters.values()))
        t = threading.Timer(1.5, self._record, args=(sub,))
        t.start()
        self.threads.append(t)
        return RunStarted("1c0ffee0-0000-4000-8000-000000000002", "http://127.0.0.1:4200/runs/flow-run/1c0ffee0")

    def _record(self, sub):
        with transaction(self.factory) as s:
            record_morning_check(s, CaseContext(s), school_code=sub["school_code"], day=date.fromisoformat(sub["day"]),
                                 marks=[MarkIn(m["student_no"], m["status"], m.get("reason", "unknown"), m.get("row"))
                                        for m in sub["marks"]],
                                 source=sub["source"], submitted_by=sub["submitted_by"], complete=sub.get("complete", True),
                                 now=datetime.fromisoformat(sub["submitted_at"]))


@pytest.fixture
def worker_site(tmp_path):
    """As ``site``, with the morning check run by a :class:`Worker`: (url, factory, clock, county, worker)."""
    from store.db import Settings, make_engine, session_factory
    from store.schema import migrate
    from tests.web_support import Clock, build_county, live_server
    from web.app import create_app

    url = f"sqlite:///{tmp_path / 'worker.db'}"
    engine = make_engine(url)
    migrate(engine)
    factory = session_factory(engine)
    with transaction(factory) as s:
        county = build_county(s, sessions=False)
    clock, worker = Clock(), Worker(factory)
    app = create_app(Settings(database_url=url, archive_dir=tmp_path / "archive"), factory=factory, clock=clock,
                     deployments=worker)
    with live_server(app) as base:
        yield base, factory, clock, county, worker
        for t in worker.threads:
            t.join()
    engine.dispose()


def test_the_home_page_lists_every_kind_of_duty_and_the_submission_result_comes_by_itself(browser, worker_site, tmp_path):
    from store.models.accounts import User

    base, factory, clock, county, worker = worker_site
    with transaction(factory) as s:
        pupils = pupils_of_class(s, county.class_ids[0])
        teacher_staff = s.scalar(select(User.staff_id).where(User.username == "teacher"))
        watched = pupils[1]
        entry = WatchEntry(pupil_id=watched.id, school_id=watched.school_id, class_id=watched.class_id,
                           since=date(2026, 11, 2), rules=[], helper_id=teacher_staff, policy="default@1",
                           updated_at=clock())
        s.add(entry)
        s.flush()
        s.add(WatchDuty(entry_id=entry.id, rule_id="left_behind", action="home_contact", role="head_teacher",
                        status="open", created_at=clock() - timedelta(days=14), owner_id=teacher_staff,
                        due_on=date(2026, 11, 7)))
        absent_no, watched_name = pupils[0].student_no, watched.name
    page = login(browser, base, "teacher")
    page.wait_for_url(f"{base}/teacher")
    mine = page.inner_text("table.my-duties")
    assert "重点关注" in mine and "家校联系" in mine and watched_name in mine and "已逾期" in mine
    shot(page, "teacher-home")
    page.goto(f"{base}/risk")
    assert "已逾期" in page.inner_text("table.grid") and "baoxue" not in page.content()

    page.goto(f"{base}/morning-check")
    page.set_input_files("input[name=file]", _sheet(tmp_path, "a.csv", [(absent_no, "缺勤")]))
    page.click("button:has-text('上传并提交')")
    page.wait_for_selector("text=正在处理")
    assert "Prefect" not in page.content() and "4200" not in page.content()
    page.wait_for_selector("#check-done", timeout=20_000)  # the page refreshes itself until the run is recorded
    with transaction(factory) as s:
        case_id = s.scalar(select(Case.id).join(Pupil, Pupil.id == Case.pupil_id).where(Pupil.student_no == absent_no))
    assert case_id and page.locator(f"table.check-result a[href='/cases/{case_id}']").count() == 1
    shot(page, "morning-check-result")
