"""The monotonic clock every deadline uses, injected so tests can replace it.

Wall-clock time is for display, logs and calendars only: a clock step (NTP, a VM resume)
must never fire or stall a restart or a stop timeout. Schedules (herder.core.calendar) are
the one place the two meet: the runtime tells the core their offset (`wall()` - `now()`).
A Clock tells the time and wakes the loop at a deadline on its own time line; the
supervisor's one deadline heap (herder.runtime.timers) asks it for one wake-up at a time.
herder.testing.FakeClock is the test double, which can jump to the next deadline whenever
the loop has nothing else to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class Wakeup(Protocol):
    def cancel(self) -> None: ...


class Now(Protocol):
    def now(self) -> float: ...


class Clock(Now, Protocol):
    def wall(self) -> float:
        """Wall-clock time (seconds since the epoch) now, on this clock's notion of it."""
        ...

    def wake_at(self, deadline: float, callback: Callable[[], None]) -> Wakeup:
        """Call `callback` on the running loop once now() >= deadline (on this clock)."""
        ...

    def busy(self) -> Callable[[], None]:
        """The runtime awaits an answer that is already on its way (an exited process's last
        output): a virtual clock must not jump meanwhile. Call the result when it came."""
        ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def wake_at(self, deadline: float, callback: Callable[[], None]) -> Wakeup:
        import asyncio  # here, not at the top: the keeper imports this module and never asyncio

        loop = asyncio.get_running_loop()
        return loop.call_at(loop.time() + max(0.0, deadline - self.now()), callback)

    def busy(self) -> Callable[[], None]:
        return _nothing


def _nothing() -> None:
    return None
