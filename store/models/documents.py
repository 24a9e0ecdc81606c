"""The document archive: issued documents, their files, and the per-issuer number counters.

A *document* is one issued paper (a 返校通知书 for case 12 at event 5), identified by its
``doc_key``; a correction is a new *version* of the same key that points to the one it replaces.
Each version is frozen with the exact data it was rendered from. Its *files* are the renditions
(PDF for print, HTML for preview, XLSX for tables), stored content-addressed under
``settings().archive_dir`` with their SHA-256.

``document_counters`` holds one row per (issuer, year): the last 发文字号 number given out. The
row is locked (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` holds the one write
lock) and bumped in the transaction that archives the document, so numbers never repeat and
never skip (a render that fails rolls its number back).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.models import Base


class DocumentCounter(Base):
    """发文字号 counter: the last number an issuer gave out in a year."""

    __tablename__ = "document_counters"
    issuer: Mapped[str] = mapped_column(String(64), primary_key=True)  # "township:C7T1", "school:C7T1S2"
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Document(Base):
    """One version of one issued document, with the exact data it was rendered from."""

    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    doc_key: Mapped[str] = mapped_column(String(160))  # "case:12:return_notice:5", "report:monthly_report:school:S1:2026-11"
    version: Mapped[int] = mapped_column(Integer)     # 1, then 2, 3 … for corrections
    kind: Mapped[str] = mapped_column(String(40), index=True)
    title: Mapped[str] = mapped_column(String(128))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    event_seq: Mapped[int | None] = mapped_column(Integer)
    scope: Mapped[str | None] = mapped_column(String(64))   # reports: "school:<code>", "township:<code>", "county:<code>"
    period: Mapped[str | None] = mapped_column(String(16))  # reports: "2026-11", "2026Q4"
    issuer: Mapped[str | None] = mapped_column(String(64))  # counter key of the numbering issuer
    year: Mapped[int | None] = mapped_column(Integer)
    number: Mapped[int | None] = mapped_column(Integer)
    doc_number: Mapped[str | None] = mapped_column(String(64))  # 城关镇政发〔2026〕12号
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # the template context, exactly
    template_sha256: Mapped[str] = mapped_column(String(64))
    policy_name: Mapped[str | None] = mapped_column(String(32))
    policy_version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    correction_reason: Mapped[str | None] = mapped_column(String(255))

    files: Mapped[list["DocumentFile"]] = relationship(back_populates="document", order_by="DocumentFile.id")

    __table_args__ = (
        UniqueConstraint("doc_key", "version"),
        # A number belongs to one document (its corrections keep it, as new versions).
        UniqueConstraint("issuer", "year", "number", "version"),
        Index("ix_documents_case", "case_id", "kind"),
    )


class DocumentFile(Base):
    """One rendition (pdf | html | xlsx) of a document version, stored content-addressed."""

    __tablename__ = "document_files"
    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    fmt: Mapped[str] = mapped_column(String(8))
    media_type: Mapped[str] = mapped_column(String(80))
    path: Mapped[str] = mapped_column(String(255))  # relative to settings().archive_dir: "ab/abcd….pdf"
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    document: Mapped[Document] = relationship(back_populates="files")

    __table_args__ = (UniqueConstraint("document_id", "fmt"),)
