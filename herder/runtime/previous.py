"""Instances a previous herder left alive (it was killed) must not run twice.

`run.json` names them with their pid, start time, cgroup and cookie; those still alive
(the start time tells a recycled pid) are stopped, SIGTERM then SIGKILL after the longest
stop_timeout, before anything starts. The wait runs in a worker thread: psutil's
wait_procs polls, and the loop must not. Adopting them instead is issue 12's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from herder.config import Config
from herder.process import tree
from herder.process.cgroup import Cgroup
from herder.runtime.events import Event, EventBus
from herder.store import runstate


async def stop_left_running(config: Config, events: EventBus) -> Event | None:
    """Stop what a previous herder left running; the event that says so (alerts replay it:
    they start later), or None."""
    old_pid, records = runstate.read(config.state_dir / "run.json")
    alive = {n: r for n, r in records.items() if runstate.still_alive(r)}
    if not alive:
        return None
    ev = events.emit("", "supervisor", f"herder: {len(alive)} instance(s) left running by a previous herder "
                     f"(pid {old_pid}): {', '.join(sorted(alive))}; stopping them before starting",
                     {"left_running": sorted(alive), "previous_pid": old_pid})
    pids: set[int] = set()
    for rec in alive.values():
        cg = Cgroup(Path(rec.cgroup)) if rec.cgroup and Path(rec.cgroup).is_dir() else None
        pids |= set(cg.procs()) if cg else tree.members(rec.pid, rec.pid, rec.cookie)
    tree.kill_all(pids, signal.SIGTERM)
    timeout = max((s.stop_timeout for s in config.services.values()), default=10.0)
    await asyncio.to_thread(_wait_then_kill, pids, timeout)
    return ev


def _wait_then_kill(pids: set[int], timeout: float) -> None:
    import psutil

    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    _, left = psutil.wait_procs(procs, timeout=timeout)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(left, timeout=5)
