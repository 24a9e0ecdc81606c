"""The archive: issue a document once, keep it as issued, find it again.

A rendered document is stored immutably: the file (content-addressed under the archive folder,
read-only), its SHA-256, the exact data it was rendered from, the policy version, who and when.
Asking again for the same document (same case, kind and event) returns the archived file, byte
for byte; a correction is a new version pointing to the one it replaces.

Numbered kinds get their 发文字号 in the transaction that archives them (``documents.numbering``):
the document is rendered *ahead* with the number the counter suggests, then the counter row is
locked and bumped; if someone else took that number meanwhile, the document is rendered again
with the right one before anything is written. A render that fails never burns a number.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from machines.policy import Policy
from machines.states import ACTION_LABELS, Action
from store.cases.attachments import IMAGES, locate, write_once
from store.cases.context import CaseContext
from store.clock import local_now
from store.db import is_postgres, settings
from store.models.documents import Document, DocumentFile
from store.models import Case, CaseEvent, DocumentRequest
from store.policy_files import PolicyRegistry

from documents import catalog, numbering
from documents.addressing import notice_facts
from documents.context import case_context, report_context, with_number
from documents.facts import case_facts
from documents.render import RenderError, Rendition, render, templates_digest

log = logging.getLogger("baoxue.documents")





# -- files ----------------------------------------------------------------------------------------
def archive_root() -> Path:
    """The archive folder: BAOXUE_ARCHIVE_DIR if set (read on every call), else settings().archive_dir."""
    raw = os.environ.get("BAOXUE_ARCHIVE_DIR")
    return Path(raw).expanduser().resolve() if raw else Path(settings().archive_dir).expanduser().resolve()


def file_path(record: DocumentFile) -> Path:
    return archive_root() / record.path


def store_bytes(content: bytes, ext: str, *, folder: str = "") -> tuple[str, str]:
    """Write ``content`` once under its SHA-256 (read-only) and return (relative path, sha256)."""
    sha = hashlib.sha256(content).hexdigest()
    rel = f"{folder + '/' if folder else ''}{sha[:2]}/{sha}.{ext}"
    write_once(archive_root(), rel, content)
    return rel, sha


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# -- what to issue -------------------------------------------------------------------------------
@dataclass
class Plan:
    """One document to issue: its key, its context without number, and who numbers it."""

    kind: catalog.Kind
    doc_key: str
    context: dict[str, Any]
    case_id: int | None = None
    event_seq: int | None = None
    scope: str | None = None
    period: str | None = None
    policy_name: str | None = None
    policy_version: int | None = None
    issuer: str | None = None
    year: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def numbered(self) -> bool:
        return self.kind.numbered

    def context_for(self, number: int | None) -> dict:
        return with_number(self.context, number=number, year=self.year) if self.numbered else self.context


def case_doc_key(case_id: int, kind: str, event_seq: int) -> str:
    return f"case:{case_id}:{kind}:{event_seq}"


def default_event_seq(session: Session, case: Case, kind: str, policy: Policy) -> int:
    """The event a case document belongs to when none is given: its latest request, else the latest
    event that asks for that kind under the case's policy, else the case's latest event."""
    seq = session.scalar(
        select(DocumentRequest.event_seq).where(DocumentRequest.case_id == case.id, DocumentRequest.kind == kind)
        .order_by(DocumentRequest.event_seq.desc()).limit(1)
    )
    if seq is not None:
        return seq
    events = session.execute(
        select(CaseEvent.seq, CaseEvent.event, CaseEvent.to_state).where(CaseEvent.case_id == case.id)
        .order_by(CaseEvent.seq.desc())
    ).all()
    for s, event, to_state in events:
        if event == "escalate":
            step = policy.step(to_state)
            if step is not None and kind in step.documents:
                return s
        elif event in Action.__members__ and kind in policy.action_documents(event):
            return s
        elif event == "mark_returned" and kind == "return_register":
            return s
        elif event == "escalate_outside" and any(kind in r.documents for r in policy.outside):
            return s
    return case.version


def _policy_for(session: Session, case: Case) -> Policy:
    return PolicyRegistry(session).get(case.policy_name, case.policy_version)


def case_plan(session: Session, case_id: int, kind_id: str, *, actor: str, now: datetime,
              event_seq: int | None = None) -> Plan:
    kind = catalog.get(kind_id)
    if kind.subject != "case":
        raise ValueError(f"{kind_id} is a report: use render_report")
    case = session.get(Case, case_id)
    if case is None:
        raise LookupError(f"case {case_id} not found (案件不存在)")
    policy = _policy_for(session, case)
    seq = event_seq if event_seq is not None else default_event_seq(session, case, kind_id, policy)
    event = session.scalar(select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.seq == seq))
    act_on = act_time(kind_id, event, now)
    facts = _archive_photos(session, case_id, case_facts(session, case_id, policy, today=act_on.date(),
                                                         upto_seq=seq if event is not None else None))
    calendar = CaseContext(session).calendar(case.calendar_key)
    facts["notices"] = notice_facts(
        policy, kind_id, facts, issued_on=act_on.date(), add_school_days=calendar.add_school_days,
        outside_reason=(event.payload or {}).get("reason") if event is not None and event.event == "escalate_outside"
        and isinstance(event.payload, dict) else None)
    ctx = case_context(kind_id, facts, event_seq=seq, issued_on=act_on.date().isoformat(), actor=actor)
    plan = Plan(kind, case_doc_key(case_id, kind_id, seq), ctx, case_id=case_id, event_seq=seq,
                policy_name=case.policy_name, policy_version=case.policy_version,
                issuer=ctx["doc"]["issuer"]["key"] if kind.numbered else None, year=act_on.year)
    _link_documents(session, plan, actor=actor, now=now)
    return plan


def act_time(kind_id: str, event: CaseEvent | None, now: datetime) -> datetime:
    """When the act a document records happened: the event it belongs to (the step reached, the action
    recorded) — for a 送达回证 the moment of service the server entered — never the render time.
    ``now`` only for a document that belongs to no recorded event."""
    if event is None:
        return now
    if kind_id == "proof_of_service" and isinstance(event.payload, dict):
        served = parse_moment(event.payload.get("served_at"))
        if served is not None:
            return served
    return event.at


def parse_moment(raw: Any) -> datetime | None:
    """A time as staff enter it ("2026-11-16 15:00", "2026-11-16T15:00", "2026-11-16"), or None."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        return datetime.fromisoformat(raw.strip().replace("T", " "))
    except ValueError:
        return None


