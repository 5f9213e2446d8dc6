"""The measurements the core asks for: one readiness attempt, one liveness probe, one RSS
sample. Each answer goes back to the core as an event; this module decides nothing.

Why the core and not this module schedules: the intervals (ready.interval, health.interval,
memory_check_interval), the thresholds and what a failure means are decisions, so they
live in the pure step, on the injected clock. Here a RunCheck effect becomes one task in
the component's TaskGroup (an http/tcp/exec check with its own attempt deadline, as I/O
needs), and its result becomes CheckDone(name, check, run, ok, why); CancelChecks
cancels the instance's tasks when its run is over. A bug in a check is reported, and
never cancels the TaskGroup.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any

from herder.config.model import ServiceSpec
from herder.core.effects import Check
from herder.core.events import CheckDone, Event, MemorySampled
from herder.core.world import World
from herder.health import probes
from herder.process import spawn as spawner
from herder.process import tree
from herder.runtime.events import EventBus

MANAGER_ENV = ("WATCHDOG_USEC", "WATCHDOG_PID", "NOTIFY_SOCKET")


class Checks:
    def __init__(self, world: World, post: Callable[[Event], None], events: EventBus,
                 watch_pid: probes.WatchPid, tree_pids: Callable[[str], set[int]]) -> None:
        self.world = world
        self.post = post
        self.events = events
        self.watch_pid = watch_pid
        self.tree_pids = tree_pids
        self.tasks: dict[tuple[str, Check], asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None

    async def __aenter__(self) -> Checks:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()
        if self._tg is not None:
            async with asyncio.timeout(10.0):
                await self._tg.__aexit__(None, None, None)

    # ---- effects ---------------------------------------------------------------------------------

    def run(self, name: str, check: Check, run: int) -> None:
        inst = self.world.instances.get(name)
        if inst is None or self._tg is None:
            return
        self._cancel(name, check)
        spec = inst.spec
        if check is Check.READY:
            coro = self._check(inst.name, inst.replica, spec, spec.ready.kind or "", spec.ready.attempt_timeout, True)
        else:
            coro = self._check(inst.name, inst.replica, spec, spec.health.kind or "", spec.health.timeout, False)
        task = self._tg.create_task(self._one(name, check, run, coro))
        self.tasks[(name, check)] = task
        task.add_done_callback(lambda t: self.tasks.get((name, check)) is t and self.tasks.pop((name, check)))

    def cancel(self, name: str) -> None:
        for check in Check:
            self._cancel(name, check)

    def sample_memory(self, name: str, run: int) -> None:
        """RSS of the whole tree: /proc reads, tens of µs (psutil's children() scans all of /proc)."""
        self.post(MemorySampled(name, run, sum(tree.rss(pid) for pid in self.tree_pids(name))))

    # ---- the checks ------------------------------------------------------------------------------

    def _cancel(self, name: str, check: Check) -> None:
        task = self.tasks.pop((name, check), None)
        if task is not None:
            task.cancel()

    async def _one(self, name: str, check: Check, run: int, coro: Coroutine[Any, Any, probes.Result]) -> None:
        try:
            ok, why = await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug in a check must never cancel the TaskGroup
            self.events.emit(name, "bug", f"herder bug in the {check.value} check of {name}: {e!r}")
            return
        self.post(CheckDone(name, check, run, ok, why))

    async def _check(self, name: str, replica: int | None, spec: ServiceSpec, kind: str, timeout: float,
                     ready: bool) -> probes.Result:
        conf = spec.ready if ready else spec.health
        if kind == "http":
            return await probes.http_check(conf.http or "", timeout, None if ready else spec.health.body)
        if kind == "tcp":
            return await probes.tcp_check(conf.tcp or "", timeout)
        if kind == "exec":
            launch = _exec_launch(name, replica, spec, conf.exec or ())
            return await probes.exec_check(launch, timeout, self.watch_pid)
        return False, f"unknown check {kind!r}"


def _exec_launch(name: str, replica: int | None, spec: ServiceSpec, argv: tuple[str, ...]) -> spawner.Launch:
    """An exec check runs with the service's environment, directory and account."""
    launch = spawner.plan(f"{name}-probe", replica, dataclasses.replace(spec, command=argv), "probe")
    launch.env.pop("HERDER_INSTANCE_ID", None)
    for key in MANAGER_ENV:
        launch.env.pop(key, None)
    return dataclasses.replace(launch, rlimits=())
