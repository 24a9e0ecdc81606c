"""What every task needs besides its inputs: the store's session factory and the clock.

The database is the worker's setting (``BAOXUE_DATABASE_URL``), never a flow parameter (it
would show passwords in the Prefect UI). Engines are made lazily, once per URL and process.
Tests and the demo may bind a factory explicitly with :func:`using`.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator

from sqlalchemy.orm import Session, sessionmaker

from machines.clock import Clock, SimulatedClock  # noqa: F401 - the flows' and the demo's clocks
from store.clock import SHANGHAI, SystemClock, to_local  # noqa: F401

# A lost database (restart, failover, network) is retried after 1 s, 5 s and 15 s: an outage of
# ~20 s costs a run nothing. Each store task is one transaction, so a retry redoes a whole unit
# of work or finds it done (an escalation batch re-selects what is still due).
DB_RETRIES = {"retries": 3, "retry_delay_seconds": [1, 5, 15]}

_lock = threading.Lock()
_factories: dict[str, sessionmaker[Session]] = {}
_override: list[sessionmaker[Session]] = []


def store() -> sessionmaker[Session]:
    """The session factory of this process's Baoxue database."""
    if _override:
        return _override[-1]
    from store.db import make_engine, session_factory, settings

    url = settings().database_url
    with _lock:
        if url not in _factories:
            _factories[url] = session_factory(make_engine(url))
        return _factories[url]


@contextmanager
def using(factory: sessionmaker[Session]) -> Iterator[sessionmaker[Session]]:
    """Run tasks against ``factory`` (tests, the demo) instead of the configured database."""
    _override.append(factory)
    try:
        yield factory
    finally:
        _override.remove(factory)


def dispose_all() -> None:
    with _lock:
        for f in _factories.values():
            f.kw["bind"].dispose()
        _factories.clear()


# -- the clock (machines.clock; the system clock in store.clock) ---------------------------------------------
_clock: list[Clock] = [SystemClock()]


def clock() -> Clock:
    return _clock[-1]


@contextmanager
def clock_set_to(c: Clock) -> Iterator[Clock]:
    _clock.append(c)
    try:
        yield c
    finally:
        _clock.remove(c)


def resolve_as_of(as_of: datetime | None) -> datetime:
    """The instant a flow run acts for: the ``as_of`` parameter, else the scheduled start of a
    scheduled run (so a late or repeated run of one schedule tick acts for the same instant),
    else the clock."""
    if as_of is not None:
        return to_local(as_of).replace(microsecond=0)
    try:
        from prefect.runtime import deployment, flow_run

        scheduled = flow_run.scheduled_start_time if (flow_run.id and deployment.id) else None
    except Exception:  # pragma: no cover - outside a flow run
        scheduled = None
    if scheduled is not None:
        return to_local(scheduled).replace(microsecond=0)
    return clock().now()


def run_name(prefix: str):
    """A flow_run_name callable: ``<prefix>-<as_of>`` (the instant the run acts for)."""

    def name() -> str:
        from prefect.runtime import flow_run

        as_of = flow_run.parameters.get("as_of")
        if isinstance(as_of, str):
            as_of = datetime.fromisoformat(as_of)
        return f"{prefix}-{resolve_as_of(as_of):%Y-%m-%dT%H:%M}"

    return name