def _archive_photos(session: Session, case_id: int, facts: dict) -> dict:
    """Each photo of a payload is an attachment id of this case (``machines.payloads.PhotoRef``):
    it becomes ``archive:<the path the server stored it under>``. A photo whose attachment or file
    is missing, or an old entry that names a path, URL or data, is printed as missing: nothing a
    payload names is ever opened, and one lost photo does not stop the case's documents."""
    for event in facts["events"]:
        photos = event["payload"].get("photos")
        if not photos:
            continue
        out = []
        for p in photos if isinstance(photos, list) else [photos]:
            ref = p if isinstance(p, dict) else {}
            caption = str(ref.get("caption") or "")[:60]
            found = None
            if isinstance(ref.get("attachment_id"), int):
                found = locate(session, case_id, ref["attachment_id"], archive_root())
            if found is not None and found.path is not None and found.attachment.media_type in IMAGES:
                out.append({"src": f"archive:{found.attachment.path}", "caption": caption})
            else:
                log.warning("case %s event %s: photo %s is missing", case_id, event["seq"], len(out) + 1)
                out.append({"src": None, "caption": caption, "missing": True})
        event["payload"] = {**event["payload"], "photos": out}
    return facts


def _link_documents(session: Session, plan: Plan, *, actor: str, now: datetime) -> None:
    """Documents that cite another: a proof of service names the notice it served (issuing that notice
    first if it was not yet), a legal notice cites the return notice before it."""
    record = plan.context["record"]
    if plan.kind.id == "proof_of_service":
        served = latest_document(session, plan.case_id, record["served_kind"], upto_seq=plan.event_seq)
        if served is None:
            served = render_for_case(session, plan.case_id, record["served_kind"], actor=actor, now=now).document
        record["served"] = _cite(served)
    elif plan.kind.id == "legal_notice":
        earlier = latest_document(session, plan.case_id, "return_notice", upto_seq=plan.event_seq)
        record["return_notice"] = _cite(earlier) if earlier else None


