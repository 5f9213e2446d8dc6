"""The spawn-time side of limits: cgroup limits placed before exec, the OOM reason at exit.

herder.health.cgroup_limits knows how to make and read the cgroups; this adapter plugs
it into the supervisor's spawn (`prepare`: the child joins its limit cgroups before exec,
and a limit that cannot be enforced is reported once per instance) and reap
(`exit_reason`: "oom" when the instance's OOM-kill count grew during the run). It also
keeps the watchdog variables of herder's own manager out of children that have no
watchdog of their own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from herder.core.world import World
from herder.health.cgroup_limits import LimitCgroups, Placement
from herder.process import spawn as spawner
from herder.process.cgroup import Cgroups
from herder.runtime.events import EventBus

_WATCHDOG_ENV = ("WATCHDOG_USEC", "WATCHDOG_PID")


class Limits:
    def __init__(self, state_dir: Path, world: World, events: EventBus) -> None:
        self.state_dir = state_dir
        self.world = world
        self.events = events
        self.cgroups: Cgroups | None = None     # the supervisor's v2 subtree, when it has one
        self.placements: dict[str, Placement] = {}
        self.oom_base: dict[str, int] = {}
        self._limits: LimitCgroups | None = None
        self._warned: set[tuple[str, str]] = set()

    async def __aenter__(self) -> Limits:
        self._limits = LimitCgroups(self.state_dir)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._limits is not None:
            self._limits.remove()

    def prepare(self, name: str, launch: spawner.Launch) -> spawner.Launch:
        inst = self.world.instances[name]
        spec = inst.spec
        if not spec.health.watchdog:
            for key in _WATCHDOG_ENV:   # herder's own (from its systemd unit) must not leak
                launch.env.pop(key, None)
        launch.env.pop("WATCHDOG_PID", None)
        if (spec.limits.memory is None and spec.limits.cpu is None) or self._limits is None:
            return launch
        v2 = None
        if self.cgroups is not None and spec.kill == "tree":
            v2 = self.cgroups.for_instance(name).path
        place = self._limits.place(name, spec.limits, v2)
        self.placements[name] = place
        self.oom_base[name] = place.oom_kills()
        for what in place.missing:
            if (name, what) not in self._warned:
                self._warned.add((name, what))
                self.events.emit(name, "limit_warning",
                                 f"{name}: limits.{what} is NOT enforced: no usable {what} cgroup controller "
                                 "(needs root and cgroup v2 with the controller, or a v1 hierarchy)", {"limit": what})
        return dataclasses.replace(launch, cgroup_files=tuple(place.join))

    def exit_reason(self, name: str) -> str:
        place = self.placements.get(name)
        if place is None or place.memory_dir is None:
            return ""
        kills = place.oom_kills()
        if kills > self.oom_base.get(name, 0):
            self.oom_base[name] = kills
            return "oom"
        return ""

    def forget(self, name: str) -> None:
        self.placements.pop(name, None)
        self.oom_base.pop(name, None)
