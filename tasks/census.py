"""Census tasks (排查): the steps that follow a register import, and the hand-offs sync.

Idempotency keys: the census row (``census_rows.census_case_id``) and the one-open-case-per-ID
index for opening; the document key ``census:<case>:<kind>`` for notices; ``UNIQUE(document_id,
recipient)`` for hand-offs. A retried task finds its work done.
"""
from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from store import census, handoffs
from store.db import transaction

from .runtime import DB_RETRIES, clock, store

ACTOR = "system:census"


class ImportRejected(ValueError):
    pass


@task(name="verify_census_import", cache_policy=NO_CACHE)
def verify_import(import_id: int, as_of: datetime) -> None:
    """Refuse a run for an import that was never recorded, whose importer may no longer import,
    or acting before the import or in the future (``store.submission_check.census_refusal``)."""
    from store.submission_check import census_refusal

    with transaction(store()) as s:
        why = census_refusal(s, import_id, as_of, now=clock().now())
    if why is not None:
        raise ImportRejected(why)


@task(name="close_enrolled_census_cases", **DB_RETRIES, cache_policy=NO_CACHE)
def close_enrolled(as_of: datetime) -> list[int]:
    """Census cases whose child is now on the roster close (已入学)."""
    with transaction(store()) as s:
        return census.close_enrolled(s, actor=ACTOR, now=as_of)


@task(name="open_census_cases", **DB_RETRIES, cache_policy=NO_CACHE)
def open_census_cases(import_id: int, as_of: datetime) -> list[int]:
    """A 失学 case with its persuasion duties for every school-age child of the import enrolled nowhere."""
    with transaction(store()) as s:
        return census.open_cases(s, import_id, actor=ACTOR, now=as_of)


@task(name="issue_enrolment_notices", retries=3, retry_delay_seconds=[2, 10, 15], cache_policy=NO_CACHE)
def issue_enrolment_notices(case_ids: list[int], as_of: datetime) -> list[int]:
    """The 入学通知书 of each new case, numbered and archived (asking twice returns the archived one)."""
    from documents.census import issue_notices

    with transaction(store()) as s:
        return issue_notices(s, case_ids, actor=ACTOR, now=as_of)


@task(name="sync_handoffs", **DB_RETRIES, cache_policy=NO_CACHE)
def sync_handoffs(as_of: datetime) -> int:
    """A hand-off (送达回证) for every issued paper that goes to an outside body and has none yet."""
    with transaction(store()) as s:
        return len(handoffs.sync_handoffs(s, now=as_of))


@task(name="census_summary", **DB_RETRIES, cache_policy=NO_CACHE)
def census_summary(import_id: int) -> dict:
    """Counts only (no names, no ID numbers): what the import found."""
    from store.census_models import CensusImport

    with transaction(store()) as s:
        imp = s.get(CensusImport, import_id)
        return {"import_id": import_id, "census_year": imp.census_year, **imp.summary}
