"""One deadline heap for every timer the core arms, driven by the injected clock.

The core arms a timer with an absolute deadline on the monotonic time line and a key
(ArmTimer(key, at)); arming a key again replaces its deadline, CancelTimer forgets it.
The heap asks the clock for a single wake-up at the earliest live deadline; when it comes,
every due timer is handed to `fire(key, at)` in deadline order (the supervisor posts
TimerFired), all within one `together()` (the supervisor steps them in one drain:
herder.runtime.batch; 200 stop timeouts armed by one `down` fall due in one wake-up).
A timer that is already due when the supervisor finishes a drain (a restart's 0 s
backoff, armed by the step of the exit) is fired right there (`fire_due`), so its step
comes in the same drain instead of after a wake-up of the loop. Replaced and cancelled
entries are skipped lazily and compacted away, so a watchdog re-armed on every ping costs
O(log n), not a scan.

Nothing here calls loop.call_later: with herder.testing.FakeClock the same heap runs on
virtual time, which is what lets runtime tests of stop timeouts, backoff and probes run
in milliseconds.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import Callable
from contextlib import AbstractContextManager

from herder.core.effects import TimerKey
from herder.runtime.clock import Clock, Wakeup

_EPSILON = 1e-6   # a wake-up may come a hair early (the loop's clock resolution)


class Timers:
    def __init__(self, clock: Clock, fire: Callable[[TimerKey, float], None],
                 together: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext) -> None:
        self.clock = clock
        self.fire = fire
        self.together = together
        self.armed: dict[TimerKey, float] = {}
        self._heap: list[tuple[float, int, TimerKey]] = []
        self._seq = itertools.count()
        self._wakeup: Wakeup | None = None
        self._wake_for: float | None = None
        self._open = False

    def open(self) -> None:
        """Start waking (timers armed before are kept)."""
        self._open = True
        self._reschedule()

    def close(self) -> None:
        self._open = False
        if self._wakeup is not None:
            self._wakeup.cancel()
        self._wakeup = self._wake_for = None

    def arm(self, key: TimerKey, at: float) -> None:
        self.armed[key] = at
        heapq.heappush(self._heap, (at, next(self._seq), key))
        if len(self._heap) > 2 * len(self.armed) + 64:
            self._heap = [(a, s, k) for a, s, k in self._heap if self.armed.get(k) == a]
            heapq.heapify(self._heap)
        self._reschedule()

    def cancel(self, key: TimerKey) -> None:
        self.armed.pop(key, None)

    def next_deadline(self) -> float | None:
        while self._heap and self.armed.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def _reschedule(self) -> None:
        if not self._open:
            return
        nxt = self.next_deadline()
        if nxt == self._wake_for:
            return
        if self._wakeup is not None:
            self._wakeup.cancel()
        self._wake_for = nxt
        self._wakeup = None if nxt is None else self.clock.wake_at(nxt, self._due)

    def fire_due(self) -> bool:
        """Fire every timer already due, in deadline order, now (not at the loop's next
        wake-up); True if any was. The supervisor calls it when a drain has stepped what was
        queued, so a timer armed already due is stepped after the events queued before it."""
        if not self._open:
            return False
        nxt = self.next_deadline()
        if nxt is None or nxt > self.clock.now() + _EPSILON:
            return False
        self._fire()
        return True

    def _due(self) -> None:
        self._wakeup = self._wake_for = None
        self._fire()

    def _fire(self) -> None:
        now = self.clock.now()
        with self.together():
            while True:
                nxt = self.next_deadline()
                if nxt is None or nxt > now + _EPSILON:
                    break
                at, _, key = heapq.heappop(self._heap)
                del self.armed[key]
                self.fire(key, at)
        self._reschedule()
