"""Notification tasks: queue duty reminders and overdue notices, deliver the outbox.

Idempotency keys: ``duty:<id>:reminder``, ``duty:<id>:overdue`` (outbox) and ``duty:<id>``
(accountability record), unique in the store; delivery moves a row from queued to sent once.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE

from store.db import transaction
from store.duties.notifications import channel_from_settings, deliver, queue_duty_notices

from tasks.runtime import DB_RETRIES, store


@task(name="queue_duty_notices", **DB_RETRIES, cache_policy=NO_CACHE)
def queue_notices(as_of: datetime, remind_within_hours: float = 2.0) -> dict:
    with transaction(store()) as s:
        report = queue_duty_notices(s, as_of, remind_within=timedelta(hours=remind_within_hours))
    return {**report.as_dict(), "accountability_ids": report.accountability}


@task(name="deliver_notices", retries=2, retry_delay_seconds=[5, 30], cache_policy=NO_CACHE)
def deliver_notices(now: datetime, limit: int = 500) -> dict:
    """Send queued notifications through the configured channel (BAOXUE_NOTIFY_WEBHOOK, else the outbox)."""
    channel = channel_from_settings(os.environ.get("BAOXUE_NOTIFY_WEBHOOK"))
    with transaction(store()) as s:
        return deliver(s, channel, now, limit=limit)
