"""The access scope: what a user may read and act on — everything (county), some townships, one
school or some classes. Every read and write of the store takes one (store.access.accounts makes it
from the account); it is a different idea from a report's scope (store.reporting.reports.ReportScope)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from store.models import Case, School


@dataclass(frozen=True)
class Scope:
    """What a user may see: everything (county), some townships, one school, or some classes."""

    school_ids: frozenset[int] | None = None     # None = no limit at this level
    class_ids: frozenset[int] | None = None
    township_ids: frozenset[int] | None = None

    def apply(self, q, *, school_col=Case.school_id, class_col=Case.class_id):
        if self.school_ids is not None:
            q = q.where(school_col.in_(self.school_ids))
        if self.class_ids is not None:
            q = q.where(class_col.in_(self.class_ids))
        if self.township_ids is not None:
            q = q.where(school_col.in_(select(School.id).where(School.township_id.in_(self.township_ids))))
        return q


EVERYTHING = Scope()
