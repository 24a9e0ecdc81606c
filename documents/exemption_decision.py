"""免学/缓学审批决定 (seed 002 3): the county bureau's decision on a 免学/缓学 application, as a document.

The pupil and school come from the same facts every case document prints when the pupil has a case
(``documents.facts.case_facts``), else from the roster; the record is the application and its
decision (store.cases.leave). Issued once per application (its key), archived like every document.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.vocabulary import REQUEST_KIND_LABELS, decision_label
from store.models import Jurisdiction, Pupil, School, SchoolClass
from store.models.leave import LeaveRequest

from documents import archive, catalog
from documents.context import issuer_info, trace_line

KIND = "exemption_decision"


def decision_facts(session: Session, r: LeaveRequest) -> dict[str, Any]:
    pupil = session.get(Pupil, r.pupil_id)
    school = session.get(School, r.school_id)
    klass = session.get(SchoolClass, r.class_id)
    township = session.get(Jurisdiction, school.township_id)
    county = session.get(Jurisdiction, township.parent_id) if township.parent_id else township
    return {
        "pupil": {"name": pupil.name, "gender": pupil.gender, "birth_date": pupil.birth_date.isoformat() if pupil.birth_date else None, "class_name": klass.name,
                  "student_no": pupil.student_no, "id_number": pupil.id_number, "address": pupil.address,
                  "special_groups": []},
        "school": {"name": school.name, "code": school.code, "short": school.name},
        "township": {"name": township.name, "code": township.code, "short": township.name},
        "county": {"name": county.name, "code": county.code},
    }


def decision_context(facts: dict[str, Any], r: LeaveRequest, *, issued_on: str, actor: str, policy: str) -> dict[str, Any]:
    kind = catalog.get(KIND)
    doc = {
        "kind": kind.id, "title": kind.name, "short": kind.short, "layout": kind.layout,
        "ref": f"免缓学-{r.first_day.year}-{r.id}", "case_id": r.case_id, "event_seq": None,
        "step": {"state": "exemption", "label": decision_label(r.kind, r.decision)}, "policy": policy,
        "issuer": issuer_info(kind, facts), "issued_on": issued_on, "actor": actor, "version": 1,
        "correction_reason": None, "internal": kind.internal, "cc": [], "number": None, "year": None, "doc_number": None,
    }
    doc["trace"] = trace_line(doc)
    record = {
        "kind_label": REQUEST_KIND_LABELS[r.kind], "first_day": r.first_day.isoformat(), "last_day": r.last_day.isoformat(),
        "reason": r.reason or None, "certificate": r.cert_filename, "requested_by": r.requested_by,
        "requested_on": r.created_at.date().isoformat(), "decision_label": decision_label(r.kind, r.decision),
        "approved": r.decision == "approved", "note": r.decision_note, "decided_by": r.decided_by,
        "decided_on": r.decided_at.date().isoformat() if r.decided_at else issued_on,  # the act, never the clock
    }
    return {"doc": doc, **facts, "record": record}


def issue_decision(session: Session, request_id: int, *, actor: str, now: datetime) -> int | None:
    """Archive the decision of a decided 免学/缓学 application (once: its key); returns the document id."""
    r = session.get(LeaveRequest, request_id)
    if r is None or r.kind != "exemption" or r.decision == "pending":
        return None
    school = session.get(School, r.school_id)
    from store.policy_files import PolicyRegistry
    policy = PolicyRegistry(session).get(school.policy_name)
    ctx = decision_context(decision_facts(session, r), r, issued_on=now.date().isoformat(), actor=actor,
                           policy=policy.key)
    plan = archive.Plan(catalog.get(KIND), f"leave:{r.id}:{KIND}", ctx, case_id=r.case_id, scope=f"leave:{r.id}",
                        policy_name=policy.name, policy_version=policy.version, year=now.year)
    r.document_id = archive.issue(session, plan, "pdf", actor=actor, now=now).document_id
    session.flush()
    return r.document_id


def pending(session: Session, limit: int = 200) -> list[int]:
    """Decided applications without their decision archived yet."""
    return list(session.scalars(select(LeaveRequest.id).where(
        LeaveRequest.kind == "exemption", LeaveRequest.decision != "pending", LeaveRequest.document_id.is_(None))
        .order_by(LeaveRequest.id).limit(limit)))
