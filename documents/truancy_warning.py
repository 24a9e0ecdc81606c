"""旷课书面警告 (seed 001 第六条 2.: 第二次旷课，由班主任书面警告): the written warning of a truancy tier.

The pupil, school and people come from the case the truancy's first day opened
(``documents.facts.case_facts``, the same facts every case document prints); the record adds the
school year's truancies and what was done about each. Issued once per tier row (its key), archived
like every document, when the tier's policy entry lists the kind (``tiers[].documents``).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, func, literal, or_, select
from sqlalchemy.orm import Session

from store.models.documents import Document
from store.models import Case, CaseEvent, School
from store.policy_files import PolicyRegistry
from store.models.prevention import TruancyTierRecord
from store.prevention.truancy import history

from documents import archive, catalog
from documents.context import issuer_info, trace_line
from documents.facts import case_facts

KIND = "truancy_written_warning"


def warning_context(facts: dict[str, Any], tier: TruancyTierRecord, rows: list[dict], *, issued_on: str,
                    actor: str) -> dict[str, Any]:
    kind = catalog.get(KIND)
    doc = {
        "kind": kind.id, "title": kind.name, "short": kind.short, "layout": kind.layout,
        "ref": f"旷课-{tier.school_year}-{tier.id}", "case_id": facts["case"]["id"], "event_seq": None,
        "step": {"state": "truancy", "label": f"第{tier.tier}级（本学年第{tier.occurrence}次旷课）"},
        "policy": tier.policy, "issuer": issuer_info(kind, facts), "issued_on": issued_on, "actor": actor,
        "version": 1, "correction_reason": None, "internal": kind.internal, "cc": [], "number": None, "year": None,
        "doc_number": None,
    }
    doc["trace"] = trace_line(doc)
    guardian = facts["guardians"][0] if facts["guardians"] else None
    head = facts["people"].get("head_teacher")
    record = {
        "addressee": guardian["name"] if guardian else f"{facts['pupil']['name']}的监护人",
        "occurrence": tier.occurrence,
        "truancies": [{"occurrence": r["occurrence"], "first_day": r["first_day"].isoformat(), "action": r["action"]}
                      for r in rows if r["occurrence"] <= tier.occurrence],
        "signed_by": head["name"] if head else None,
    }
    return {"doc": doc, **facts, "record": record}


def issue_warnings(session: Session, tier_ids: list[int], *, actor: str, now: datetime) -> list[int]:
    """Archive the written warning of each tier row whose tier asks for it; returns document ids.
    A tier row with no case open on its first day (marks without the morning-check intake) gets none."""
    out = []
    registry = PolicyRegistry(session)
    for tid in tier_ids:
        tier = session.get(TruancyTierRecord, tid)
        name, version = tier.policy.rsplit("@", 1)
        policy = registry.get(name, int(version))
        spec = next((t for t in policy.truancy.tiers if t.tier == tier.tier), None)
        if spec is None or KIND not in spec.documents:
            continue
        case = session.scalar(select(Case).where(  # the case open on the truancy's first day
            Case.pupil_id == tier.pupil_id, Case.opened_on <= tier.first_day,
            or_(Case.closed_on.is_(None), Case.closed_on >= tier.first_day)).order_by(Case.opened_on.desc(), Case.id.desc()))
        if case is None:
            continue
        issued = tier.created_at  # the act: the tier was reached (recorded), never the render time
        upto = session.scalar(select(func.max(CaseEvent.seq)).where(CaseEvent.case_id == case.id,
                                                                   CaseEvent.at <= issued))  # the case as it stood
        facts = case_facts(session, case.id, registry.get(case.policy_name, case.policy_version), today=issued.date(),
                           upto_seq=upto)
        ctx = warning_context(facts, tier, history(session, tier.pupil_id, tier.school_year),
                              issued_on=issued.date().isoformat(), actor=actor)
        plan = archive.Plan(catalog.get(KIND), f"truancy:{tid}:{KIND}", ctx, case_id=case.id, scope=f"truancy:{tid}",
                            policy_name=name, policy_version=int(version), year=issued.year)
        out.append(archive.issue(session, plan, "pdf", actor=actor, now=now).document_id)
    return out


def pending(session: Session, limit: int = 500) -> list[int]:
    """Tier rows whose tier asks for the written warning and that have none archived yet."""
    registry = PolicyRegistry(session)
    tiers = {t.tier for name in session.scalars(select(School.policy_name).distinct())
             for t in registry.get(name).truancy.tiers if KIND in t.documents}
    if not tiers:
        return []
    key = literal("truancy:") + cast(TruancyTierRecord.id, String) + literal(f":{KIND}")
    q = (select(TruancyTierRecord.id).where(TruancyTierRecord.tier.in_(tiers),
                                            ~select(Document.id).where(Document.doc_key == key).exists())
         .order_by(TruancyTierRecord.id).limit(limit))
    return list(session.scalars(q))
