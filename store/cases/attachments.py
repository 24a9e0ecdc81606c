"""Attachments as a store of their own: upload (sniffed, capped), check, find in scope, locate.

- :func:`save` keeps an upload only if its *bytes* are an image (JPEG, PNG, WebP) or a PDF (the
  client's content type and file name are ignored), no larger than the cap, stored
  content-addressed under ``<archive>/attachments/`` (read-only), and records who uploaded it
  to which case;
- :func:`check_photos` refuses a payload whose photos name an attachment of another case (or
  none): a payload can only point at what the server issued for that case;
- :func:`readable` finds an attachment through the reader's scope (its case's school/class), so
  another township's attachment is "not found", exactly like one that does not exist;
- :func:`write_once` is the one content-addressed writer (the document archive uses it too).
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.payloads import PayloadInvalid, photo_ids

from store.models.attachments import Attachment
from store.models import Case
from store.access.scope import Scope

# magic bytes → (media type, file extension); WebP is RIFF....WEBP
ALLOWED = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "application/pdf": "pdf"}
IMAGES = frozenset({"image/jpeg", "image/png", "image/webp"})
_lock = threading.Lock()


class AttachmentRefused(ValueError):
    """An upload that is not kept; ``status`` is the HTTP status the web app answers with."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def sniff(data: bytes) -> str | None:
    """The media type the bytes really are, if allowed (images and PDF), else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def write_once(root: Path, rel: str, content: bytes) -> Path:
    """Write ``content`` at ``root/rel`` once (atomically, read-only); an existing file is kept."""
    path = root / rel
    if path.exists() and path.stat().st_size == len(content):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with _lock:
        tmp.write_bytes(content)
        os.chmod(tmp, 0o444)
        os.replace(tmp, path)
    return path


def save(session: Session, case_id: int, data: bytes, filename: str, *, actor: str, now: datetime,
         archive_dir: Path, max_bytes: int, images_only: bool = False) -> Attachment:
    """Keep an upload for ``case_id`` (no commit); :class:`AttachmentRefused` if it is not allowed."""
    shown = (filename or "附件")[-60:]
    if not data:
        raise AttachmentRefused(422, f"{shown} 是空文件 (empty file)")
    if len(data) > max_bytes:
        raise AttachmentRefused(413, f"{shown} 超过 {max_bytes // (1024 * 1024)}MB，请压缩后再上传 (file too large)")
    media_type = sniff(data)
    if media_type is None or (images_only and media_type not in IMAGES):
        kinds = "JPG/PNG/WebP 照片" if images_only else "JPG/PNG/WebP 照片或 PDF"
        raise AttachmentRefused(415, f"{shown} 不是{kinds}，不能上传 (only images and PDF are accepted)")
    digest = hashlib.sha256(data).hexdigest()
    rel = f"attachments/{digest[:2]}/{digest}.{ALLOWED[media_type]}"
    write_once(archive_dir.resolve(), rel, data)
    row = Attachment(case_id=case_id, uploaded_by=actor[:64], media_type=media_type, size=len(data), sha256=digest,
                     path=rel, filename=shown[:128], created_at=now)
    session.add(row)
    session.flush()
    return row


def check_photos(session: Session, case_id: int, payload: dict) -> None:
    """Every photo of a checked payload is an image attachment of this case (else PayloadInvalid)."""
    wanted = photo_ids(payload)
    if not wanted:
        return
    found = {a.id: a for a in session.scalars(select(Attachment).where(Attachment.id.in_(wanted)))}
    errors = []
    for n, attachment_id in enumerate(wanted, start=1):
        a = found.get(attachment_id)
        if a is None or a.case_id != case_id:
            errors.append({"field": f"photos.{n - 1}.attachment_id",
                           "message": f"照片第{n}张：附件 {attachment_id} 不是本案件上传的附件 (not an attachment of this case)"})
        elif a.media_type not in IMAGES:
            errors.append({"field": f"photos.{n - 1}.attachment_id",
                           "message": f"照片第{n}张：附件 {attachment_id} 不是照片 (not an image)"})
    if errors:
        raise PayloadInvalid(errors)


def readable(session: Session, scope: Scope, attachment_id: int) -> Attachment | None:
    """The attachment if its case is in ``scope``; None otherwise (as if it did not exist)."""
    q = scope.apply(select(Attachment).join(Case, Case.id == Attachment.case_id).where(Attachment.id == attachment_id))
    return session.scalar(q)


@dataclass(frozen=True)
class Located:
    attachment: Attachment
    path: Path | None  # None: the row is there, the file is not (lost, not restored)


def locate(session: Session, case_id: int, attachment_id: int, archive_dir: Path) -> Located | None:
    """An attachment of ``case_id`` and its file under the archive (never a path from a payload)."""
    a = session.get(Attachment, attachment_id)
    if a is None or a.case_id != case_id:
        return None
    root = archive_dir.resolve()
    path = (root / a.path).resolve()
    ok = root in path.parents and path.is_file()
    return Located(a, path if ok else None)
