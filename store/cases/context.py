"""What every case service needs besides the session: policies, calendars, duty owners."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.calendar import SchoolCalendar
from machines.policy import Policy

from store.calendars import calendars as shipped_calendars
from store.models import Jurisdiction, School, SchoolClass, Staff
from store.policy_files import PolicyRegistry


class OwnerResolver:
    """Who owes a duty of ``role`` for a pupil of (school, class): the named person, or None."""

    def __init__(self, session: Session):
        self._session = session
        self._by_school: dict[tuple[int, str], int] = {}
        self._by_jurisdiction: dict[tuple[int, str], int] = {}
        self._head_teacher: dict[int, int | None] = {}
        self._school_chain: dict[int, list[int]] = {}
        self._loaded = False

    def preload(self) -> None:
        if not self._loaded:
            self._load()

    def _load(self) -> None:
        # Core rows through the connection, not ORM rows: a province's 36 k staff and 24 k classes in a
        # tenth of the time (the sweep loads them once per run or batch)
        run = self._session.connection().execute
        st, sc, cl, ju = Staff.__table__, School.__table__, SchoolClass.__table__, Jurisdiction.__table__
        for sid, role, school_id, jid in run(select(st.c.id, st.c.role, st.c.school_id, st.c.jurisdiction_id)
                                             .order_by(st.c.id)):
            if school_id is not None:
                self._by_school.setdefault((school_id, role), sid)
            if jid is not None:
                self._by_jurisdiction.setdefault((jid, role), sid)
        parents = dict(run(select(ju.c.id, ju.c.parent_id)).all())
        for school_id, township_id in run(select(sc.c.id, sc.c.township_id)):
            chain, j = [], township_id
            while j is not None:
                chain.append(j)
                j = parents.get(j)
            self._school_chain[school_id] = chain
        self._head_teacher = dict(run(select(cl.c.id, cl.c.head_teacher_id)).all())
        self._loaded = True

    def resolve(self, school_id: int, class_id: int, role: str) -> int | None:
        if not self._loaded:
            self._load()
        if role == "head_teacher" and self._head_teacher.get(class_id):
            return self._head_teacher[class_id]
        if (school_id, role) in self._by_school:
            return self._by_school[(school_id, role)]
        for j in self._school_chain.get(school_id, []):
            if (j, role) in self._by_jurisdiction:
                return self._by_jurisdiction[(j, role)]
        return None


@dataclass
class CaseContext:
    """Policies, calendars and owners for one unit of work (cheap to build, caches inside)."""

    session: Session
    calendars: dict[str, SchoolCalendar] = field(default_factory=shipped_calendars)

    def __post_init__(self) -> None:
        self.policies = PolicyRegistry(self.session)
        self.owners = OwnerResolver(self.session)
        self._due_cache: dict[tuple[str, date, int], date] = {}

    def policy(self, name: str, version: int) -> Policy:
        return self.policies.get(name, version)

    def calendar(self, key: str) -> SchoolCalendar:
        try:
            return self.calendars[key]
        except KeyError:
            raise LookupError(f"unknown school calendar '{key}' (校历未配置)") from None

    def school_day_after(self, calendar_key: str, day: date, n: int) -> date:
        key = (calendar_key, day, n)
        if key not in self._due_cache:
            self._due_cache[key] = self.calendar(calendar_key).add_school_days(day, n)
        return self._due_cache[key]

    def due_at(self, calendar_key: str, entry_day: date, school_days: int, at: time) -> datetime:
        return datetime.combine(self.school_day_after(calendar_key, entry_day, school_days), at)


def effective_day(policy: Policy, as_of: datetime) -> date:
    """The last day whose morning check is over at ``as_of``: its absences count."""
    return as_of.date() if as_of.time() >= policy.escalation_time else as_of.date() - timedelta(days=1)


def escalation_at(policy: Policy, entry_day: date, created_at: datetime) -> datetime:
    """When a case reached a step: the morning check of that day, never before the case existed."""
    return max(datetime.combine(entry_day, policy.escalation_time), created_at)
