"""Bring a store to a usable state: schema at head, policies recorded, calendars materialised."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from store.calendars import calendars as shipped_calendars, materialise
from store.db import session_factory, transaction
from store.policy_files import load_policies_into
from store.schema import migrate


def init_store(engine: Engine, *, now: datetime, calendars: dict | None = None) -> dict[str, int]:
    """Idempotent: run it on every start. Returns {calendar key: school days}."""
    migrate(engine)
    with transaction(session_factory(engine)) as s:
        load_policies_into(s, now=now)
        return {key: materialise(s, cal) for key, cal in (calendars or shipped_calendars()).items()}


def check_calendars(engine: Engine, *, now: datetime, calendars: dict | None = None) -> list[dict]:
    """The schools whose term reaches within 60 days into a year without a holiday list (one entry per
    calendar and year, ``store.calendar_watch``); the operator's duties are raised or closed to match."""
    from store.calendar_watch import review

    with transaction(session_factory(engine)) as s:
        return review(s, calendars or shipped_calendars(), now)
