"""In-memory tails: the last lines of every instance, for `herder logs`, `-f` and exit events.

Bounded by bytes and by count per instance, so a flood or a 30 KB line cannot grow
herder's memory; older lines are in the files.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable

from herder.logs._framing import Record

RING_BYTES = 64 * 1024
RING_LINES = 500


class Ring:
    """One instance's recent lines, oldest first (written by the writer thread only)."""

    def __init__(self, max_bytes: int = RING_BYTES, max_lines: int = RING_LINES) -> None:
        self.lines: deque[Record] = deque()
        self.size = 0
        self.max_bytes, self.max_lines = max_bytes, max_lines

    def extend(self, records: Iterable[Record]) -> None:
        for r in records:
            self.lines.append(r)
            self.size += len(r.line)
        while self.lines and (self.size > self.max_bytes or len(self.lines) > self.max_lines):
            self.size -= len(self.lines.popleft().line)

    def tail(self, n: int) -> list[Record]:
        if n <= 0:
            return []
        return list(self.lines)[-n:]


def merge_tails(rings: Iterable[Ring], n: int) -> list[Record]:
    """The last n records of each instance (docs/logs.md: n is per instance), in time order
    (ties keep instance order)."""
    return list(heapq.merge(*(r.tail(n) for r in rings), key=lambda r: r.ts)) if n > 0 else []
