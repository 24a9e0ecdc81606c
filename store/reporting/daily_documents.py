"""The documents a school or a township issued on a day (打印今日文书, issue 18 item 6): the case
documents created that day whose case is in the reader's scope (and, if given, at one school), the
newest version of each, in school, case and step order — the head teacher prints them in one go."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from store.access.scope import Scope
from store.models import Case, School
from store.models.documents import Document, DocumentFile


def issued_on(session: Session, scope: Scope, day: date, *, school_id: int | None = None,
              fmt: str = "pdf", limit: int = 500) -> list[dict[str, Any]]:
    """[{document_id, kind, title, doc_number, case_id, school, path}] of ``day``, at most ``limit``."""
    start = datetime.combine(day, time.min)
    newer = aliased(Document)
    q = (select(Document.id, Document.kind, Document.title, Document.doc_number, Document.case_id, School.name,
                DocumentFile.path)
         .join(Case, Case.id == Document.case_id).join(School, School.id == Case.school_id)
         .join(DocumentFile, (DocumentFile.document_id == Document.id) & (DocumentFile.fmt == fmt))
         .where(Document.created_at >= start, Document.created_at < start + timedelta(days=1),
                ~select(newer.id).where(newer.doc_key == Document.doc_key, newer.version > Document.version).exists()))
    q = scope.apply(q)
    if school_id is not None:
        q = q.where(Case.school_id == school_id)
    rows = session.execute(q.order_by(School.code, Document.case_id, Document.event_seq, Document.id).limit(limit))
    return [{"document_id": i, "kind": k, "title": t, "doc_number": n, "case_id": c, "school": s, "path": p}
            for i, k, t, n, c, s, p in rows]


def count_issued_on(session: Session, scope: Scope, day: date) -> int:
    start = datetime.combine(day, time.min)
    q = (select(func.count()).select_from(Document).join(Case, Case.id == Document.case_id)
         .where(Document.created_at >= start, Document.created_at < start + timedelta(days=1)))
    return session.scalar(scope.apply(q)) or 0
