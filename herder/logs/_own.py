"""herder's own log: every supervisor event as one JSON object per line in {state_dir}/herder.log.

Structured so it can be searched (`jq 'select(.kind=="exit")'`), written by the log
writer thread (never the loop) and rotated like service logs. Should herder's stdout or
stderr be this very file (an operator's redirection; `up -d` uses herder.out), those fds
follow each rotation (`RotatingFile.shared_fds`), so nothing grows a file rotated away.

Bounded (issue 13): errors and warnings that repeat identically are let through a few at
a time and then counted (herder.logs.repeats), and errors the event loop itself reports
(an accept() failing for want of file descriptors, a callback that raised) become
`loop_error` events under the same limit, instead of a traceback on stderr per attempt.
The file is 0640: it carries the services' last stderr lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import traceback
from typing import Any

from herder.config.model import Logs
from herder.logs._files import RotatingFile
from herder.logs._framing import rfc3339
from herder.logs._hub import LogHub
from herder.logs.repeats import Repeats, summary
from herder.runtime.events import LIVE_ONLY, Event, EventBus

_LEVELS = {"exit": "warning", "failed": "error", "stop_timeout": "warning", "spawn_failed": "error", "bug": "error",
           "log_disk_full": "error", "log_write_error": "error", "log_dropped": "warning",
           "state_problem": "error", "journal_error": "error", "loop_error": "error", "api_error": "error"}


def _shares_file(fd: int, file_fd: int) -> bool:
    try:
        a, b = os.fstat(fd), os.fstat(file_fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class OwnLog:
    """Subscribe to the event bus and append each event to herder.log through the hub's writer."""

    def __init__(self, hub: LogHub, settings: Logs | None = None) -> None:
        s = settings or Logs()
        self.hub = hub
        self.file = RotatingFile(hub.config.state_dir / "herder.log", max_size=s.max_size, max_files=s.max_files,
                                 rotate_every=s.rotate_every, compress=s.compress, clock=hub.clock,
                                 compressor=hub.compressor, label="herder", mode=0o640,
                                 dir_mode=hub.config.herder.log_dir_mode)
        if self.file.fd >= 0:      # detached: stdout/stderr are this file; they must follow its rotations
            self.file.shared_fds = tuple(fd for fd in (1, 2) if _shares_file(fd, self.file.fd))
        hub.sinks[self.file.path] = self.file
        self.repeats = Repeats()
        self._flush: asyncio.TimerHandle | None = None

    def __call__(self, ev: Event) -> None:
        if ev.kind in LIVE_ONLY:   # STATUS= texts: streamed live, never written down
            return
        level = _LEVELS.get(ev.kind, "info")
        if level != "info":
            now = self.hub.clock.now()
            allowed, closed = self.repeats.allow(f"{ev.kind}\0{ev.instance}\0{ev.message}", now)
            if closed:
                self._write({"ts": rfc3339(ev.ts), "level": level, "instance": ev.instance, "kind": "repeated",
                             "message": summary(closed, ev.message, self.repeats.window), "count": closed})
            if not allowed:
                self._arm()
                return
        self._write({"ts": rfc3339(ev.ts), "level": level, "instance": ev.instance, "kind": ev.kind,
                     "message": ev.message, **ev.data})

    def _write(self, rec: dict[str, Any]) -> None:
        line = (json.dumps(rec, default=str, ensure_ascii=False) + "\n").encode()
        self.hub.pump.in_writer(lambda: self.file.write([line]))

    def _arm(self) -> None:
        if self._flush is not None:
            return
        with contextlib.suppress(RuntimeError):    # no loop (shutting down): the count is lost with it
            self._flush = asyncio.get_running_loop().call_later(self.repeats.window, self._report_held)

    def _report_held(self) -> None:
        self._flush = None
        import time

        for key, count in self.repeats.due(self.hub.clock.now()):
            kind, instance, message = key.split("\0", 2)
            self._write({"ts": rfc3339(time.time()), "level": _LEVELS.get(kind, "error"), "instance": instance,
                         "kind": "repeated", "message": summary(count, message, self.repeats.window),
                         "count": count})
        if self.repeats._seen:
            self._arm()


class LoopErrors:
    """A supervisor component: the event loop's own error reports become `loop_error` events,
    rate-limited before they are emitted (each would otherwise be a traceback on stderr)."""

    def __init__(self, events: EventBus) -> None:
        self.events = events
        self.repeats = Repeats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._old: Any = None
        self._flush: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> LoopErrors:
        self._loop = asyncio.get_running_loop()
        self._old = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._handle)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._report_held(final=True)
        if self._loop is not None:
            self._loop.set_exception_handler(self._old)

    def _held(self, text: str, count: int) -> None:
        self.events.emit("", "loop_error", f"herder: {summary(count, text, self.repeats.window)}", {"count": count})

    def _report_held(self, final: bool = False) -> None:
        self._flush = None
        assert self._loop is not None
        now = self._loop.time() + (self.repeats.window if final else 0.0)
        for text, count in self.repeats.due(now):
            self._held(text, count)
        if self.repeats._seen and not final:
            self._flush = self._loop.call_later(self.repeats.window, self._report_held)

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message") or "event loop error")
        exc = context.get("exception")
        text = f"{message}: {exc!r}" if exc is not None else message
        allowed, closed = self.repeats.allow(text, loop.time())
        if closed:
            self._held(text, closed)
        if not allowed:
            if self._flush is None:
                self._flush = loop.call_later(self.repeats.window, self._report_held)
            return
        data: dict[str, Any] = {}
        if isinstance(exc, BaseException):
            data["traceback"] = "".join(traceback.format_exception(exc))[-4000:]
        self.events.emit("", "loop_error", f"herder: {text}", data)
