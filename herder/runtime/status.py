"""Status records and summaries of the instances, read from the core's World.

`records` is the `status --json` shape of interface.md (one record per instance);
`summary` is herder's one-line STATUS= to its own service manager. Pure reads: the
monotonic times of the World are turned into wall-clock stamps for display only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from herder.core.instance import Instance
from herder.core.world import World
from herder.units import stamp_ms


def record(inst: Instance, now: float, wall: float) -> dict[str, Any]:
    health: str | None
    if inst.healthy is not None:
        health = "healthy" if inst.healthy else "unhealthy"
    else:
        health = "unknown" if inst.spec.health.kind and inst.pid else None
    ex = inst.last_exit
    return {
        "name": inst.name, "service": inst.service, "state": inst.state.value, "pid": inst.pid,
        "since": stamp_ms(wall - (now - inst.since)) + "Z",
        "uptime": round(now - inst.started_at, 3) if inst.started_at is not None else None,
        "min_uptime": inst.spec.min_uptime,
        "restarts": inst.restarts,
        "exit": (ex.signal or ex.code) if ex else None,
        "health": health,
        "status": inst.status, "reason": inst.reason, "want": "up" if inst.want_up else "down",
        "hook": inst.hook.value if inst.hook is not None else None,
    }


def records(world: World, now: float, names: Iterable[str] | None = None,
            extra: Callable[[Instance], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    wall = time.time()
    out = []
    for name in (world.resolve(names) if names else list(world.instances)):
        inst = world.instances[name]
        rec = record(inst, now, wall)
        if extra is not None:
            rec.update(extra(inst))
        out.append(rec)
    return out


def summary(world: World, shutting_down: bool) -> str:
    """One line: '3/4 running, 1 failed' (counts of every state present, running first)."""
    counts: dict[str, int] = {}
    for inst in world.instances.values():
        counts[inst.state.value] = counts.get(inst.state.value, 0) + 1
    parts = [f"{counts.pop('running', 0)}/{len(world.instances)} running"]
    parts += [f"{n} {state}" for state, n in sorted(counts.items()) if state != "stopped" or shutting_down]
    return ", ".join(parts)


def state_counts(world: World) -> dict[str, int]:
    counts: dict[str, int] = {}
    for inst in world.instances.values():
        counts[inst.state.value] = counts.get(inst.state.value, 0) + 1
    return counts
