"""Services' lines on herder's own stdout and stderr: how a container's logs reach the engine.

In a container the engine's log driver reads the init's stdout and stderr (`docker logs`,
`kubectl logs`, Loki, Fluentd …), so herder, as the init, writes there every line each
service writes, one line per line: a service's stdout lines to herder's stdout, its
stderr lines to herder's stderr (the engine keeps the two streams apart), each as
`instance | line` (text, names padded like Compose does) or as one JSON object
(ts, service, instance, stream, line: what a log shipper parses without a pattern).

Why this is not the terminal view (herder.logs._console): there the files are the record
and a slow terminal may skip lines. Here stdout *is* the record, so nothing is skipped:
the write happens in the log writer thread and a slow reader holds the writer back,
which holds the pipes back, which holds the services' writes back (the same
backpressure as a slow disk with on_overflow = "block"). A reader that is gone (EPIPE)
ends this output only; files, tails and followers go on, and the loss is counted.

`console_mode` and `files_on` turn the [herder] settings `console` and `log_files` into
what one `herder up` does: their `auto` follows herder.runtime.container.
"""

from __future__ import annotations

import json
import os
import select
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from herder.logs._framing import Record, json_line, rfc3339
from herder.logs._taps import Tap

if TYPE_CHECKING:
    from herder.logs._hub import LogHub
    from herder.runtime.events import Event

_COLOURS = (36, 33, 32, 35, 34, 91, 92, 93, 94, 95, 96)


def console_mode(setting: str, flag: bool | None, container_init: bool, tty: bool) -> str:
    """"text" | "json" (this module), "view" (the terminal view) or "off".

    `setting` is [herder] console; `flag` is `herder up --console/--no-console`."""
    if flag is False:
        return "off"
    if setting in ("text", "json"):
        return setting
    if setting == "auto" and container_init:
        return "text"
    if flag is True or (flag is None and tty):
        return "view"
    return "off"


def files_on(setting: str, container_init: bool) -> bool:
    """[herder] log_files: on, off, or auto (off when herder is a container's init)."""
    return setting == "on" or (setting == "auto" and not container_init)


class StdioTap(Tap):
    """Every record, whole, to fd 1 (stdout records) or fd 2 (stderr records)."""

    def __init__(self, names: list[str], fmt: str = "text", out: int | None = None, err: int | None = None) -> None:
        super().__init__(None)
        self.json = fmt == "json"
        self.fds = {"stdout": sys.stdout.fileno() if out is None else out,
                    "stderr": sys.stderr.fileno() if err is None else err}
        names = [*names, "herder"]                 # herder's own lines (HerderLines) share the column
        self.width = max(len(n) for n in names)
        colour = {s: os.isatty(fd) and not os.environ.get("NO_COLOR") for s, fd in self.fds.items()}
        self.prefix: dict[tuple[str, str], bytes] = {}
        for i, n in enumerate(names):
            label = n.ljust(self.width) + " | "
            for stream, on in colour.items():
                c = _COLOURS[i % len(_COLOURS)]
                self.prefix[(n, stream)] = (f"\x1b[{c}m{label}\x1b[0m" if on else label).encode()
        self.broken: set[str] = set()
        self.lost = 0     # records not written: the reader of that stream is gone

    def offer(self, records: list[Record]) -> None:
        """Writer thread: write now, in order; waits while the reader is slow."""
        out: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        for r in records:
            stream = "stderr" if r.stream == "stderr" else "stdout"
            if self.json:
                out[stream].append(json_line(r.ts, r.instance.split(".")[0], r.instance, r.stream, r.line))
            else:
                p = self.prefix.get((r.instance, stream)) or (r.instance.ljust(self.width) + " | ").encode()
                out[stream].append(p + r.line + b"\n")
        for stream, parts in out.items():
            if parts:
                self._write(stream, b"".join(parts), len(parts))

    def raw(self, stream: str, data: bytes) -> None:
        """Writer thread: whole lines that are not a service's (herder's own)."""
        self._write(stream, data, data.count(b"\n"))

    def _write(self, stream: str, data: bytes, n: int) -> None:
        if stream in self.broken:
            self.lost += n
            return
        fd, view = self.fds[stream], memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:          # a non-blocking pipe that is full: wait until it drains
                select.select([], [fd], [])
            except InterruptedError:
                continue
            except OSError:                   # EPIPE, EBADF: nobody reads this stream any more
                self.broken.add(stream)
                self.lost += n
                return


class HerderLines:
    """herder's own events (spawns, exits, decisions) among the services' lines, on
    stderr: `herder | message`, or a JSON object with `kind`. Written by the log writer
    thread, like the services' lines, so that no line of one is cut by a line of the
    other; subscribed to the event bus (the loop only queues)."""

    def __init__(self, hub: LogHub, tap: StdioTap, shown: Callable[[Event], bool]) -> None:
        self.hub, self.tap, self.shown = hub, tap, shown

    def __call__(self, ev: Event) -> None:
        if not self.shown(ev):
            return
        if self.tap.json:
            rec = {"ts": rfc3339(ev.ts), "service": "herder", "instance": ev.instance, "stream": "stderr",
                   "kind": ev.kind, "line": ev.message}
            data = (json.dumps(rec, ensure_ascii=False, default=str) + "\n").encode()
        else:
            text = ev.message.removeprefix("herder: ")   # the column says it already
            data = self.tap.prefix.get(("herder", "stderr"), b"herder | ") + text.encode() + b"\n"
        self.hub.pump.in_writer(lambda: self.tap.raw("stderr", data))
