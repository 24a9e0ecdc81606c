"""Attachments: files staff uploaded to a case (visit photos, scanned receipts), kept by the server.

A payload names an attachment by its ``id`` only; the row says which case it belongs to, who
uploaded it, what the bytes are (the type sniffed from the bytes, never the client's word), their
size and SHA-256, and where they are stored under the archive folder (a path the server chose).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    uploaded_by: Mapped[str] = mapped_column(String(64))        # the actor ("user:teacher")
    media_type: Mapped[str] = mapped_column(String(64))         # sniffed: image/jpeg, image/png, image/webp, application/pdf
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(255))              # relative to the archive folder
    filename: Mapped[str] = mapped_column(String(128), default="")  # as uploaded, shown only
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_attachments_case", "case_id"),)