def _cite(doc: Document) -> dict:
    issuer = doc.data["doc"]["issuer"]
    return {"title": doc.title, "doc_number": doc.doc_number or doc.data["doc"]["ref"],
            "issuer": "、".join([issuer["name"], *issuer.get("co_issuers", [])]),
            "issued_on": doc.data["doc"]["issued_on"], "document_id": doc.id}


def latest_document(session: Session, case_id: int | None, kind: str, *, upto_seq: int | None = None) -> Document | None:
    q = select(Document).where(Document.case_id == case_id, Document.kind == kind)
    if upto_seq is not None:
        q = q.where(Document.event_seq <= upto_seq)
    return session.scalar(q.order_by(Document.event_seq.desc(), Document.version.desc()).limit(1))


def _latest_version(session: Session, doc_key: str) -> Document | None:
    return session.scalar(select(Document).where(Document.doc_key == doc_key).order_by(Document.version.desc()).limit(1))


# -- issuing -------------------------------------------------------------------------------------
def _render_ahead(session: Session, plan: Plan, fmt: str) -> tuple[Rendition, int | None]:
    """Render before taking any lock, with the number the counter suggests (numbered kinds)."""
    guess = numbering.peek(session, plan.issuer, plan.year) + 1 if plan.numbered else None
    return render(plan.context_for(guess), fmt, archive_dir=archive_root()), guess


def issue(session: Session, plan: Plan, fmt: str, *, actor: str, now: datetime,
          rendition: Rendition | None = None, guess: int | None = None) -> DocumentFile:
    """Archive ``plan`` as version 1 in ``fmt`` (or return what is archived under its key)."""
    if fmt not in plan.kind.formats:
        raise RenderError(f"{plan.kind.id} has no {fmt} format (formats: {', '.join(plan.kind.formats)})")
    existing = _latest_version(session, plan.doc_key)
    if existing is not None:
        return ensure_format(session, existing, fmt, actor=actor, now=now)
    try:
        with session.begin_nested():
            number = None
            if plan.numbered:
                number = numbering.allocate(session, plan.issuer, plan.year, now=now)
            context = plan.context_for(number)
            if rendition is None or guess != number:
                rendition = render(context, fmt, archive_dir=archive_root())
            doc = Document(
                doc_key=plan.doc_key, version=1, kind=plan.kind.id, title=_title(context), case_id=plan.case_id,
                event_seq=plan.event_seq, scope=plan.scope, period=plan.period, issuer=plan.issuer,
                year=plan.year if number is not None else None, number=number,
                doc_number=context["doc"]["doc_number"], data=context, template_sha256=templates_digest(),
                policy_name=plan.policy_name, policy_version=plan.policy_version, actor=actor, created_at=now,
            )
            session.add(doc)
            session.flush()
            record = _add_file(session, doc, rendition, actor=actor, now=now)
    except IntegrityError:
        # Someone archived the same document meanwhile: theirs stands, our number rolled back.
        existing = _latest_version(session, plan.doc_key)
        if existing is None:
            raise
        return ensure_format(session, existing, fmt, actor=actor, now=now)
    log.info("archived %s %s v1 %s %s", plan.kind.id, plan.doc_key, context["doc"]["doc_number"] or "", record.sha256[:12])
    return record


