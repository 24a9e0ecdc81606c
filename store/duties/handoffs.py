"""Hand-off receipts (送达回证): a paper sent to an outside body is received by a named person.

When a document the policy sends to an outside body (``[handoffs.recipients]``: village committee,
township, judicial office, police, county bureau) is issued, one hand-off per body records when it
was sent (the act the document records: its case event, the 失学 case's opening — never the render time) and by when its receipt is expected (``ack_school_days``
school days later). :func:`acknowledge` records who received it and when (written once). A
hand-off still unacknowledged past that time makes its case *stuck* (DOMAIN.md §3: a case waiting
on an outside party longer than the policy allows), beside the overdue duties.

:func:`sync_handoffs` is set-based and idempotent (``UNIQUE(document_id, recipient)``): the census
flow and the daily sweep call it after documents were issued.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, false, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from machines.census import BODIES
from machines.identity import mask_name
from machines.names import short_township
from machines.policy import Policy

from store.models.census import CensusCase, Handoff
from store.cases.context import CaseContext
from store.models.documents import Document
from store.models import Case, CaseEvent, Jurisdiction, Pupil, School
from store.access.scope import EVERYTHING, Scope


class HandoffError(ValueError):
    pass


def handoff_kinds(ctx: CaseContext) -> set[str]:
    from store.models import PolicyVersion

    kinds: set[str] = set()
    for name, version in ctx.session.execute(select(PolicyVersion.name, PolicyVersion.version)).all():
        kinds |= set(ctx.policy(name, version).handoffs.recipients)
    return kinds


def _body_name(body: str, *, township: Jurisdiction, county: Jurisdiction | None, village: Jurisdiction | None,
               policy: Policy | None = None) -> str:
    if policy is not None and body in policy.notices.bodies:  # the policy's printed name ([notices.bodies])
        return policy.notices.body_name(body, {
            "county": county.name if county else "", "township": township.name,
            "township_short": short_township(township.name), "village": village.name if village else "",
            "jurisdiction": policy.jurisdiction})
    if body == "village_committee":
        if village is None:
            return f"{township.name}有关村民委员会"
        return f"{village.name}民委员会" if village.name.endswith("村") else f"{village.name}村民委员会"
    if body == "township":
        return f"{township.name}人民政府"
    if body == "judicial_office":
        return f"{short_township(township.name)}司法所"
    if body == "police":
        return f"{short_township(township.name)}派出所"
    if body == "education_bureau":
        return f"{county.name if county else ''}教育局"
    return BODIES.get(body, body)


def recipients_for(policy: Policy, kind: str, *, outside_reason: str | None = None) -> list[str]:
    """The bodies a ``kind`` document goes to under ``policy`` (the outside rule's notified bodies
    too, for a document issued when the case left the school's hands)."""
    bodies = list(policy.handoffs.recipients.get(kind, []))
    if outside_reason and policy.handoffs.outside_bodies:
        for rule in policy.outside:
            if rule.reason.value == outside_reason and kind in rule.documents:
                bodies += [b for b in rule.notify if b in BODIES]
    return list(dict.fromkeys(bodies))


def sync_handoffs(session: Session, *, now: datetime, ctx: CaseContext | None = None) -> list[int]:
    """Create the hand-offs of every issued document that has none yet; returns their ids."""
    ctx = ctx or CaseContext(session)
    kinds = handoff_kinds(ctx)
    if not kinds:
        return []
    docs = session.scalars(
        select(Document).where(Document.kind.in_(kinds), Document.version == 1,
                               ~exists().where(Handoff.document_id == Document.id)).order_by(Document.id)
    ).all()
    juris = {j.id: j for j in session.scalars(select(Jurisdiction))}
    made: list[int] = []
    for doc in docs:
        target = _target(session, doc)
        if target is None:
            continue
        policy, school, village, outside_reason, sent = target
        township = juris[school.township_id]
        county = juris.get(township.parent_id)
        due = policy.handoffs.expected_by(ctx.calendar(school.calendar_key), sent.date())
        for body in recipients_for(policy, doc.kind, outside_reason=outside_reason):
            row = Handoff(document_id=doc.id, kind=doc.kind, case_id=doc.case_id,
                          census_case_id=(doc.data.get("doc") or {}).get("census_case_id"), school_id=school.id,
                          recipient=body, recipient_name=_body_name(body, township=township, county=county, village=village,
                                                                   policy=policy)[:64],
                          sent_at=sent, due_at=max(due, sent))
            try:
                with session.begin_nested():
                    session.add(row)
                    session.flush()
            except IntegrityError:  # another sweep made it meanwhile
                continue
            made.append(row.id)
    return made


def _target(session: Session, doc: Document):
    """(policy, school, village, outside reason, sent at) of an issued document. A paper is sent when the act it
    records happened — the case event it belongs to, the 失学 case's opening — not when it was rendered (a
    retry, a queue that ran late); the render time only for a paper that belongs to no event."""
    from store.policy_files import PolicyRegistry

    registry = PolicyRegistry(session)
    if doc.case_id is not None:
        case = session.get(Case, doc.case_id)
        pupil = session.get(Pupil, case.pupil_id)
        ev = session.scalar(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.seq == doc.event_seq))
        reason = case.outcome_reason if ev is not None and ev.event == "escalate_outside" else None
        village = session.get(Jurisdiction, pupil.village_id) if pupil.village_id else None
        return (registry.get(case.policy_name, case.policy_version), session.get(School, case.school_id), village, reason,
                ev.at if ev is not None else doc.created_at)
    census_id = (doc.data.get("doc") or {}).get("census_case_id")
    if census_id is not None:
        cc = session.get(CensusCase, census_id)
        village = session.get(Jurisdiction, cc.village_id) if cc.village_id else None
        return (registry.get(cc.policy_name, cc.policy_version), session.get(School, cc.school_id), village, None,
                cc.created_at)
    return None


