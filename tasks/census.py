"""Census tasks (排查): the step that follows a register import, and the hand-offs sync.

Idempotency keys: the census row (``census_rows.census_case_id``) and the one-open-case-per-ID
index for opening; the document key ``census:<case>:<kind>`` for notices; ``UNIQUE(document_id,
recipient)`` for hand-offs. A retried task finds its work done.
"""
from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from store.duties import handoffs
from store.db import transaction

from tasks.runtime import DB_RETRIES, clock, store

ACTOR = "system:census"


class ImportRejected(ValueError):
    pass


@task(name="verify_census_import", cache_policy=NO_CACHE)
def verify_import(import_id: int, as_of: datetime) -> None:
    """Refuse a run for an import that was never recorded, whose importer may no longer import,
    or acting before the import or in the future (``store.access.submission_check.census_refusal``)."""
    from store.access.submission_check import census_refusal

    with transaction(store()) as s:
        why = census_refusal(s, import_id, as_of, now=clock().now())
    if why is not None:
        raise ImportRejected(why)


@task(name="census_step", retries=3, retry_delay_seconds=[2, 10, 15], cache_policy=NO_CACHE)
def census_step(import_id: int, as_of: datetime) -> dict[str, int]:
    """What follows an import (``documents.census.census_step``, the one procedure the pages and the CLI
    run too), in one transaction: children now enrolled close their census case, the new 失学 cases
    open with their duties, their 入学通知书 are issued, the notices' hand-offs recorded. Each part
    finds its work done on a retry."""
    from documents.census import census_step as step

    with transaction(store()) as s:
        done = step(s, import_id, actor=ACTOR, now=as_of)
    return {k: len(v) for k, v in done.items() if k != "import_id"}


@task(name="sync_handoffs", **DB_RETRIES, cache_policy=NO_CACHE)
def sync_handoffs(as_of: datetime) -> int:
    """A hand-off (送达回证) for every issued paper that goes to an outside body and has none yet."""
    with transaction(store()) as s:
        return len(handoffs.sync_handoffs(s, now=as_of))


@task(name="census_summary", **DB_RETRIES, cache_policy=NO_CACHE)
def census_summary(import_id: int) -> dict:
    """Counts only (no names, no ID numbers): what the import found."""
    from store.models.census import CensusImport

    with transaction(store()) as s:
        imp = s.get(CensusImport, import_id)
        return {"import_id": import_id, "census_year": imp.census_year, **imp.summary}