def _title(context: dict) -> str:
    return context["doc"]["title"][:128]


def _add_file(session: Session, doc: Document, rendition: Rendition, *, actor: str, now: datetime) -> DocumentFile:
    rel, sha = store_bytes(rendition.content, rendition.fmt)
    record = DocumentFile(document_id=doc.id, fmt=rendition.fmt, media_type=rendition.media_type, path=rel,
                          sha256=sha, size=len(rendition.content), actor=actor, created_at=now)
    session.add(record)
    session.flush()
    return record


def ensure_format(session: Session, doc: Document, fmt: str, *, actor: str, now: datetime) -> DocumentFile:
    """The ``fmt`` file of an archived document; rendered from its archived data if not there yet."""
    for f in doc.files:
        if f.fmt == fmt:
            return f
    found = session.scalar(select(DocumentFile).where(DocumentFile.document_id == doc.id, DocumentFile.fmt == fmt))
    if found is not None:
        return found
    kind = catalog.get(doc.kind)
    if fmt not in kind.formats:
        raise RenderError(f"{kind.id} has no {fmt} format (formats: {', '.join(kind.formats)})")
    rendition = render(doc.data, fmt, archive_dir=archive_root())
    try:
        with session.begin_nested():
            record = _add_file(session, doc, rendition, actor=actor, now=now)
    except IntegrityError:
        record = session.scalar(select(DocumentFile).where(DocumentFile.document_id == doc.id, DocumentFile.fmt == fmt))
        if record is None:
            raise
    return record


# -- the functions the CLI, the tasks and the pages call -----------------------------------------------
def render_for_case(session: Session, case_id: int, kind: str, *, actor: str, fmt: str = "pdf",
                    event_seq: int | None = None, now: datetime | None = None) -> DocumentFile:
    """The ``kind`` document of a case, issued and archived if it was not yet (in the caller's transaction).

    ``event_seq`` picks the event the document belongs to (default: its latest request, else the latest
    event that asks for it). The same (case, kind, event) always returns the same archived bytes.
    Commit the session to keep the document and its number.
    """
    now = now or local_now()
    plan = case_plan(session, case_id, kind, actor=actor, now=now, event_seq=event_seq)
    existing = _latest_version(session, plan.doc_key)
    if existing is not None:
        return ensure_format(session, existing, fmt, actor=actor, now=now)
    rendition, guess = _render_ahead(session, plan, fmt)
    return issue(session, plan, fmt, actor=actor, now=now, rendition=rendition, guess=guess)


def render_report(session: Session, kind: str, *, scope: str, period: str, actor: str, fmt: str = "pdf",
                  now: datetime | None = None, data: dict | None = None) -> DocumentFile:
    """A report (monthly_report, spot_check_sheet, accountability_sheet) of ``scope`` ("school:<code>",
    "township:<code>", "county:<code>") for ``period`` ("2026-11", or "2026Q4" for spot checks)."""
    from documents.reports import report_data

    now = now or local_now()
    k = catalog.get(kind)
    if k.subject != "report":
        raise ValueError(f"{kind} is a case document: use render_for_case")
    key = f"report:{kind}:{scope}:{period}"
    existing = _latest_version(session, key)
    if existing is not None:
        return ensure_format(session, existing, fmt, actor=actor, now=now)
    report = data if data is not None else report_data(session, kind, scope=scope, period=period, now=now)
    ctx = report_context(kind, report, issued_on=now.date().isoformat(), actor=actor)
    plan = Plan(k, key, ctx, scope=scope, period=period)
    return issue(session, plan, fmt, actor=actor, now=now)


