"""`{state_dir}/run.json`: every live instance's pid, start time, cgroup and cookie.

Written atomically whenever the set of live processes changes, off the loop and
coalesced (at most one write in flight; a change during a write triggers one more).
The start time (from /proc) means a recycled pid is never mistaken for our instance.
Used at start-up to find instances a previous herder left running. The write happens
within milliseconds of a spawn, not before the child runs: a herder killed in that window
does not know the newest child (fsync on the loop would cost every restart 1–5 ms).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from herder.process.tree import start_time
from herder.store.atomic import read_json, write_json


@dataclass(frozen=True)
class LiveRecord:
    pid: int
    start_time: int | None
    cgroup: str | None
    cookie: str


def read(path: Path) -> tuple[int | None, dict[str, LiveRecord]]:
    raw = read_json(path)
    if not isinstance(raw, dict):
        return None, {}
    out = {}
    for name, rec in (raw.get("instances") or {}).items():
        try:
            out[name] = LiveRecord(int(rec["pid"]), rec.get("start_time"), rec.get("cgroup"),
                                   str(rec.get("cookie", "")))
        except (KeyError, TypeError, ValueError):
            continue
    return raw.get("supervisor_pid"), out


def still_alive(rec: LiveRecord) -> bool:
    """True when rec.pid is alive and is the same process (same start time)."""
    st = start_time(rec.pid)
    return st is not None and (rec.start_time is None or st == rec.start_time)


class RunStateWriter:
    """Coalescing writer: `changed()` is cheap; the snapshot is taken once per actual write."""

    def __init__(self, path: Path, snapshot: Callable[[], dict[str, LiveRecord]]) -> None:
        self.path = path
        self._snapshot = snapshot
        self._dirty = False
        self._task: asyncio.Task[None] | None = None

    def changed(self) -> None:
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    def _doc(self, records: dict[str, LiveRecord], pid: int | None) -> dict[str, Any]:
        return {"supervisor_pid": pid, "instances": {n: asdict(r) for n, r in records.items()}}

    async def _flush(self) -> None:
        while self._dirty:
            self._dirty = False
            await asyncio.to_thread(write_json, self.path, self._doc(self._snapshot(), os.getpid()))

    async def close(self) -> None:
        if self._task is not None:
            await self._task
        write_json(self.path, self._doc(self._snapshot(), None))
