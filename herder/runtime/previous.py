"""Instances a previous herder left alive (it was killed) must not run twice.

What is left is found by herder.store.runstate.leftovers, which counts only processes
proven herder's (a run.json record whose start time *and* cookie match, herder's own
cgroup subtree for this state_dir, processes carrying this state_dir's cookie tag): a
missing, corrupt or forged run.json never means "nothing is running" and never names a
stranger. Those are stopped, SIGTERM then SIGKILL after the longest stop_timeout, before
anything starts. The wait runs in a worker thread: psutil's wait_procs polls, and the
loop must not. Adopting them instead is issue 12's work.
"""

from __future__ import annotations

import asyncio

from herder.config import Config
from herder.process import tree
from herder.process.cgroup import Cgroups
from herder.runtime.events import Event, EventBus
from herder.store import runstate


async def stop_left_running(config: Config, events: EventBus) -> Event | None:
    """Stop what a previous herder left running; the event that says so (alerts replay it:
    they start later), or None."""
    found = Cgroups.root_for(config.state_dir)
    left = runstate.leftovers(config.state_dir, found[1] if found else None)
    for problem in left.problems:
        events.emit("", "state_problem", f"herder: {problem}", {"file": "run.json"})
    if left.ignored:
        events.emit("", "supervisor", "herder: run.json names processes that are not herder's; left alone: "
                    + ", ".join(left.ignored))
    if not left.pids:
        return None
    ev = events.emit("", "supervisor", f"herder: {len(left.pids)} instance(s) left running by a previous herder "
                     f"(pid {left.old_pid}): {', '.join(sorted(left.pids))}; stopping them before starting",
                     {"left_running": sorted(left.pids), "previous_pid": left.old_pid})
    timeout = max((s.stop_timeout for s in config.services.values()), default=10.0)
    await asyncio.to_thread(tree.stop_all, left.all_pids(), timeout)
    return ev