def acknowledge(session: Session, handoff_id: int, *, received_by: str, received_at: datetime, actor: str,
                now: datetime, note: str | None = None, scope: Scope = EVERYTHING) -> Handoff:
    """签收: who at the body received the paper and when. Written once; a second receipt is refused."""
    received_by = (received_by or "").strip()
    if not received_by:
        raise HandoffError("请填写签收人 (received_by is required)")
    row = session.scalar(_scoped(select(Handoff).where(Handoff.id == handoff_id), scope).with_for_update(of=Handoff))
    if row is None:
        raise HandoffError(f"送达记录 {handoff_id} 不存在或不在您的管辖范围内 (hand-off not found)")
    if row.received_at is not None:
        raise HandoffError(f"送达记录 {handoff_id} 已于 {row.received_at:%Y-%m-%d %H:%M} 由 {row.received_by} 签收 "
                           f"(already acknowledged)")
    if received_at < row.sent_at:
        raise HandoffError("签收时间不能早于送出时间 (received before it was sent)")
    if received_at > now:
        raise HandoffError("签收时间不能晚于现在 (received in the future)")
    row.received_at, row.received_by, row.acked_by, row.acked_at = received_at, received_by[:64], actor[:64], now
    row.note = (note or "")[:255] or None
    session.flush()
    return row


def _scoped(q, scope: Scope):
    q = q.outerjoin(Case, Case.id == Handoff.case_id)
    if scope.class_ids is not None:
        return scope.apply(q, school_col=Handoff.school_id, class_col=Case.class_id)
    return scope.apply(q, school_col=Handoff.school_id, class_col=Handoff.school_id)


def handoff_rows(session: Session, scope: Scope = EVERYTHING, *, as_of: datetime, pending_only: bool = True,
                 stuck_only: bool = False, masked: bool = False, limit: int = 500) -> list[dict[str, Any]]:
    q = (select(Handoff, Document.title, Document.doc_number, School.name)
         .join(Document, Document.id == Handoff.document_id).join(School, School.id == Handoff.school_id))
    if pending_only or stuck_only:
        q = q.where(Handoff.received_at.is_(None))
    if stuck_only:
        q = q.where(Handoff.due_at <= as_of)
    q = _scoped(q, scope).add_columns(Pupil.name).outerjoin(Pupil, Pupil.id == Case.pupil_id) \
        .outerjoin(CensusCase, CensusCase.id == Handoff.census_case_id).add_columns(CensusCase.name, Case.state)
    q = q.order_by(Handoff.due_at, Handoff.id).limit(limit)
    out = []
    for h, title, doc_number, school, pupil_name, census_name, case_state in session.execute(q):
        child = pupil_name or census_name or ""
        stuck = h.received_at is None and h.due_at <= as_of
        out.append({
            "id": h.id, "document_id": h.document_id, "kind": h.kind, "title": title, "doc_number": doc_number or "",
            "case_id": h.case_id, "case_state": case_state, "census_case_id": h.census_case_id, "school": school,
            "child": mask_name(child) if masked else child, "recipient": h.recipient, "recipient_name": h.recipient_name,
            "sent_at": h.sent_at.isoformat(sep=" "), "due_at": h.due_at.isoformat(sep=" "),
            "received_at": h.received_at.isoformat(sep=" ") if h.received_at else None,
            "received_by": h.received_by, "acked_by": h.acked_by, "stuck": stuck,
            "hours_overdue": round((as_of - h.due_at).total_seconds() / 3600, 1) if stuck else 0.0,
        })
    return out


def stuck_handoff_case_ids_query(as_of: datetime):
    """Open dropout cases with a hand-off unacknowledged past its time (for the stuck list)."""
    from machines.states import OPEN_STATES

    return (select(Handoff.case_id).join(Case, Case.id == Handoff.case_id)
            .where(Case.state.in_([s.value for s in OPEN_STATES]), Handoff.received_at.is_(None), Handoff.due_at <= as_of)
            .distinct())


def stuck_handoffs(session: Session, scope: Scope, as_of: datetime, *, masked: bool = False) -> list[dict[str, Any]]:
    """Unacknowledged hand-offs past their time, of open dropout cases and open census cases."""
    from machines.states import OPEN_STATES

    rows = handoff_rows(session, scope, as_of=as_of, stuck_only=True, masked=masked, limit=2000)
    open_cases = {cid for cid, in session.execute(select(Case.id).where(
        Case.id.in_([r["case_id"] for r in rows if r["case_id"]] or [0]), Case.state.in_([s.value for s in OPEN_STATES])))}
    open_census = {cid for cid, in session.execute(select(CensusCase.id).where(
        CensusCase.id.in_([r["census_case_id"] for r in rows if r["census_case_id"]] or [0]),
        CensusCase.state == "not_enrolled"))}
    return [r for r in rows if (r["case_id"] in open_cases) or (r["census_case_id"] in open_census)]
