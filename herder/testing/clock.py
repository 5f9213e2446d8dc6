"""A clock that only moves when told to, or (autojump) whenever the loop has nothing to do.

    clock = FakeClock(autojump=True)
    herder.testing.run(main(), clock)        # main() may run a real Supervisor(clock=clock)

Manual: `advance(seconds)` moves the time and runs the wake-ups that fall due, in order.
A supervisor's timer armed already due (a restart's 0 s backoff) needs no `advance()`:
it is stepped in the drain that armed it (herder.runtime.timers.Timers.fire_due).

The wall clock (`wall()`, what schedules follow) moves with it: it reads `wall` (default
2025-01-01T00:00:00Z) at `start`; `step_wall(seconds)` steps it alone, as NTP or a resume
from suspend would.

Autojump, in the spirit of trio's MockClock(autojump_threshold=0): the event loop made by
`loop_factory()` checks, each time it would block, whether anything is ready right now
(an fd, a callback); if not and a wake-up is pending on this clock, the clock jumps to
the earliest one and the loop goes on at once. A stop timeout of 10 s, a backoff of
30 s, a probe interval of a minute then cost microseconds, with real child processes.
The runtime marks what is already on its way (an exited child's last output, see
herder.runtime.clock.Clock.busy); the clock does not jump over that.

What it means for a test: every deadline the supervisor armed fires as soon as the loop
would otherwise wait for the outside world. A test must therefore not depend on a real
event (a child's exit after SIGTERM, a line of output) beating a deadline: make the
child ignore SIGTERM when the test is about the stop timeout, set ready.timeout to 0
(wait for ever) when the test is about something slower than a jump, and so on. Only
the injected clock is virtual: the loop's own time (asyncio.timeout, asyncio.sleep) stays
real, so the waits of a test keep real deadlines.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import selectors
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike


class _Wakeup:
    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


WALL_START = 1_735_689_600.0    # 2025-01-01T00:00:00Z


class FakeClock:
    def __init__(self, start: float = 1000.0, *, autojump: bool = False, wall: float = WALL_START) -> None:
        self._now = start
        self._wall_offset = wall - start
        self.autojump = autojump
        self._wakeups: list[tuple[float, int, _Wakeup]] = []
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = 0        # answers on their way (herder.runtime.clock.Clock.busy): no jump meanwhile

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def step_wall(self, seconds: float) -> None:
        """The wall clock alone jumps (forward or back); the monotonic time does not."""
        self._wall_offset += seconds

    def advance(self, seconds: float) -> float:
        """Move the time forward, running every wake-up that falls due, in deadline order."""
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        end = self._now + seconds
        while self._wakeups and self._wakeups[0][0] <= end:
            deadline, _, w = heapq.heappop(self._wakeups)
            if w.cancelled:
                continue
            self._now = max(self._now, deadline)
            w.callback()
        self._now = end
        return self._now

    def wake_at(self, deadline: float, callback: Callable[[], None]) -> _Wakeup:
        w = _Wakeup(deadline, callback)
        heapq.heappush(self._wakeups, (deadline, next(self._seq), w))
        return w

    def busy(self) -> Callable[[], None]:
        self._busy += 1
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                self._busy -= 1

        return release

    def pending(self) -> float | None:
        """The earliest live wake-up, if any."""
        while self._wakeups and self._wakeups[0][2].cancelled:
            heapq.heappop(self._wakeups)
        return self._wakeups[0][0] if self._wakeups else None

    def jump(self) -> bool:
        """Autojump: move to the earliest wake-up and queue every due callback on the loop."""
        nxt = self.pending()
        if nxt is None or self._loop is None or self._busy:
            return False
        self._now = max(self._now, nxt)
        while self._wakeups and self._wakeups[0][0] <= self._now:
            _, _, w = heapq.heappop(self._wakeups)
            if not w.cancelled:
                self._loop.call_soon(w.callback)
        return True

    def loop_factory(self) -> asyncio.AbstractEventLoop:
        """A new event loop that jumps this clock whenever it would otherwise block."""
        loop = asyncio.SelectorEventLoop(_JumpSelector(self))
        self._loop = loop
        return loop


class _JumpSelector(selectors.BaseSelector):
    """The loop's selector (the platform's, wrapped): before blocking, poll; when nothing is
    ready, let the clock jump instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self._inner = selectors.DefaultSelector()
        self._clock = clock

    def register(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if not self._clock.autojump or (timeout is not None and timeout <= 0):
            return self._inner.select(timeout)
        ready = self._inner.select(0)
        if ready or self._clock.jump():
            return ready
        return self._inner.select(timeout)

    def close(self) -> None:
        self._inner.close()

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._inner.get_map()


T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], clock: FakeClock | None = None) -> T:
    """asyncio.run(main), on a loop driven by `clock` when one is given."""
    with asyncio.Runner(loop_factory=clock.loop_factory if clock is not None else None) as runner:
        return runner.run(main)
