"""Reconciliation of submitted monthly figures with the ledger (seed 001 grounds 8–9), and the CLI of
issue 8 parts 4–5 (risk list/explain, reconcile MONTH), on both databases."""
from __future__ import annotations

import json
from datetime import date, datetime

import pytest
from sqlalchemy import select

from documents.reports import ScopeArg as DocScope, accountability_sheet
from store.reporting import reconcile as rc
from store.reporting import reports as rp
from store.cases.actions import act
from store.cases.context import CaseContext
from store.models import Case, Pupil, School
from store.models.reconcile import SubmittedReport
from tasks.runtime import using
from tests.engine_helpers import morning, setup_store, sweep
from tests.cli.test_cli import baoxue, pupil_numbers

DAYS = [date(2026, 11, d) for d in (16, 17, 18, 19, 20)]
AT = datetime(2026, 11, 23, 10, 0)


def _ledger(factory, session):
    """Two schools; the first has three pupils absent all week (dropouts), one back on Wednesday."""
    code, pupils = setup_store(session, pupils_per_class=5, grades=(2, 8), schools=2)
    other = session.scalar(select(School.code).where(School.code != code).order_by(School.id))
    session.commit()
    for i, day in enumerate(DAYS):
        morning(factory, code, day, pupils[:4] if i < 2 else pupils[:3])
        morning(factory, other, day, [])
        sweep(factory, day)
    return code, other, pupils


def _cases(session, code, states) -> list[int]:
    return sorted(session.scalars(select(Case.id).join(School, School.id == Case.school_id)
                                  .where(School.code == code, Case.state.in_(states))))


def test_the_ledger_side_counts_like_the_monthly_report(factory, session):
    code, other, _ = _ledger(factory, session)
    for c in (code, other):
        scope = rp.scope_of(session, "school", c)
        fig = rp.ledger_figures(session, scope, rp.month_period(2026, 11), AT)
        for as_of in (None, AT):  # now, and from the case history at a cut-off after the last event
            ledger = rc.ledger_cases(session, list(scope.school_ids), "2026-11", as_of)[scope.school_ids[0]]
            assert {k: len(v) for k, v in ledger.items()} == {k: fig[k] for k in rc.FIELDS}


def test_differences_are_listed_with_the_cases_behind_them(factory, session):
    code, other, _ = _ledger(factory, session)
    dropouts = _cases(session, code, rp.DROPOUT_STATES)
    assert len(dropouts) == 3
    rc.submit_figures(session, school_code=code, period="2026-11", by="校长", at=AT,
                      figures={"dropouts": 1, "out_of_school": 1, "opened": 4, "returned": 1})
    rc.submit_figures(session, school_code=other, period="2026-11", by="校长", at=AT,
                      figures={"dropouts": 0, "out_of_school": 0, "opened": 0, "returned": 0})
    rows = {r["school_code"]: r for r in rc.reconcile_period(session, period="2026-11", as_of=AT)}
    assert rows[other]["differences"] == [] and not rows[other]["hides_open_cases"]
    mine = rows[code]
    assert mine["hides_open_cases"] and mine["status"] == "submitted"
    diffs = {d["field"]: d for d in mine["differences"]}
    assert set(diffs) == {"dropouts", "out_of_school"}            # opened 4 and returned 1 agree with the ledger
    assert (diffs["dropouts"]["submitted"], diffs["dropouts"]["ledger"], diffs["dropouts"]["diff"]) == (1, 3, -2)
    assert [c["case_id"] for c in diffs["dropouts"]["cases"]] == dropouts
    assert all("*" in c["pupil"] for c in diffs["dropouts"]["cases"])  # names masked in the stored evidence
    # a pupil returning after the submission does not change what the report is compared with
    later = datetime(2026, 11, 24, 9, 0)
    act(session, CaseContext(session), dropouts[0], "mark_returned", actor="班主任", at=later, now=later)
    again = {r["school_code"]: r for r in rc.reconcile_period(session, period="2026-11", as_of=later)}[code]
    assert again["differences"] == mine["differences"]


def test_a_report_hiding_open_cases_is_accepted_only_with_an_explanation_kept_in_evidence(factory, session):
    code, _, _ = _ledger(factory, session)
    sub = rc.submit_figures(session, school_code=code, period="2026-11", by="校长", at=AT, figures={"dropouts": 0})
    with pytest.raises(rc.ReconcileError, match="须填写说明") as refused:
        rc.accept_submission(session, sub.id, by="镇教办", at=AT, explanation="  ")
    assert str(_cases(session, code, rp.DROPOUT_STATES)[0]) in str(refused.value)
    assert session.get(SubmittedReport, sub.id).status == "submitted"
    with pytest.raises(LookupError):  # outside the reviewer's scope
        rc.accept_submission(session, sub.id, by="other township", at=AT, explanation="x", school_ids=[-1])
    done = rc.accept_submission(session, sub.id, by="镇教办", at=AT, explanation="三人外出务工，学校漏报，已责令更正")
    assert (done.status, done.accepted_by, done.explanation) == ("accepted", "镇教办", "三人外出务工，学校漏报，已责令更正")
    with pytest.raises(rc.ReconcileError, match="已审核通过"):
        rc.submit_figures(session, school_code=code, period="2026-11", by="校长", at=AT, figures={"dropouts": 3})
    county = session.scalar(select(School.township_id).where(School.code == code))
    from store.models import Jurisdiction
    township = session.get(Jurisdiction, county)
    sheet = accountability_sheet(session, DocScope("township", township.code), "2026-11", as_of=datetime(2026, 11, 30, 17))
    [row] = sheet["reconciliation"]
    assert (row["label"], row["submitted"], row["ledger"], row["status"]) == ("辍学人数", 0, 3, "accepted")
    assert row["explanation"].startswith("三人外出务工") and row["ground"] == "底数不清、瞒报、弄虚作假"
    assert row["case_ids"] == _cases(session, code, rp.DROPOUT_STATES)


