"""Run a real Supervisor in the current process and wait on its events, never on sleeps.

    async with run_supervisor(load(path)) as r:
        await r.wait_state("web", "running")
        ev = await r.wait_for(lambda e: e.kind == "exit" and e.instance == "web")

With `clock=FakeClock(autojump=True)` (and the loop from herder.testing.run(main, clock))
every deadline of the supervisor runs on virtual time: see herder.testing.clock for
what a test may then rely on. Every wait has a real-time deadline and fails with the
events seen so far, so a broken test says why. Note: the supervisor reaps every child of
this process (waitpid(-1)); do not run subprocess.run() in the same process while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from herder.config import Config
from herder.runtime.events import Event
from herder.runtime.supervisor import Supervisor
from herder.testing.clock import FakeClock


class Running:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.events: list[Event] = []
        self.at: list[float] = []        # the supervisor's clock (virtual with a FakeClock) at each event
        self.exit_code: int | None = None
        self._changed = asyncio.Event()
        sup.events.subscribe(self._record)

    def _record(self, ev: Event) -> None:
        self.events.append(ev)
        self.at.append(self.sup.clock.now())
        self._changed.set()

    def mark(self) -> int:
        """Index to pass as `since` so only later events count."""
        return len(self.events)

    async def wait_for(self, pred: Callable[[Event], bool], timeout: float = 15.0, since: int = 0) -> Event:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = since
        while True:
            for ev in self.events[seen:]:
                if pred(ev):
                    return ev
            seen = len(self.events)
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                tail = "\n".join(f"  {e.instance or '-'} {e.kind}: {e.message}" for e in self.events[-25:])
                raise TimeoutError(f"no matching event within {timeout}s; last events:\n{tail}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._changed.wait()

    async def wait_state(self, name: str, state: str, timeout: float = 15.0, since: int | None = None) -> Event | None:
        if since is None and self.sup.instances[name].state.value == state:
            return None
        return await self.wait_for(lambda e: e.instance == name and e.kind == "state" and e.data.get("to") == state,
                                   timeout, since or 0)

    def find(self, pred: Callable[[Event], bool], since: int = 0) -> Event | None:
        return next((e for e in self.events[since:] if pred(e)), None)

    def state(self, name: str) -> str:
        return self.sup.instances[name].state.value

    def pid(self, name: str) -> int | None:
        return self.sup.instances[name].pid

    def kinds(self, name: str | None = None) -> list[tuple[str, str]]:
        return [(e.instance, e.kind) for e in self.events if name is None or e.instance == name]


@contextlib.asynccontextmanager
async def run_supervisor(config: Config, only: Iterable[str] | None = None, **kwargs: Any) -> AsyncIterator[Running]:
    """A supervisor (no signal handlers of its own) running in a task; `down` on the way out."""
    sup = Supervisor(config, **kwargs)
    running = Running(sup)
    started = asyncio.Event()
    task = asyncio.get_running_loop().create_task(sup.run(only, install_signals=False, ready=started.set))
    waiter = asyncio.get_running_loop().create_task(started.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()  # raises the start-up error
    try:
        yield running
    finally:
        settle(sup)
        sup.request_down()
        async with asyncio.timeout(60):
            running.exit_code = await task


def settle(sup: Supervisor) -> None:
    """On the way out of a test: let a FakeClock moved by hand jump from now on, so `down`
    cannot hang on a stop timeout that nobody would advance."""
    if isinstance(sup.clock, FakeClock):
        sup.clock.autojump = True
