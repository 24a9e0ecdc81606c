"""A county or township file (rows name their school, 学校代码) through the API and the page (issue 20 item 3):
the rows of schools in the account's scope are recorded, all schools in one go; a row of any other school
refuses the whole file, named by its row; a school account still sends only its own school's rows;
closing cases needs the preview's confirmation; the same file again records nothing twice; a run's
submission carries the staged file and passes the worker's check of the submitter's scope. SQLite and
PostgreSQL."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from store.access.submission_check import refusal
from store.models import AttendanceMark, Case, Pupil, School, Submission
from store.models.intake_files import StagedFile
from tests.web_support import MONDAY, Clock, build_county, in_process_app, page_login

STATUS = {True: "缺勤", False: "到校"}


@pytest.fixture
def web(factory, tmp_path):
    with factory() as s:
        county = build_county(s, sessions=False)
        s.commit()
        schools = s.execute(select(School.code, School.township_id).order_by(School.id)).all()
        roster = s.execute(select(School.code, Pupil.student_no).join(School, School.id == Pupil.school_id)
                           .order_by(School.id, Pupil.id)).all()
    app = in_process_app(factory, tmp_path / "archive", Clock())
    with TestClient(app) as client:
        yield {"client": client, "app": app, "county": county, "factory": factory, "roster": roster,
               "township1": [c for c, t in schools if t == schools[0][1]],
               "township2": [c for c, t in schools if t != schools[0][1]]}


def sheet(rows, absent=lambda i: i % 7 == 0) -> bytes:
    lines = ["学校代码,学籍号,出勤状态,缺勤原因"] + [f"{code},{no},{STATUS[absent(i)]},厌学" for i, (code, no) in enumerate(rows)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def upload(web, username: str, content: bytes, **form):
    return web["client"].post("/api/morning-checks/upload", data=form,
                              headers={"Authorization": f"Bearer {web['county'].tokens[username]}"},
                              files={"file": ("county.csv", content, "text/csv")})


def count(factory, model) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_county_file_through_the_api_records_every_school_once_and_closing_needs_confirmation(web):
    roster, factory = web["roster"], web["factory"]
    absent = sum(1 for i in range(len(roster)) if i % 7 == 0)
    r = upload(web, "county", sheet(roster))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "applied" and len(body["opened_case_ids"]) == absent and body["summary"]["marks"] == len(roster)
    assert count(factory, Submission) == len(web["township1"] + web["township2"])  # each school its own check
    before = (count(factory, Case), count(factory, AttendanceMark), count(factory, Submission))

    again = upload(web, "county", sheet(roster))  # the same file: nothing doubled
    assert again.status_code == 200 and again.json()["opened_case_ids"] == [] and again.json()["summary"]["duplicate"]
    assert (count(factory, Case), count(factory, AttendanceMark), count(factory, Submission)) == before

    everyone_back = sheet(roster, absent=lambda i: False)
    preview = upload(web, "county", everyone_back)
    assert preview.status_code == 409 and preview.json()["preview"]["closing"] == absent
    assert (count(factory, Case), count(factory, AttendanceMark), count(factory, Submission)) == before
    done = upload(web, "county", everyone_back, confirm="true")
    assert done.status_code == 200 and len(done.json()["returned_case_ids"]) == absent


def test_rows_of_a_school_outside_the_township_refuse_the_file_and_are_named(web):
    roster, factory = web["roster"], web["factory"]
    mine = [(c, n) for c, n in roster if c in web["township1"]]
    other = [(c, n) for c, n in roster if c in web["township2"]][:2]
    r = upload(web, "township", sheet(mine + other))
    assert r.status_code == 422 and "未保存" in r.json()["message"]
    errors = r.json()["errors"]
    assert [e["row"] for e in errors] == [len(mine) + 2, len(mine) + 3]  # the header is row 1
    assert all("不在您的管辖范围内" in e["message"] and other[0][0] in e["message"] for e in errors)
    assert count(factory, Submission) == 0 and count(factory, Case) == 0

    ok = upload(web, "township", sheet(mine))  # its own schools only: recorded
    assert ok.status_code == 200 and count(factory, Submission) == len(web["township1"])
    assert upload(web, "township_other", sheet(mine)).status_code == 422  # the other township's account: refused


def test_a_school_account_sends_only_its_own_schools_rows(web):
    with web["factory"]() as s:
        own = s.scalar(select(School.code).join(Pupil, Pupil.school_id == School.id)
                       .where(Pupil.student_no == web["roster"][0][1]))
    user_school = next(c for c, _ in web["roster"] if c == own)
    mine = [(c, n) for c, n in web["roster"] if c == user_school]
    other = [(c, n) for c, n in web["roster"] if c != user_school][:1]
    r = upload(web, "school", sheet(mine + other))
    assert r.status_code == 422 and r.json()["errors"][0]["row"] == len(mine) + 2
    assert other[0][0] in r.json()["errors"][0]["message"] and count(web["factory"], Submission) == 0
    assert upload(web, "school", sheet(mine)).status_code == 200


def test_a_county_file_on_the_page_previews_then_confirms_by_the_staged_file(web):
    client, roster, factory = web["client"], web["roster"], web["factory"]
    page_login(client, "county")
    form = client.get("/morning-check")
    assert form.status_code == 200 and "学校代码" in form.text
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    r = client.post("/morning-check/upload", data={"csrf": csrf, "day": "2026-11-16"},
                    files={"file": ("全县.csv", sheet(roster), "text/csv")})
    assert r.status_code == 200 and "晨检已记录" in r.text
    opened = count(factory, Case)
    assert opened > 0

    r = client.post("/morning-check/upload", data={"csrf": csrf, "day": "2026-11-16"},
                    files={"file": ("全县.csv", sheet(roster, absent=lambda i: False), "text/csv")})
    assert r.status_code == 200 and "请确认晨检" in r.text and 'name="file_id"' in r.text
    assert 'name="marks"' not in r.text  # the confirmation names the kept file, it does not carry 10⁵ rows
    fields = {k: r.text.split(f'name="{k}" value="')[1].split('"')[0] for k in ("file_id", "file_sha256", "token")}
    with factory() as s:
        assert s.get(StagedFile, int(fields["file_id"])).created_by == "user:county"
    assert count(factory, Case) == opened and client.post("/morning-check/confirm", data={
        "csrf": csrf, "day": "2026-11-16", "source": "upload", **fields, "token": "0" * 16}).status_code == 200
    with factory() as s:  # a token of another preview: the preview again, nothing closed
        assert s.scalar(select(func.count()).select_from(Case).where(Case.state == "returned")) == 0
    done = client.post("/morning-check/confirm", data={"csrf": csrf, "day": "2026-11-16", "source": "upload", **fields})
    assert done.status_code == 200 and "晨检已记录" in done.text
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Case).where(Case.state == "returned")) == opened


class Started:
    """Stands in for the Prefect server: records the run that would be started."""

    def __init__(self):
        self.started = []

    def start(self, name, parameters, *, idempotency_key=None):
        from web.services import RunStarted

        self.started.append((name, parameters))
        return RunStarted("1c0ffee0-0000-4000-8000-000000000002", None)


def test_a_county_file_becomes_one_run_whose_submitter_the_worker_checks(web):
    from store.access.submission_check import submitter_refusal

    web["app"].state.deployments = fake = Started()
    mine = [(c, n) for c, n in web["roster"] if c in web["township1"]]
    r = upload(web, "township", sheet(mine))
    assert r.status_code == 202 and r.json()["mode"] == "run" and count(web["factory"], Submission) == 0
    (_, params), = fake.started
    submission = params["submission"]
    assert submission["file_id"] and sorted(submission["schools"]) == sorted(web["township1"])
    assert "marks" not in submission or submission["marks"] == []  # the rows stay in the staged file
    from tasks.intake import MorningCheckSubmission

    content = MorningCheckSubmission(**submission).content()  # as the worker reads its parameter
    with web["factory"]() as s:
        assert refusal(s, content, submission["signature"], now=MONDAY) is None
        # a worker refuses schools outside the account's scope, and a school account's county file
        assert "不能提交学校" in submitter_refusal(s, "user:township", web["township2"], [], complete=True, county_file=True)
        assert "不能提交学校" in submitter_refusal(s, "user:school", web["township1"], [], complete=True, county_file=True)
        assert "角色不能提交" in submitter_refusal(s, "user:township", web["township1"][:1], [], complete=True)  # inline: no
