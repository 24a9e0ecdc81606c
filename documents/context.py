"""The template context of a document: ``doc`` (what, by whom, numbered how) + facts + ``record``.

A context is plain JSON-ready data. It is what the archive stores with the rendered file, and
rendering the same context again gives the same document. Nothing here touches the database.
"""
from __future__ import annotations

import copy
from typing import Any

from machines.states import STATE_LABELS, CaseState

from documents import catalog
from documents.catalog import Kind
from documents.records import event_at, record_for

# Who gets a copy (抄送) of each government document.
CC = {
    "return_notice": lambda f: [f"{f['county']['name']}教育局", f["school"]["name"]]
    + ([f"{f['village']['name']}村民委员会".replace("村村", "村")] if f["village"] else []),
    "legal_notice": lambda f: [f"{f['county']['name']}教育局", f["school"]["name"]],
    "report_to_township": lambda f: [f"{f['county']['name']}教育局基础教育股"],
    "report_to_bureau": lambda f: [f"{f['township']['name']}人民政府"],
    "judicial_referral": lambda f: [f"{f['county']['name']}教育局", f["school"]["name"]],
}


def _cc(kind_id: str, facts: dict) -> list[str]:
    """抄送: the policy's parties (``facts["notices"]``, documents/addressing.py), else the built-in list."""
    if facts.get("notices") is not None:
        return list(facts["notices"]["cc"])
    return CC[kind_id](facts) if kind_id in CC else []


def issuer_info(kind: Kind, facts: dict) -> dict[str, Any]:
    """The issuing body of a case document: counter key, name, 发文字号 prefix and banner lines."""
    if kind.issuer == "township":
        t = facts["township"]
        name = f"{t['name']}人民政府"
        info = {"type": "township", "key": f"township:{t['code']}", "name": name, "short": t["short"],
                "banner": [name], "co_issuers": []}
        if kind.id in ("legal_notice", "judicial_referral"):
            co = (facts.get("notices") or {}).get("judicial_office") or f"{t['short']}司法所"
            info["co_issuers"] = [co]
            info["banner"] = [name, co]
        return info
    if kind.issuer == "county":
        c = facts["county"]
        name = f"{c['name']}教育局"
        return {"type": "county", "key": f"county:{c['code']}", "name": name, "short": c["name"],
                "banner": [name], "co_issuers": []}
    s = facts["school"]
    return {"type": "school", "key": f"school:{s['code']}", "name": s["name"], "short": s["short"],
            "banner": [f"{s['name']}文件"], "co_issuers": []}


def trace_line(doc: dict) -> str:
    """The small print every document carries: case/report, step, policy version, who, when (DOMAIN §7)."""
    parts = [doc["ref"]]
    if doc.get("step"):
        parts.append(doc["step"]["label"])
    if doc.get("policy"):
        parts.append(f"策略 {doc['policy']}")
    parts.append(f"经办 {doc['actor']}")
    parts.append(f"日期 {doc['issued_on']}")  # the act's day, not the render time
    if doc.get("version", 1) > 1:
        parts.append(f"第{doc['version']}版（更正）")
    parts.append(doc["kind"])
    return " · ".join(parts)


def case_context(
    kind_id: str, facts: dict, *, event_seq: int | None, issued_on: str, actor: str, version: int = 1,
    correction_reason: str | None = None,
) -> dict[str, Any]:
    """The full context of a case document, without its number (see :func:`with_number`)."""
    kind = catalog.get(kind_id)
    if kind.subject != "case":
        raise ValueError(f"{kind_id} is a report, not a case document")
    ev = event_at(facts, event_seq)
    state = ev["to_state"] if ev else facts["case"]["state"]
    issuer = issuer_info(kind, facts)
    if kind.id == "proof_of_service" and ev is not None and ev["event"] in catalog.SCHOOL_RECEIPTS:
        issuer = issuer_info(catalog.get("parent_notice"), facts)  # the school's own receipt
    doc = {
        "kind": kind.id,
        "title": kind.name,
        "short": kind.short,
        "layout": kind.layout,
        "ref": f"{facts['case']['ref']}-{event_seq if event_seq is not None else 0}",
        "case_id": facts["case"]["id"],
        "event_seq": event_seq,
        "step": {"state": state, "label": STATE_LABELS[CaseState(state)]} if state in CaseState.__members__ else None,
        "policy": facts["case"]["policy"]["key"],
        "issuer": issuer,
        "issued_on": issued_on,
        "actor": actor,
        "version": version,
        "correction_reason": correction_reason,
        "internal": kind.internal,
        "cc": _cc(kind.id, facts),
        "addressees": (facts.get("notices") or {}).get("addressees", []),
        "copies": (facts.get("notices") or {}).get("copies", []),
        "number": None,
        "year": None,
        "doc_number": None,
    }
    doc["trace"] = trace_line(doc)
    return {"doc": doc, **facts, "record": record_for(kind, facts, event_seq=event_seq, issued_on=issued_on)}


def report_context(
    kind_id: str, report: dict, *, issued_on: str, actor: str, policy_key: str | None = None, version: int = 1,
    correction_reason: str | None = None,
) -> dict[str, Any]:
    kind = catalog.get(kind_id)
    if kind.subject != "report":
        raise ValueError(f"{kind_id} is a case document, not a report")
    unit = report["unit"]
    doc = {
        "kind": kind.id,
        "title": kind.name,
        "short": kind.short,
        "layout": kind.layout,
        "ref": f"{kind.short}-{unit.get('code') or unit['name']}-{report['period']}",
        "case_id": None,
        "event_seq": None,
        "step": None,
        "policy": policy_key,
        "issuer": {"type": report["level"], "key": f"{report['level']}:{unit.get('code', '')}", "name": unit["name"],
                   "short": unit["name"], "banner": [unit["name"]], "co_issuers": []},
        "issued_on": issued_on,
        "actor": actor,
        "version": version,
        "correction_reason": correction_reason,
        "internal": kind.internal,
        "cc": [],
        "number": None,
        "year": None,
        "doc_number": None,
    }
    doc["trace"] = trace_line(doc)
    return {"doc": doc, "report": report}


def with_number(context: dict, *, number: int | None, year: int | None) -> dict:
    """A copy of ``context`` carrying its 发文字号 (numbered kinds) — the input is left untouched."""
    ctx = copy.deepcopy(context)
    kind = catalog.get(ctx["doc"]["kind"])
    if kind.numbering is not None and number is not None:
        ctx["doc"]["number"] = number
        ctx["doc"]["year"] = year
        ctx["doc"]["doc_number"] = kind.numbering.format(ctx["doc"]["issuer"]["short"], year, number)
        ctx["doc"]["trace"] = trace_line(ctx["doc"]) + f" · {ctx['doc']['doc_number']}"
    return ctx