def correct(session: Session, document_id: int, *, actor: str, reason: str, changes: dict | None = None,
            refresh: bool = False, fmt: str = "pdf", now: datetime | None = None) -> DocumentFile:
    """Issue a corrected version of a document: same key and number, version + 1, pointing to the old.

    ``refresh`` re-reads the case from the store (after the wrong fact was fixed there); ``changes``
    overrides fields of the archived data ({"record": {"place": "…"}} — merged recursively).
    """
    now = now or local_now()
    old = session.get(Document, document_id)
    if old is None:
        raise LookupError(f"document {document_id} not found (文书不存在)")
    latest = _latest_version(session, old.doc_key)
    if latest.id != old.id:
        raise ValueError(f"document {document_id} was already corrected by version {latest.version} (id {latest.id})")
    if refresh and old.case_id is not None:
        plan = case_plan(session, old.case_id, old.kind, actor=actor, now=now, event_seq=old.event_seq)
        data = with_number(plan.context, number=old.number, year=old.year) if old.number else plan.context
    else:
        data = _deep_copy(old.data)
    if changes:
        data = _merge(data, changes)
    # a correction is the same act's paper, corrected: it keeps the act's date (the trace says 更正)
    data["doc"].update(version=old.version + 1, correction_reason=reason, actor=actor)
    from documents.context import trace_line

    data["doc"]["trace"] = trace_line(data["doc"]) + (f" · {data['doc']['doc_number']}" if data["doc"].get("doc_number") else "")
    rendition = render(data, fmt, archive_dir=archive_root())
    doc = Document(
        doc_key=old.doc_key, version=old.version + 1, kind=old.kind, title=old.title, case_id=old.case_id,
        event_seq=old.event_seq, scope=old.scope, period=old.period, issuer=old.issuer, year=old.year,
        number=old.number, doc_number=old.doc_number, data=data, template_sha256=templates_digest(),
        policy_name=old.policy_name, policy_version=old.policy_version, actor=actor, created_at=now,
        supersedes_id=old.id, correction_reason=reason,
    )
    session.add(doc)
    session.flush()
    return _add_file(session, doc, rendition, actor=actor, now=now)


def _deep_copy(data: Any) -> Any:
    import copy

    return copy.deepcopy(data)


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for k, v in changes.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def verify_file(session: Session, path: str | os.PathLike) -> DocumentFile | None:
    """The archive record of a file (by its SHA-256), or None if the archive never issued these bytes."""
    sha = sha256_file(Path(path))
    return session.scalar(select(DocumentFile).where(DocumentFile.sha256 == sha).order_by(DocumentFile.id).limit(1))


def verify_bytes(session: Session, content: bytes) -> DocumentFile | None:
    sha = hashlib.sha256(content).hexdigest()
    return session.scalar(select(DocumentFile).where(DocumentFile.sha256 == sha).order_by(DocumentFile.id).limit(1))


# -- the queue --------------------------------------------------------------------------------------
# Requests being rendered by this process (SQLite has no SKIP LOCKED: threads of one process
# must not pick the same request; other processes may, harmlessly — the archive dedups by key).
_in_flight: set[int] = set()
_in_flight_lock = threading.Lock()


def _claim(session: Session, skip: set[int], now: datetime) -> DocumentRequest | None:
    from documents.retry import due

    with _in_flight_lock:
        exclude = skip | _in_flight
        q = select(DocumentRequest).where(DocumentRequest.status == "queued", due(now))  # a retry waits its turn
        if exclude:
            q = q.where(DocumentRequest.id.not_in(exclude))
        q = q.order_by(DocumentRequest.id).limit(1).with_for_update(skip_locked=True)
        request = session.scalar(q)
        if request is not None:
            _in_flight.add(request.id)
        return request


