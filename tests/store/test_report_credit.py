"""A report duty is done by what was already done (issue 18 item 2): a 周查表 submitted in the morning before the
day's duties are opened — the duty opened afterwards is opened done at the submission's time, by its submitter,
pointing at it, and never falls overdue (both DBs)."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from store.duties import ledger
from store.models import SchoolClass
from store.models.report_work import ReportDuty
from store.policy_files import PolicyRegistry
from store.reporting import people
from tests.engine_helpers import setup_store

MON = date(2026, 11, 16)  # the default policy's weekly count day


def test_a_weekly_count_submitted_before_its_duty_is_opened_does_the_duty(session):
    setup_store(session, pupils_per_class=3, grades=(3, 4))
    early, late = session.scalars(select(SchoolClass).order_by(SchoolClass.id)).all()[:2]
    at = datetime(2026, 11, 16, 7, 5)
    row, _ = people.submit_weekly(session, class_id=early.id, day=MON, counts={}, now=at, actor="head_teacher")
    people.open_weekly(session, day=MON, now=datetime(2026, 11, 16, 7, 30), policy_of=PolicyRegistry(session).get)
    duty = lambda k: session.scalar(select(ReportDuty).where(ReportDuty.class_id == k.id, ReportDuty.period == MON.isoformat()))
    d = duty(early)
    assert (d.status, d.done_at, d.done_by, d.done_ref_id, d.done_late) == ("done", at, "head_teacher", row.id, False)
    assert duty(late).status == "open"
    ledger.mark_overdue(session, datetime(2026, 11, 17, 8, 0), kinds=("report_due",))
    assert (duty(early).status, duty(late).status) == ("done", "overdue")
