"""Log counters in shared memory: written by the keeper, read by the decision process.

Why shared memory and not messages: `herder status` asks for every instance's byte
counts synchronously, and under a flood they change thousands of times a second; a
message per change would cost more than the logging itself. And when the keeper is
killed, the decision process still holds the mapping, so it can tell how many bytes the
dead keeper had read from a pipe but not yet written to a file (`read - done`): those
are reported as possibly lost, never silently forgotten.

Layout: an array of int64 in a memfd, in slots of four. An instance slot holds
[read, done, dropped, carried] for all its streams (carried: bytes of unfinished lines the
framer holds back, done but not yet in the file; lost with a killed keeper too); a sink (log file) slot holds [written,
unwritten, 0, 0]; the keeper's own slot holds [orphans reaped, 0, 0, 0]. Slots are
handed out by the keeper (one per instance name and one per file path, for the keeper's
life; both sets are bounded by the config) and named to the
decision process in each spawn's answer. 8-byte aligned stores are single writes on
every platform herder runs on, so a reader never sees a torn value.
"""

from __future__ import annotations

import mmap
import os

SLOTS = 32768          # 1 MiB; pages are only allocated when touched
WIDTH = 4
READ, DONE, DROPPED, CARRIED = 0, 1, 2, 3
WRITTEN, UNWRITTEN = 0, 1
KEEPER_SLOT, ORPHANS = "k:keeper", 0    # the keeper's own slot: [orphans reaped (not its children), 0, 0, 0]


class Counters:
    def __init__(self, fd: int | None = None, writable: bool = True) -> None:
        if fd is None:
            if hasattr(os, "memfd_create"):
                fd = os.memfd_create("herder-counters", os.MFD_CLOEXEC)
            else:       # macOS: an unlinked temporary file is the same shared page
                import tempfile

                with tempfile.TemporaryFile() as f:
                    fd = os.dup(f.fileno())
            os.ftruncate(fd, SLOTS * WIDTH * 8)
        self.fd = fd
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        self._map = mmap.mmap(fd, SLOTS * WIDTH * 8, mmap.MAP_SHARED, prot)
        self.cells = memoryview(self._map).cast("q")
        self.slots: dict[str, int] = {}     # "i:NAME" / "s:PATH" -> slot (the keeper's allocation)

    def slot(self, key: str) -> int:
        """The slot of an instance ("i:web.0") or a sink ("s:/path/web.log"), allotted once."""
        got = self.slots.get(key)
        if got is None:
            got = len(self.slots)
            if got >= SLOTS:
                return SLOTS - 1    # past the capacity, counts pool in the last slot (never crashes)
            self.slots[key] = got
        return got

    def add(self, slot: int, field: int, n: int) -> None:
        self.cells[slot * WIDTH + field] += n

    def set(self, slot: int, field: int, n: int) -> None:
        self.cells[slot * WIDTH + field] = n

    def get(self, slot: int, field: int) -> int:
        return int(self.cells[slot * WIDTH + field])

    def close(self) -> None:
        self.cells.release()
        self._map.close()
        os.close(self.fd)
