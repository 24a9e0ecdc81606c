"""Documents (文书): the catalog, Jinja2 templates, rendering to HTML/PDF/XLSX, the archive.

The public functions are loaded on first use, so ``import documents`` stays cheap (no WeasyPrint,
no database models until a document is actually rendered):

- ``render_for_case(session, case_id, kind, *, actor, fmt="pdf", event_seq=None, now=None) -> DocumentFile``
- ``render_report(session, kind, *, scope, period, actor, fmt="pdf", now=None) -> DocumentFile``
- ``render_queued(session_factory, *, limit=100, actor="system", now=None) -> {"rendered", "failed", "skipped"}``
- ``verify_file(session, path) -> DocumentFile | None``
- ``correct(session, document_id, *, actor, reason, changes=None, refresh=False, fmt="pdf") -> DocumentFile``
- ``file_path(record) -> Path``, ``archive_root() -> Path``
- ``CATALOG`` (kind id → ``catalog.Kind``), ``check_fonts() -> list[str]`` (start-up warnings)
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "render_for_case": "documents.archive",
    "render_report": "documents.archive",
    "render_queued": "documents.archive",
    "verify_file": "documents.archive",
    "verify_bytes": "documents.archive",
    "correct": "documents.archive",
    "file_path": "documents.archive",
    "archive_root": "documents.archive",
    "latest_document": "documents.archive",
    "CATALOG": "documents.catalog",
    "CASE_KINDS": "documents.catalog",
    "REPORT_KINDS": "documents.catalog",
}

__all__ = [*_LAZY, "check_fonts"]


def check_fonts() -> list[str]:
    """Start-up check of the fonts and libharfbuzz-subset (see ``documents.fonts.check``)."""
    from documents.fonts import check

    return check()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'documents' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
