"""催办与责任追究 (DOMAIN.md §3, §5): a duty due soon is a reminder to its owner; a duty past its
deadline is an overdue notice and an entry in the accountability record.

Runs five minutes after each hourly sweep marked the overdue duties. Reminders go through the
notification outbox (the default channel keeps the outbox row and writes the log; an SMS/e-mail
webhook is configured with BAOXUE_NOTIFY_WEBHOOK).
"""
from __future__ import annotations

from datetime import datetime

from prefect import flow

from tasks.notify import deliver_notices, queue_notices
from tasks.publish import publish_event, publish_table
from tasks.runtime import resolve_as_of, run_name


@flow(name="duty_reminders", log_prints=False, flow_run_name=run_name("reminders"))
def duty_reminders(as_of: datetime | None = None, remind_within_hours: float = 2.0) -> dict:
    as_of = resolve_as_of(as_of)
    queued = queue_notices(as_of, remind_within_hours)
    delivered = deliver_notices(as_of)
    counts = {k: queued[k] for k in ("reminders", "overdue_notices", "accountability")}
    if any(counts.values()):
        publish_event("baoxue.notification.queued", "baoxue.notifications", {"as_of": as_of.isoformat(), **counts})
    publish_table("duty-reminders", [{**counts, **delivered, "as_of": as_of.isoformat(sep=" ")}],
                  description="催办 reminders, 逾期通知 overdue notices, 责任追究记录 accountability entries")
    return {"as_of": as_of.isoformat(), **counts, **delivered}
