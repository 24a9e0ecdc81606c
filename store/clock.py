"""The system clock: Asia/Shanghai wall-clock time, naive, to the second (machines.clock's
convention). The only place that reads the wall clock; every service takes ``now`` from its
caller, and the callers (web, CLI, tasks, documents' defaults) get it from here or from the clock
they were given (tasks.runtime.clock, the web app's clock)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from machines.clock import TIMEZONE, Clock, FixedClock, SimulatedClock  # noqa: F401 - one import for callers

SHANGHAI = ZoneInfo(TIMEZONE)


class SystemClock:
    """Asia/Shanghai wall-clock time, naive, to the second."""

    def now(self) -> datetime:
        return datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)


SYSTEM_CLOCK = SystemClock()


def local_now() -> datetime:
    """The system clock's reading (the default of callers that were given no clock)."""
    return SYSTEM_CLOCK.now()


def to_local(value: datetime) -> datetime:
    """An aware datetime (Prefect's, UTC; an API's "+08:00") as naive Asia/Shanghai; a naive one is taken as local."""
    if value.tzinfo is None:
        return value
    return value.astimezone(SHANGHAI).replace(tzinfo=None)
