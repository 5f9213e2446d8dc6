"""The foreground view: every service's lines on the terminal as `name | line` (compose style).

Why a thread with a bounded backlog: a terminal can be slower than a flood (or paused with
Ctrl+S); the files and the children must not wait for it. Past the backlog, lines are
skipped on the terminal only, and the gap is announced; the files still have everything.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from typing import IO

from herder.logs._framing import Record
from herder.logs._taps import Tap
from herder.logs._worker import worker

_COLOURS = (36, 33, 32, 35, 34, 91, 92, 93, 94, 95, 96)
BACKLOG = 5000


class ConsoleTap(Tap):
    def __init__(self, names: list[str], out: IO[bytes] | None = None, colour: bool | None = None) -> None:
        super().__init__(None)
        self.out = out if out is not None else sys.stdout.buffer
        tty = self.out.isatty() and not os.environ.get("NO_COLOR")
        self.colour = tty if colour is None else colour
        self.width = 0
        self.prefix: dict[str, bytes] = {}
        self.set_names(names)
        self.q: deque[Record] = deque()
        self.cv = threading.Condition()
        self._stop = False
        self.thread = worker(self._run, "herder-console")
        self.thread.start()

    def set_names(self, names: list[str]) -> None:
        """The instances whose lines are shown (their width and colours)."""
        self.width = max((len(n) for n in names), default=0)
        prefix = {}
        for i, n in enumerate(names):
            label = n.ljust(self.width) + " | "
            c = _COLOURS[i % len(_COLOURS)]
            prefix[n] = (f"\x1b[{c}m{label}\x1b[0m" if self.colour else label).encode()
        self.prefix = prefix

    def offer(self, records: list[Record]) -> None:
        with self.cv:
            room = BACKLOG - len(self.q)
            if room < len(records):
                self.skipped += len(records) - max(room, 0)
                records = records[:max(room, 0)]
            self.q.extend(records)
            self.cv.notify()

    def _run(self) -> None:
        while True:
            with self.cv:
                while not self.q and not self._stop:
                    self.cv.wait()
                if not self.q and self._stop:
                    return
                batch = list(self.q)
                self.q.clear()
                skipped, self.skipped = self.skipped, 0
            out = []
            if skipped:
                note = f"herder | [terminal too slow: {skipped} lines not shown here; they are in the files]\n"
                out.append(note.encode())
            for r in batch:
                p = self.prefix.get(r.instance) or (r.instance.ljust(self.width) + " | ").encode()
                out.append(p + r.line + b"\n")
            try:
                self.out.write(b"".join(out))
                self.out.flush()
            except (OSError, ValueError):
                return

    def close(self) -> None:
        with self.cv:
            self._stop = True
            self.cv.notify()
        self.thread.join(timeout=5)
