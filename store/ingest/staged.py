"""A morning-check file kept as received, for the run that records it (``store.models.intake_files``).

The entry stages the bytes (:func:`stage_file`) and signs the run's parameter with the id and SHA-256;
the run reads them back (:func:`staged_bytes`), refusing a file whose bytes no longer match.

Parsed once: an entry that has already parsed the file (to vet it) and runs the flow in its own process
(``baoxue attendance import``, the web app without a Prefect server) hands its parse over with the file
(:func:`stage_file` ``parsed=``), keyed by the bytes' SHA-256; the run takes it (:func:`staged_parse`)
after checking the staged bytes still have that hash, instead of parsing them again. A run in another
process (a worker) finds no parse and parses the staged bytes itself: the same function of the same bytes."""
from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from store.db import lean_pages
from store.models.intake_files import StagedFile, StagedFilePart

PART_BYTES = 2**20  # a staged file's bytes a part (a row of staged_file_parts) at a time


class StagedFileMissing(ValueError):
    pass


_PARSES: dict[str, object] = {}  # SHA-256 of a staged file's bytes → its parse, handed from entry to run in-process


def stage_file(session: Session, data: bytes, filename: str, *, by: str, now: datetime,
               parsed: object | None = None) -> tuple[int, str]:
    """Store ``data``; (id, SHA-256 hex). ``parsed``: the entry's parse of ``data``, for a run in this process."""
    digest = hashlib.sha256(data).hexdigest()
    if parsed is not None:
        _PARSES.clear()  # one file in hand at a time: an earlier parse never run is let go
        _PARSES[digest] = parsed
    row = StagedFile(sha256=digest, filename=(filename or "")[-255:], size=len(data), body=b"", created_by=by[:64],
                     created_at=now)
    session.add(row)
    session.flush()
    # the bytes a part a statement (staged_file_parts): no driver copy of the whole file at once
    view = memoryview(data)
    parts = StagedFilePart.__table__
    with lean_pages(session):  # pages written once, not read again by this transaction
        for seq, start in enumerate(range(0, len(data), PART_BYTES)):
            session.execute(insert(parts), {"file_id": row.id, "seq": seq, "body": view[start:start + PART_BYTES]})
    return row.id, digest


def _body(session: Session, row: StagedFile) -> bytes:
    """The staged bytes: its parts in order, or (a file staged before 0020_intake3) its body."""
    parts = session.scalars(select(StagedFilePart.body).where(StagedFilePart.file_id == row.id)
                            .order_by(StagedFilePart.seq)).all()
    return b"".join(bytes(p) for p in parts) if parts else bytes(row.body)


def staged_bytes(session: Session, file_id: int, sha256: str) -> tuple[bytes, str]:
    """The staged file's (bytes, filename), if its bytes still have ``sha256``."""
    row = session.get(StagedFile, file_id)
    body = _body(session, row) if row is not None else b""
    if row is None or hashlib.sha256(body).hexdigest() != sha256:
        raise StagedFileMissing(f"晨检文件 #{file_id} 不存在或内容已改变 (staged file missing or changed)")
    return body, row.filename


def staged_parse(session: Session, file_id: int, sha256: str, parse):
    """The staged file's parse: the entry's (same process, same SHA-256), else ``parse(bytes, filename=…)``
    of the bytes read back. Raises :class:`StagedFileMissing` if the file is gone or its bytes changed."""
    data, filename = staged_bytes(session, file_id, sha256)
    kept = _PARSES.pop(sha256, None)
    if kept is not None:
        return kept
    return parse(data, filename=filename)
