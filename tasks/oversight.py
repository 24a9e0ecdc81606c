"""Prevention and oversight tasks: the at-risk watch list (daily) and the reconciliation of the
schools' submitted monthly figures with the ledger (on the report dates).

Both are idempotent: refreshing the watch list twice for the same instant, or reconciling a
month twice, changes nothing the second time (accepted submissions are never recomputed).
"""
from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from store.reporting import reconcile as rc
from store.prevention import risk
from store.db import transaction

from tasks.runtime import DB_RETRIES, store


@task(name="refresh_watch_list", **DB_RETRIES, cache_policy=NO_CACHE)
def refresh_watch_list(as_of: datetime) -> dict:
    """At-risk pupils (学困生, 贫困生, 留守儿童; absences rising; relapse): the watch list brought in line."""
    with transaction(store()) as s:
        return risk.refresh_watch_list(s, as_of=as_of)


@task(name="reconcile_submissions", **DB_RETRIES, cache_policy=NO_CACHE)
def reconcile_submissions(period: str, as_of: datetime) -> dict:
    """Every school's submitted figures for ``period`` against the ledger; counts only (no names)."""
    with transaction(store()) as s:
        rows = rc.reconcile_period(s, period=period, as_of=as_of)
    return {"period": period, "schools": len(rows), "missing": sum(r["status"] == "missing" for r in rows),
            "with_differences": sum(bool(r["differences"]) for r in rows),
            "hiding_open_cases": [r["school_code"] for r in rows if r["hides_open_cases"]]}
