"""Tasks of the people's reporting (issue 17 items 1–2; ``store.reporting.people``): draft the reports
due soon and open their owners' duties, open the day's weekly-count duties, mark the missed ones
overdue. Every step is idempotent (one duty per report/class and period, unique in the store)."""
from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from store.db import transaction
from store.duties.ledger import mark_overdue
from store.models import Jurisdiction
from store.reporting import people
from store.reporting.reports import ReportPeriod

from tasks.runtime import DB_RETRIES, store


def _county_policy(s):
    code = s.scalar(select(Jurisdiction.code).where(Jurisdiction.level == "county").order_by(Jurisdiction.id).limit(1))
    return people.policy_for(s, "county", code) if code else None


@task(name="open_report_duties", **DB_RETRIES, cache_policy=NO_CACHE)
def open_report_duties(as_of: datetime) -> dict:
    """The monthly drafts due within the lead days, the day's weekly counts, and the overdue marking."""
    with transaction(store()) as s:
        policy = _county_policy(s)
        drafted = people.draft_due(s, policy=policy, now=as_of) if policy else {}
        weekly = people.open_weekly(s, day=as_of.date(), now=as_of, policy_of=people.policies(s))
        overdue = mark_overdue(s, as_of, kinds=("report_due",))["report_due"]
    return {"drafted": drafted, "weekly_count_duties": weekly, "overdue": overdue}


@task(name="open_level_report_duties", **DB_RETRIES, cache_policy=NO_CACHE)
def open_level_report_duties(level: str, period: ReportPeriod, as_of: datetime) -> int:
    """The drafts and duties of one level's reports of ``period`` (a term report on its term's first or
    last day; a monthly one if the daily run had not drafted it yet)."""
    with transaction(store()) as s:
        policy = _county_policy(s)
        if policy is None:
            return 0
        return sum(created for _, created in people.open_level(s, policy=policy, level=level, period=period, now=as_of))
