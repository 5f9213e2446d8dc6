"""The supervisor: one loop that owns the World, steps the core, and runs the effects.

Inputs (SIGCHLD exits, timers, signals to herder, the notify socket, check results, the
API) only *post* typed events. `_drain` applies them one at a time with
`herder.core.step.step(world, event, now)` and hands the effects to the effect runner
(herder.runtime.effects). Nothing else changes the World, so there are no locks and no
decision outside the core. The answer to a spawn (Spawned / SpawnFailed) is stepped
before any other queued event, so nothing can come between a spawn and its answer.

The adapters are the runtime's own: the process table and reaper
(herder.runtime.processes), the deadline heap on the injected clock
(herder.runtime.timers), the log hub (herder.logs), the notify socket, the check runner
and the limits (herder.health). Components that live as long as the supervisor (the
API, herder's report to its own manager) see it through herder.runtime.ports.Host.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from herder.config import Config
from herder.core import effects as fx
from herder.core.events import Command, Down, Event, Force, Interrupt, TimerFired, Up, Verb
from herder.core.instance import Instance
from herder.core.step import step
from herder.core.world import Phase, World
from herder.health.limits import Limits
from herder.health.monitor import Checks
from herder.health.notify import NotifyServer
from herder.logs._hub import LogHub
from herder.process.cgroup import Cgroups
from herder.process.rlimits import raise_nofile
from herder.runtime import container, previous, signals, status, upward
from herder.runtime.calendar import Calendar, local_zone
from herder.runtime.clock import Clock, MonotonicClock
from herder.runtime.effects import EffectRunner
from herder.runtime.events import EventBus
from herder.runtime.hooks import Hooks
from herder.runtime.ports import Component
from herder.runtime.processes import Processes
from herder.runtime.timers import Timers
from herder.store import lock, runstate

if TYPE_CHECKING:
    from herder.alerts.component import AlertsComponent

_PR_SET_CHILD_SUBREAPER = 36


class Supervisor:
    def __init__(self, config: Config, *, clock: Clock | None = None, rng: random.Random | None = None,
                 init: container.Init | None = None) -> None:
        self.clock: Clock = clock or MonotonicClock()
        self.init = init or container.detect()   # PID 1? in a container? (docs/container.md)
        rng = rng or random.Random()
        self.world = World.create(config, self.clock.now(), lambda: rng.uniform(-1.0, 1.0), local_zone())
        self.events = EventBus()
        self.components: list[Component] = []
        self._queue: deque[Event] = deque()
        self._answers: deque[Event] = deque()    # Spawned / SpawnFailed: stepped first
        self._draining = False
        self._running = False
        self._tickets = 0
        self._finished: asyncio.Event | None = None
        self.logs = LogHub(config, self.events)
        self.procs = Processes(self.world, self.logs, self.post, self._answers.append, self.clock)
        self.timers = Timers(self.clock, lambda key, at: self.post(TimerFired(key, at)))
        self.checks = Checks(self.world, self.post, self.events, self.procs.watch, self.procs.tree_pids)
        posix = sys.platform != "win32"
        self.limits = Limits(config.state_dir, self.world, self.events) if posix else None
        self.notify = NotifyServer(config.state_dir, self.world, self.procs, self.post, self.events) if posix else None
        if self.notify is not None:
            self.procs.env_for.append(self.notify.env)
        if self.limits is not None:
            self.procs.prepare.append(self.limits.prepare)
            self.procs.exit_reason = self.limits.exit_reason
        self.hooks = Hooks(self.world, self.procs, self.logs, self.post, self.clock)
        self.calendar = Calendar(self.clock, config.state_dir)
        self.runner = EffectRunner(self.world, self.procs, self.timers, self.events, self.logs, self.checks,
                                   self.limits, self._finish, self.hooks, self.calendar)
        upward.attach(self)  # READY/STATUS/WATCHDOG/STOPPING to systemd when it runs herder
        self.alerts: AlertsComponent | None = None
        if config.alerts.targets or config.hooks.on_event:   # [alerts], [hooks] on_event
            from herder.alerts.component import AlertsComponent

            self.alerts = AlertsComponent(self, self.procs.watch, self.procs.base_env)
        # extra fields of each status record, asked per request (never on a timer)
        self.status_fields: list[Callable[[Instance], dict[str, Any]]] = [self.logs.status_fields]

    # ---- what components read (herder.runtime.ports.Host) -----------------------------------------

    @property
    def config(self) -> Config:
        return self.world.config

    @property
    def instances(self) -> Mapping[str, Instance]:
        return self.world.instances

    @property
    def shutting_down(self) -> bool:
        """True from the first `down` request (SIGTERM, Ctrl+C, API) on."""
        return self.world.phase is not Phase.UP

    @property
    def exit_code(self) -> int:
        return self.world.exit_code

    @property
    def cgroups(self) -> Cgroups | None:
        return self.procs.cgroups

    @property
    def orphans_reaped(self) -> int:
        return self.procs.orphans_reaped

    def resolve(self, names: Iterable[str]) -> list[str]:
        """Service or instance names -> instance names; UnknownService names what exists."""
        return self.world.resolve(names)

    def status(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """One record per instance (interface.md `status --json`), with what each of
        `status_fields` adds (the log hub's counters; CPU and memory: herder.process.usage)."""
        return status.records(self.world, self.clock.now(), names, self._status_fields)

    def _status_fields(self, inst: Instance) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for fields in self.status_fields:
            out.update(fields(inst))
        return out

    # ---- posting ---------------------------------------------------------------------------------

    def post(self, event: Event) -> None:
        """An input for the core; applied at once when the loop runs, in order."""
        self._queue.append(event)
        if self._running and not self._draining:
            self._drain()

    def request(self, make: Callable[[int], Event]) -> asyncio.Future[fx.Reply]:
        """Post make(ticket) now; the future gets the core's Reply(ticket)."""
        self._tickets += 1
        ticket = self._tickets
        fut: asyncio.Future[fx.Reply] = asyncio.get_running_loop().create_future()
        self.runner.replies[ticket] = fut
        fut.add_done_callback(lambda _: self.runner.replies.pop(ticket, None))
        self.post(make(ticket))
        return fut

    async def ask(self, make: Callable[[int], Event]) -> fx.Reply:
        """Post make(ticket) and wait for the core's Reply(ticket)."""
        return await self.request(make)

    def start(self, names: Iterable[str]) -> None:
        self.post(Command(Verb.START, tuple(names)))

    def stop(self, names: Iterable[str]) -> None:
        self.post(Command(Verb.STOP, tuple(names)))

    def restart(self, names: Iterable[str]) -> None:
        self.post(Command(Verb.RESTART, tuple(names)))

    def request_down(self) -> None:
        """Stop everything in reverse dependency order, then finish (SIGTERM, first Ctrl+C)."""
        self.post(Down())

    def force(self) -> None:
        """SIGKILL everything left now (second Ctrl+C); the exit code becomes 1."""
        self.post(Force())

    def _drain(self) -> None:
        self._draining = True
        try:
            while self._answers or self._queue:
                ev = (self._answers or self._queue).popleft()
                stepped = self.calendar.drifted(self.world)    # the wall clock was stepped: tell the core first
                if stepped is not None:
                    self.runner.run(step(self.world, stepped, self.clock.now()))
                self.runner.run(step(self.world, ev, self.clock.now()))
        finally:
            self._draining = False
        self.procs.save_runstate()

    def _finish(self, exit_code: int) -> None:
        if self._finished is not None:
            self._finished.set()

    # ---- lifetime --------------------------------------------------------------------------------

    async def run(self, only: Iterable[str] | None = None, *, install_signals: bool = True,
                  ready: Callable[[], None] | None = None) -> int:
        """Start, supervise until `down`, stop everything, return the exit code."""
        loop = asyncio.get_running_loop()
        self._finished = asyncio.Event()
        config = self.config
        lock_fd = lock.acquire(config.state_dir, group_gid=lock.group_id(config.herder.socket_group))
        raise_nofile()   # herder's own fds never run out before its services' (herder.process.rlimits)
        self.procs.runstate = runstate.RunStateWriter(config.state_dir / "run.json", self.procs.live_records)
        _set_subreaper(True)
        undo = [signals.install_reaper(loop, self.procs.reap)]
        if install_signals:
            undo += [signals.install(loop, signal.SIGTERM, self.request_down),
                     signals.install(loop, signal.SIGINT, lambda: self.post(Interrupt())),
                     signals.install(loop, signal.SIGUSR1, self.logs.reopen)]
            pwr = getattr(signal, "SIGPWR", None)
            if self.init.pid1 and pwr is not None:   # LXC and Incus halt a container's init with SIGPWR
                undo.append(signals.install(loop, pwr, self.request_down))
        try:
            left = await previous.stop_left_running(config, self.events)
            if config.herder.cgroups:
                self.procs.cgroups = Cgroups.detect(config.state_dir)
            if self.limits is not None:
                self.limits.cgroups = self.procs.cgroups
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(self.logs)
                for own in (self.notify, self.limits, self.checks, self.alerts):
                    if own is not None:
                        await stack.enter_async_context(own)
                for comp in self.components:
                    await stack.enter_async_context(comp)
                if left is not None and self.alerts is not None:
                    self.alerts.replay(left)        # it was published before the alerts listened
                where = f", {self.init.describe()}" if self.init.container_init else ""
                self.events.emit("", "supervisor", f"herder: supervising {len(self.instances)} instance(s) "
                                 f"(pid {os.getpid()}{where}, tracking by "
                                 f"{'cgroup' if self.cgroups else 'process group'})")
                self.timers.open()
                self._running = True
                self.post(self.calendar.first(self.world))
                self.post(Up(tuple(only or ())))
                if ready is not None:
                    ready()
                await self._finished.wait()
                self._running = False
                self.timers.close()
                await self.procs.sweep()
        finally:
            self._running = False
            self.timers.close()
            for fut in self.runner.replies.values():
                if not fut.done():
                    fut.set_result(fx.Reply(0, False, "herder stopped"))
            for restore in undo:
                restore()
            self.procs.close()
            if self.procs.runstate is not None:
                await self.procs.runstate.close()
            _set_subreaper(False)
            os.close(lock_fd)
        return self.exit_code


def _set_subreaper(on: bool) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)
