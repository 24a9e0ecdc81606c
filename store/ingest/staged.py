"""A morning-check file kept as received, for the run that records it (``store.models.intake_files``).

The entry stages the bytes (:func:`stage_file`) and signs the run's parameter with the id and SHA-256;
the run reads them back (:func:`staged_bytes`), refusing a file whose bytes no longer match."""
from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy.orm import Session

from store.models.intake_files import StagedFile


class StagedFileMissing(ValueError):
    pass


def stage_file(session: Session, data: bytes, filename: str, *, by: str, now: datetime) -> tuple[int, str]:
    """Store ``data``; (id, SHA-256 hex)."""
    digest = hashlib.sha256(data).hexdigest()
    row = StagedFile(sha256=digest, filename=(filename or "")[-255:], size=len(data), body=data, created_by=by[:64],
                     created_at=now)
    session.add(row)
    session.flush()
    return row.id, digest


def staged_bytes(session: Session, file_id: int, sha256: str) -> tuple[bytes, str]:
    """The staged file's (bytes, filename), if its bytes still have ``sha256``."""
    row = session.get(StagedFile, file_id)
    if row is None or hashlib.sha256(row.body).hexdigest() != sha256:
        raise StagedFileMissing(f"晨检文件 #{file_id} 不存在或内容已改变 (staged file missing or changed)")
    return bytes(row.body), row.filename
