"""What operators see of a run in Prefect: artifacts (tables, Markdown) and events.

Artifacts and events carry counts, case ids, masked names (张*明) and masked ID numbers only.
Event names are stable so automations can match them:

- ``baoxue.case.escalated``   resource ``baoxue.step.<state>``, label ``baoxue.state``: cases moved to a step, one
  event per step with its count and its count by school (the 50 largest schools, the others as a count)
- ``baoxue.duty.overdue``     resource ``baoxue.action.<action>``, label ``baoxue.action``: duties past deadline,
  one event per action, likewise
- ``baoxue.sweep.completed``  resource ``baoxue.sweep``: the totals of one sweep

A sweep publishes at most one event per step and per action whatever the county's size (issue 20: one per
school and step queued 4,600 events at a million open cases).
- ``baoxue.morning_check.recorded``, ``baoxue.report.filed``, ``baoxue.report.late``,
  ``baoxue.spot_check.drawn``, ``baoxue.notification.queued``
"""
from __future__ import annotations

import re

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

MAX_SCHOOLS_IN_EVENT = 50


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def aggregate(groups: dict[str, int]) -> dict[str, dict[str, int]]:
    """``"<school code>|<value>"`` → n, as value → school code → n."""
    out: dict[str, dict[str, int]] = {}
    for key, n in groups.items():
        code, value = key.split("|", 1)
        out.setdefault(value, {})[code] = out.get(value, {}).get(code, 0) + n
    return out


@task(name="publish_events", cache_policy=NO_CACHE)
def publish_events(event: str, groups: dict[str, int], *, label: str, resource: str, payload: dict | None = None) -> int:
    """One event per value (a new state, an action) of the ``"<school code>|<value>"`` counts: its total, the number
    of schools, the 50 largest schools' counts and how many schools are left out. Returns events sent."""
    sent = 0
    for value, by_school in sorted(aggregate(groups).items()):
        top = sorted(by_school.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_SCHOOLS_IN_EVENT]
        emit_event(
            event=event,
            resource={"prefect.resource.id": f"{resource}.{value}", "prefect.resource.name": value, label: value},
            payload={"count": sum(by_school.values()), "schools": len(by_school), "by_school": dict(top),
                     "more_schools": len(by_school) - len(top), **(payload or {})},
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


def sweep_artifacts(summary: dict) -> tuple[list[dict], list[dict], str]:
    """The sweep's two tables and its description, in the vocabulary's Chinese labels."""
    from machines.vocabulary import event_label, state_label

    steps = " · ".join(f"{state_label(k)} {v}" for k, v in summary["cases_by_state"].items())
    moved = " · ".join(f"→{state_label(k)} {v}" for k, v in summary["escalated_now"].items()) or "无 none"
    by_school = [{("学校" if k == "school" else "代码" if k == "code" else "在办" if k == "open" else state_label(k)): v
                  for k, v in row.items()} for row in summary["by_school"]]
    overdue = [{"学校": d["school"], "案件": d["case_id"], "学生": d["pupil"], "环节": state_label(d["state"]),
                "职责": event_label(d["action"]), "角色": d["role"], "责任人": d["owner"], "截止": str(d["due_at"])[:16],
                "逾期小时": d["hours_overdue"]} for d in summary["overdue_rows"]]
    description = (f"**升级计时 sweep at {summary['as_of']}** — 本次升级 escalated now: {moved}; "
                   f"新逾期 overdue now: {summary['overdue_now']}; 逾期未办 overdue duties open: {summary['overdue_duties']}; "
                   f"待生成文书 documents queued: {summary['documents_queued']}\n\n各环节案件 cases by state: {steps}")
    return by_school, overdue, description


@task(name="publish_sweep", cache_policy=NO_CACHE)
def publish_sweep(summary: dict, changes: dict, escalated: int, overdue: int) -> int:
    """The sweep's events (``changes``: ``"<school code>|<value>"`` → count, for ``escalated`` and ``overdue``) and
    its two table artifacts, in one task run."""
    as_of = summary["as_of"]
    sent = publish_events.fn("baoxue.case.escalated", changes["escalated"], label="baoxue.state", resource="baoxue.step",
                             payload={"as_of": as_of})
    sent += publish_events.fn("baoxue.duty.overdue", changes["overdue"], label="baoxue.action", resource="baoxue.action",
                              payload={"as_of": as_of})
    emit_event(event="baoxue.sweep.completed", resource={"prefect.resource.id": "baoxue.sweep"},
               payload={"as_of": as_of, "escalated": escalated, "overdue": overdue,
                        "documents_queued": summary["documents_queued"]})
    by_school, overdue_rows, description = sweep_artifacts(summary)
    create_table_artifact(key="advance-cases", table=by_school or [{"—": "无 none"}], description=description)
    create_table_artifact(key="overdue-duties", table=overdue_rows or [{"—": "无 none"}],
                          description=f"逾期未完成的职责 overdue duties at {as_of} (names masked; first {len(summary['overdue_rows'])} "
                                      f"of {summary['overdue_duties']})")
    return sent + 1


def progress_artifact(day: str, units: int):
    """A progress artifact (0–100 %) for a morning check recorded in more than one unit of work, or None."""
    if units <= 1:
        return None
    from prefect.artifacts import create_progress_artifact

    return create_progress_artifact(0.0, key=artifact_key("morning-check-progress", day),
                                    description=f"晨检 morning check {day}: {units} 批 chunks")


def update_progress(artifact_id, percent: float) -> None:
    if artifact_id is not None:
        from prefect.artifacts import update_progress_artifact

        update_progress_artifact(artifact_id, percent)


@task(name="publish_morning_check", cache_policy=NO_CACHE)
def publish_morning_check(day: str, source: str, results: list[dict], totals: dict) -> None:
    cols = ("school", "marks", "opened", "continuing", "returned", "excused", "errors", "duplicate")
    create_table_artifact(key=artifact_key("morning-check", day), table=[{k: r.get(k) for k in cols} for r in results],
                          description=f"晨检 morning check {day} ({source})")
    emit_event(event="baoxue.morning_check.recorded", resource={"prefect.resource.id": "baoxue.morning_check"},
               payload={"day": day, "source": source, **totals, "schools": [r["school"] for r in results]})
