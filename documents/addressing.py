"""Who a case document goes to and the deadlines it prints, from the case's policy (``[notices]``).

:func:`notice_facts` is what :func:`documents.archive.case_plan` adds to a case's facts as
``facts["notices"]``: the printed names of the paper's 主送 / 抄送 / 分送 parties, and the
deadlines of the case's notices counted in school days on the school's calendar from the day
each notice was (or, for one not yet issued, would be) issued. Plain data: the archive keeps it.
"""
from __future__ import annotations

from datetime import date
from typing import Any, Callable

from machines.policy import Policy
from machines.policy_notices import deadline
from machines.states import CaseState

# Parties that are not policy roles: the case's own school.
PLACE_PARTIES = {"school": "{school}"}


def places(facts: dict[str, Any], policy: Policy) -> dict[str, str]:
    return {"county": facts["county"]["name"], "township": facts["township"]["name"],
            "township_short": facts["township"]["short"],
            "village": facts["village"]["name"] if facts.get("village") else "",
            "jurisdiction": policy.jurisdiction, "school": facts["school"]["name"]}


def party_names(policy: Policy, roles: list[str], facts: dict[str, Any]) -> list[str]:
    where = places(facts, policy)
    out = []
    for role in roles:
        if role in PLACE_PARTIES:
            out.append(PLACE_PARTIES[role].format(**where))
        else:
            out.append(policy.notices.body_name(role, where, policy.roles.get(role)))
    return list(dict.fromkeys(out))


def outside_roles(policy: Policy, kind: str, outside_reason: str | None) -> list[str]:
    """The bodies an outside rule notifies, for a paper issued when the case left the school's hands."""
    if not outside_reason:
        return []
    return [r for rule in policy.outside if rule.reason.value == outside_reason and kind in rule.documents
            for r in rule.notify]


def _step_day(facts: dict[str, Any], state: CaseState) -> date | None:
    reached = [e for e in facts["events"] if e["event"] == "escalate" and e["to_state"] == state.value]
    return date.fromisoformat(reached[-1]["at"][:10]) if reached else None


def notice_facts(policy: Policy, kind: str, facts: dict[str, Any], *, issued_on: date,
                 add_school_days: Callable[[date, int], date], outside_reason: str | None = None) -> dict[str, Any]:
    rules = policy.notices
    addressees = list(rules.addressees.get(kind, [])) + outside_roles(policy, kind, outside_reason)
    return_on = _step_day(facts, CaseState.township_notice)
    legal_on = _step_day(facts, CaseState.judicial_notice)
    if kind == "return_notice":
        return_on = issued_on
    if kind == "legal_notice":
        legal_on = issued_on
    return {
        "addressee_roles": list(dict.fromkeys(addressees)),
        "addressees": party_names(policy, addressees, facts),
        "cc": party_names(policy, list(rules.cc.get(kind, [])), facts),
        "copies": party_names(policy, list(rules.copies.get(kind, [])), facts),
        "return_notice_days": rules.return_notice_days,
        "legal_notice_days": rules.legal_notice_days,
        "return_deadline": deadline(add_school_days, return_on, rules.return_notice_days).isoformat() if return_on else None,
        "legal_deadline": deadline(add_school_days, legal_on, rules.legal_notice_days).isoformat() if legal_on else None,
        "check_time": policy.escalation_time.strftime("%H:%M"),
        # the township's partner for the legal notice (seed 002: 司法部门; seed 000: 司法行政部门)
        "judicial_office": party_names(policy, ["judicial_office"], facts)[0],
        # where the 书面通报's copy goes (seed 002: 上报给教育行政部门), for its receipt
        "parent_notice_to": party_names(policy, list(rules.copies.get("parent_notice", [])) or ["education_bureau"], facts),
    }
