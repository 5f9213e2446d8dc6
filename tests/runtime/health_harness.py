"""Running a real Supervisor with the health component, synchronised on its events.

`async with running(tmp_path, toml) as h:` starts the supervisor (no signal handlers) in
a task; `await h.wait(pred)` returns the first event (from the start) matching pred, or
fails after a generous deadline (herder.testing.harness.Running underneath); leaving the
block does `down` and waits for the run to end, so no test leaves a process behind.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from herder.config import load
from herder.runtime.events import Event
from herder.runtime.supervisor import Supervisor
from herder.testing.clock import FakeClock
from herder.testing.clock import run as herder_run
from herder.testing.harness import Running, settle

PROGRAMS = Path(__file__).resolve().parent.parent / "programs"
PY = sys.executable
DEADLINE = 30.0
NL = "\\n"   # notifier.py turns a backslash-n in an argument into a newline


def prog(name: str, *args: str) -> str:
    """A TOML argv for a test program."""
    items = [PY, str(PROGRAMS / name), *args]
    return "[" + ", ".join(_q(a) for a in items) + "]"


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Handle(Running):
    """herder.testing's Running, with shorter names."""

    async def wait(self, pred: Callable[[Event], bool], timeout: float = DEADLINE, start: int = 0) -> Event:
        return await self.wait_for(pred, timeout, start)

    async def reach(self, name: str, state: str, timeout: float = DEADLINE, start: int = 0) -> Event:
        """The first state event (from `start`) that moves `name` to `state`."""
        return await self.wait(lambda e: e.instance == name and e.kind == "state" and e.data.get("to") == state,
                               timeout, start)


@asynccontextmanager
async def running(tmp_path: Path, toml: str, only: list[str] | None = None,
                  clock: FakeClock | None = None) -> AsyncIterator[Handle]:
    """A supervisor for `toml`; with `clock`, its deadlines run on that (virtual) clock."""
    path = tmp_path / "herder.toml"
    path.write_text(f'[herder]\nstate_dir = "{tmp_path / "st"}"\n' + toml)
    sup = Supervisor(load(path), clock=clock)
    h = Handle(sup)
    task = asyncio.create_task(sup.run(only, install_signals=False))
    try:
        await h.wait(lambda e: e.kind == "supervisor" and "supervising" in e.message)
        yield h
    finally:
        settle(sup)
        if not task.done():
            sup.request_down()
        async with asyncio.timeout(DEADLINE):
            await task


def run(coro_fn: Callable[[], Coroutine[Any, Any, None]], clock: FakeClock | None = None) -> None:
    """Run the test's main(); with a clock, on a loop that jumps it when idle."""
    herder_run(coro_fn(), clock)
