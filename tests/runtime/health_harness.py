"""Running a real Supervisor with the health component, synchronised on its events.

`async with running(tmp_path, toml) as h:` starts the supervisor (no signal handlers) in
a task; `await h.wait(pred)` returns the first event (from the start) matching pred, or
fails after a generous deadline; leaving the block does `down` and waits for the run to
end, so no test leaves a process behind.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from herder.config import load
from herder.health import Health, install
from herder.runtime.events import Event
from herder.runtime.supervisor import Supervisor

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


class Handle:
    def __init__(self, sup: Supervisor, health: Health) -> None:
        self.sup = sup
        self.health = health
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        sup.events.subscribe(self._on)

    def _on(self, ev: Event) -> None:
        self.events.append(ev)
        self._changed.set()

    def find(self, pred: Callable[[Event], bool], start: int = 0) -> Event | None:
        return next((e for e in self.events[start:] if pred(e)), None)

    async def wait(self, pred: Callable[[Event], bool], timeout: float = DEADLINE, start: int = 0) -> Event:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.find(pred, start)
            if found is not None:
                return found
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                tail = "\n".join(f"  {e.instance} {e.kind}: {e.message}" for e in self.events[-25:])
                raise AssertionError(f"no matching event within {timeout:g}s; last events:\n{tail}")
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def state(self, name: str, state: str, timeout: float = DEADLINE, start: int = 0) -> Event:
        return await self.wait(lambda e: e.instance == name and e.kind == "state" and e.data.get("to") == state,
                               timeout, start)

    def kinds(self, name: str) -> list[str]:
        return [e.kind for e in self.events if e.instance == name]


@asynccontextmanager
async def running(tmp_path: Path, toml: str, only: list[str] | None = None) -> AsyncIterator[Handle]:
    path = tmp_path / "herder.toml"
    path.write_text(f'[herder]\nstate_dir = "{tmp_path / "st"}"\n' + toml)
    sup = Supervisor(load(path))
    health = install(sup)
    h = Handle(sup, health)
    task = asyncio.create_task(sup.run(only, install_signals=False))
    try:
        await h.wait(lambda e: e.kind == "supervisor" and "supervising" in e.message)
        yield h
    finally:
        if not task.done():
            sup.request_down()
        async with asyncio.timeout(DEADLINE):
            await task


def run(coro_fn: Callable[[], object]) -> None:
    asyncio.run(coro_fn())  # type: ignore[arg-type]
