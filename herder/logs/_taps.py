"""What the log hub hands out and takes in: a spawn's outputs, live consumers of lines.

`Outputs` is a child's stdout and stderr for one spawn; `LineWatch` is ready.log for one
run (matched in the writer thread, answered on the loop); a `Tap` is a live consumer of
records (a follower of `herder logs -f`, the foreground console), offered records in the
writer thread and never allowed to block it.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from herder.logs._framing import Record

if TYPE_CHECKING:   # the keeper imports Tap, and never asyncio
    import asyncio

FOLLOW_BACKLOG = 10000   # records a slow follower may lag before lines are skipped


class Closer(Protocol):
    def close(self) -> None: ...


class _Fd:
    """A write end given to the child; closed in the parent right after the spawn."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        import os
        os.close(self.fd)


@dataclass
class Outputs:
    """What a child's stdout and stderr are (an fd, subprocess.DEVNULL or None = inherit),
    and what the parent closes right after the spawn."""

    stdout: int | None
    stderr: int | None
    close: list[Closer] = field(default_factory=list)
    channels: list[Any] = field(default_factory=list)     # the pump's channels reading them

    def close_all(self) -> None:
        for c in self.close:
            c.close()


class LineWatch:
    """ready.log for one run: the first line of the run's output matching `pattern` is
    handed to `on_match` (on the loop), once."""

    def __init__(self, pattern: str, on_match: Callable[[str], None]) -> None:
        self.pattern = re.compile(pattern)
        self.on_match = on_match
        self.done = False


class Tap:
    """A live consumer of records (a follower or the console). offer() runs in the writer thread."""

    def __init__(self, names: set[str] | None) -> None:
        self.names = names
        self.skipped = 0

    def wants(self, instance: str) -> bool:
        return self.names is None or instance in self.names

    def offer(self, records: list[Record]) -> None:
        raise NotImplementedError


class FollowTap(Tap):
    """Hands records to an asyncio consumer; lines beyond FOLLOW_BACKLOG are skipped and counted."""

    def __init__(self, names: set[str] | None, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(names)
        self.loop = loop
        import asyncio

        self.buf: list[Record] = []
        self.lock = threading.Lock()
        self.ready = asyncio.Event()
        self._flagged = False

    def offer(self, records: list[Record]) -> None:
        with self.lock:
            room = FOLLOW_BACKLOG - len(self.buf)
            if room < len(records):
                self.skipped += len(records) - max(room, 0)
                records = records[:max(room, 0)]
            self.buf.extend(records)
            flag = not self._flagged
            self._flagged = True
        if flag:
            with contextlib.suppress(RuntimeError):  # loop closed
                self.loop.call_soon_threadsafe(self.ready.set)

    def take(self) -> list[Record]:
        with self.lock:
            out, self.buf = self.buf, []
            self._flagged = False
            self.ready.clear()
        return out
