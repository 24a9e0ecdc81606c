"""The one notion of "now" (pure: the zone's name, the protocol, clocks that move only when told).

Every timestamp Baoxue keeps is Asia/Shanghai wall-clock time, stored naive, to the second (China
has one time zone and no daylight saving). Services never read a clock: they take ``now`` (or
``as_of``) as an argument, given by the caller from one injectable :class:`Clock` — the system
clock (``store.clock.SystemClock``, where I/O lives), the demo's :class:`SimulatedClock`, a test's
:class:`FixedClock`.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

TIMEZONE = "Asia/Shanghai"


class Clock(Protocol):
    def now(self) -> datetime: ...


class FixedClock:
    """A clock stopped at one instant (a demo's stopped clock, a test)."""

    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at


class SimulatedClock:
    """The demo's clock: it moves only when told to, never back."""

    def __init__(self, start: datetime):
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when < self._now:
            raise ValueError(f"simulated clock cannot go back from {self._now} to {when}")
        self._now = when

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now
