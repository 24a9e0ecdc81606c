"""A morning-check file as received (issue 20): a county's export is too large to be a flow run's
parameter (Prefect refuses parameters over 512 kB; 100 k rows are ≈10 MB as JSON), so the entry
stores the file here and the ``morning_check`` run names it by id and SHA-256 (signed), reads it
back and parses it again, streaming. Kept as received: what was recorded can be traced to its file."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base


class StagedFile(Base):
    __tablename__ = "staged_files"
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class StagedFilePart(Base):
    """A staged file's bytes in parts of ``store.ingest.staged.PART_BYTES`` (issue 20 item 3): written one
    part a statement, so no driver copies the whole file at once; ``StagedFile.body`` is then empty."""
    __tablename__ = "staged_file_parts"
    file_id: Mapped[int] = mapped_column(ForeignKey("staged_files.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