def _mark(session: Session, request_id: int, *, status: str, document_id: int | None = None,
          error: str | None = None) -> bool:
    """Set a request's outcome if it is still queued (a request another worker finished stays as they left it)."""
    result = session.execute(
        update(DocumentRequest).where(DocumentRequest.id == request_id, DocumentRequest.status == "queued")
        .values(status=status, document_id=document_id, error=error, next_attempt_at=None)
    )
    return result.rowcount == 1


def _error_text(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    return f"{type(exc).__name__}: {inner}"[:2000]


def render_queued(session_factory: sessionmaker[Session], *, limit: int = 100, actor: str = "system",
                  now: datetime | None = None) -> dict[str, int]:
    """Render and archive up to ``limit`` queued document requests; returns {rendered, failed, skipped, retry}.

    Each request is one transaction: claim (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so parallel
    workers split the queue), render, archive, mark ``rendered``. On SQLite the render runs between
    two short transactions so the single write lock is not held while WeasyPrint works. Idempotent:
    a request whose document is archived already is only marked, so a retry never makes a second
    document or takes a second number. A request that failed transiently (disk full) waits and is
    tried again by a later run; one that cannot be rendered, or failed too often, is marked
    ``failed`` with the reason and left for a person to look at (documents/retry.py).
    """
    counts = {"rendered": 0, "failed": 0, "skipped": 0, "retry": 0}
    seen: set[int] = set()
    while sum(counts.values()) < limit:
        outcome = _process_one(session_factory, seen, actor=actor, now=now)
        if outcome is None:
            break
        counts[outcome] += 1
    return counts


def _process_one(factory: sessionmaker[Session], seen: set[int], *, actor: str, now: datetime | None) -> str | None:
    when = now or local_now()
    with factory() as session:
        hold = is_postgres(session.get_bind())
        session.begin()
        request = _claim(session, seen, when)
        if request is None:
            session.rollback()
            return None
        rid, case_id, kind, seq = request.id, request.case_id, request.kind, request.event_seq
        seen.add(rid)
        try:
            return _render_request(factory, session, hold, rid, case_id, kind, seq, actor=actor, now=when)
        finally:
            with _in_flight_lock:
                _in_flight.discard(rid)


def _render_request(factory, session: Session, hold: bool, rid: int, case_id: int, kind: str, seq: int, *,
                    actor: str, now: datetime) -> str:
    try:
        plan = case_plan(session, case_id, kind, actor=actor, now=now, event_seq=seq)
        rendition = guess = None
        if _latest_version(session, plan.doc_key) is None:
            if not hold:
                session.commit()  # SQLite: let others write while WeasyPrint works
            rendition, guess = _render_ahead_outside(factory, session, plan, hold)
            if not hold:
                session.begin()
        with session.begin_nested():
            record = issue(session, plan, "pdf", actor=actor, now=now, rendition=rendition, guess=guess)
        if not _mark(session, rid, status="rendered", document_id=record.document_id):
            session.rollback()
            return "skipped"
        session.commit()
        return "rendered"
    except Exception as exc:  # the request fails, the queue goes on
        session.rollback()
        log.warning("document request %s (case %s, %s, event %s) failed: %s", rid, case_id, kind, seq, _error_text(exc))
        from documents.retry import record_failure

        with session.begin():
            return record_failure(session, rid, exc, _error_text(exc), now=now)


def _render_ahead_outside(factory, session: Session, plan: Plan, hold: bool) -> tuple[Rendition, int | None]:
    if hold:
        return _render_ahead(session, plan, "pdf")
    guess = None
    if plan.numbered:
        with factory() as peek_session:
            guess = numbering.peek(peek_session, plan.issuer, plan.year) + 1
            peek_session.rollback()
    return render(plan.context_for(guess), "pdf", archive_dir=archive_root()), guess


def photo_data_uri(content: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(content).decode()


__all__ = [
    "render_for_case", "render_report", "render_queued", "verify_file", "verify_bytes", "correct", "file_path",
    "archive_root", "latest_document", "local_now", "ACTION_LABELS",
]
