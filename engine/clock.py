"""Clocks passed into every engine component (engine thread only; WallClock only in the live server and benchmarks).

No component reads the wall clock itself: it asks the clock it was built with. Live runs use `WallClock`; replay,
recovery and the backtester use `FakeClock`, set from the timestamps recorded in the journal or the data file, so the
same input gives the same state whichever way it arrives.
"""

from __future__ import annotations

import time
from typing import Protocol

from engine.errors import EngineError


class Clock(Protocol):
    def now(self) -> int:
        """Nanoseconds since the Unix epoch."""
        ...


class FakeClock:
    """A clock moved only by its owner. It never goes backwards: a backwards step is a broken invariant."""

    __slots__ = ("_now",)

    def __init__(self, start_ns: int = 0) -> None:
        self._now = int(start_ns)

    def now(self) -> int:
        return self._now

    def advance(self, ns: int) -> int:
        if ns < 0:
            raise EngineError("CLOCK_BACKWARDS", f"cannot advance by a negative {ns} ns")
        self._now += ns
        return self._now

    def set(self, ns: int) -> int:
        if ns < self._now:
            raise EngineError("CLOCK_BACKWARDS", f"cannot set the clock from {self._now} back to {ns}")
        self._now = ns
        return self._now


class WallClock:
    """The real clock. Only the live server and the benchmarks construct one."""

    __slots__ = ()

    def now(self) -> int:
        return time.time_ns()