def test_an_honest_report_is_accepted_without_explanation_and_the_task_counts_missing_schools(factory, session):
    from tasks.oversight import reconcile_submissions

    code, other, _ = _ledger(factory, session)
    sub = rc.submit_figures(session, school_code=code, period="2026-11", by="校长", at=AT,
                            figures={"dropouts": 3, "out_of_school": 3})
    session.commit()
    with using(factory):
        out = reconcile_submissions.fn("2026-11", AT)
    assert out == {"period": "2026-11", "schools": 2, "missing": 1, "with_differences": 0, "hiding_open_cases": []}
    assert rc.accept_submission(session, sub.id, by="镇教办", at=AT).status == "accepted"
    with pytest.raises(rc.ReconcileError, match="未知的上报项"):
        rc.submit_figures(session, school_code=other, period="2026-11", by="x", at=AT, figures={"enrolled": 1})


# -- the command line --------------------------------------------------------------------------------------
@pytest.fixture
def cli_county(blank_db_url):
    baoxue(blank_db_url, "init", "--at", "2026-09-01T07:00")
    baoxue(blank_db_url, "generate", "--seed", "3", "--townships", "1", "--schools", "1", "--pupils-per-class", "3",
           "--policy", "default")
    return blank_db_url


def test_risk_and_reconcile_through_the_cli(cli_county):
    db = cli_county
    pupil = pupil_numbers(db)[0]
    for day in ("2026-11-16", "2026-11-18", "2026-11-19", "2026-11-20"):   # back on the 17th: a relapse
        baoxue(db, "absent", pupil, "--date", day, "--at", f"{day}T08:10")
        baoxue(db, "advance", "--as-of", f"{day}T09:30")
        if day == "2026-11-16":
            baoxue(db, "act", "1", "mark_returned", "--at", "2026-11-17T08:10")
    refreshed = json.loads(baoxue(db, "risk", "refresh", "--as-of", "2026-11-20T09:40", "--json"))
    assert refreshed["added"] >= 1
    listed = json.loads(baoxue(db, "risk", "list", "--json"))
    mine = next(r for r in listed if r["student_no"] == pupil)
    assert "relapse" in {r["rule"] for r in mine["rules"]}
    assert "done" in baoxue(db, "risk", "done", str(mine["duties"][0]["id"]), "--by", "王老师", "--at", "2026-11-20T15:00")
    again = next(r for r in json.loads(baoxue(db, "risk", "list", "--json")) if r["student_no"] == pupil)
    assert again["duties"][0]["status"] == "done"
    baoxue(db, "risk", "done", "999999", "--by", "王老师", code=1)
    explained = json.loads(baoxue(db, "risk", "explain", pupil, "--day", "2026-11-20", "--json"))
    fired = {r["rule"]: r for r in explained["rules"]}
    assert fired["relapse"]["fired"] and "2026-11-18" in fired["relapse"]["why"]
    assert explained["events"][0]["event"] == "added"
    assert "重点关注学生" in baoxue(db, "risk", "list")
    baoxue(db, "risk", "explain", "NOBODY", code=1)

    school = json.loads(baoxue(db, "reconcile", "2026-11", "--as-of", "2026-11-23T10:00", "--json"))[0]
    assert school["status"] == "missing"
    baoxue(db, "submit-figures", school["school_code"], "2026-11", "--dropouts", "0", "--out-of-school", "0",
           "--by", "校长", "--at", "2026-11-23T10:00")
    [row] = json.loads(baoxue(db, "reconcile", "2026-11", "--as-of", "2026-11-23T11:00", "--json"))
    assert row["hides_open_cases"] and {d["field"] for d in row["differences"]} == {"dropouts", "out_of_school"}
    text = baoxue(db, "reconcile", "2026-11", "--as-of", "2026-11-23T11:00")
    assert "瞒报在办案件" in text and "辍学人数" in text
    out = baoxue(db, "accept-figures", str(row["submission_id"]), "--by", "镇教办", code=1)
    assert "须填写说明" in out
    baoxue(db, "accept-figures", str(row["submission_id"]), "--by", "镇教办", "--explanation", "家长外出，已更正")
    [row] = json.loads(baoxue(db, "reconcile", "2026-11", "--json"))
    assert (row["status"], row["explanation"]) == ("accepted", "家长外出，已更正")
