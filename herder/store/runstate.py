"""`{state_dir}/run.json`: every live instance's pid, start time, cgroup and cookie.

Written atomically whenever the set of live processes changes, off the loop and
coalesced (at most one write in flight; a change during a write triggers one more).
The start time (from /proc) means a recycled pid is never mistaken for our instance.
Used at start-up to find instances a previous herder left running.
"""

from __future__ import annotations

import asyncio
import os
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
            out[name] = LiveRecord(int(rec["pid"]), rec.get("start_time"), rec.get("cgroup"), str(rec.get("cookie", "")))
        except (KeyError, TypeError, ValueError):
            continue
    return raw.get("supervisor_pid"), out


def still_alive(rec: LiveRecord) -> bool:
    """True when rec.pid is alive and is the same process (same start time)."""
    st = start_time(rec.pid)
    return st is not None and (rec.start_time is None or st == rec.start_time)


class RunStateWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._snapshot: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None

    def update(self, instances: dict[str, LiveRecord]) -> None:
        self._snapshot = {"supervisor_pid": os.getpid(), "instances": {n: asdict(r) for n, r in instances.items()}}
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._snapshot is not None:
            snap, self._snapshot = self._snapshot, None
            await asyncio.to_thread(write_json, self.path, snap)

    async def close(self, final: dict[str, LiveRecord]) -> None:
        if self._task is not None:
            await self._task
        write_json(self.path, {"supervisor_pid": None, "instances": {n: asdict(r) for n, r in final.items()}})
