"""What operators see of a run in Prefect: artifacts (tables, Markdown) and events.

Artifacts and events carry counts, case ids, masked names (张*明) and masked ID numbers only.
Event names are stable so automations can match them:

- ``baoxue.case.escalated``   resource ``baoxue.school.<code>``, label ``baoxue.state``: cases moved to a step
- ``baoxue.duty.overdue``     resource ``baoxue.school.<code>``, label ``baoxue.action``: duties past deadline
- ``baoxue.sweep.completed``  resource ``baoxue.sweep``: the totals of one sweep
- ``baoxue.morning_check.recorded``, ``baoxue.report.filed``, ``baoxue.report.late``,
  ``baoxue.spot_check.drawn``, ``baoxue.notification.queued``
"""
from __future__ import annotations

import re

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

MAX_IDS_IN_EVENT = 200


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


@task(name="publish_events", cache_policy=NO_CACHE)
def publish_events(event: str, groups: dict[str, list[int]], *, label: str, payload: dict | None = None) -> int:
    """One event per ``"<school code>|<value>"`` group, listing (up to 200) ids. Returns events sent."""
    sent = 0
    for key, ids in sorted(groups.items()):
        code, value = key.split("|", 1)
        emit_event(
            event=event,
            resource={"prefect.resource.id": f"baoxue.school.{code}", "prefect.resource.name": code, label: value},
            payload={"count": len(ids), "ids": ids[:MAX_IDS_IN_EVENT], **(payload or {})},
        )
        sent += 1
    return sent


@task(name="publish_event", cache_policy=NO_CACHE)
def publish_event(event: str, resource_id: str, payload: dict) -> None:
    emit_event(event=event, resource={"prefect.resource.id": resource_id}, payload=payload)


@task(name="publish_table", cache_policy=NO_CACHE)
def publish_table(key: str, rows: list[dict], description: str) -> None:
    create_table_artifact(key=artifact_key(key), table=rows or [{"—": "无 none"}], description=description)


@task(name="publish_markdown", cache_policy=NO_CACHE)
def publish_markdown(key: str, markdown: str, description: str = "") -> None:
    create_markdown_artifact(key=artifact_key(key), markdown=markdown, description=description)
