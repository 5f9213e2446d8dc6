"""The effect runner: carries out what the core's step returned, in order, and nothing more.

One branch per effect type, each a call into the adapter that owns the I/O: processes
(spawn, signals, kills, pids), hooks, the calendar's records, the deadline heap, the event bus (with the log hub's
stderr tail on exit events), the check runner, the reply futures. A failing adapter is a
bug in herder: it is reported as a `bug` event and never stops supervision.

Many SIGKILLs at once (a stop-all's stop timeouts, stepped in one batch: herder.runtime.batch)
go to every main process first, then each instance's tree is killed through its cgroup, in
order: a cgroup's kill costs 2-3x an os.kill (a cgroup.procs read and a cgroup.kill write),
and the main processes, which are what is usually left, are gone before those writes
instead of one write after another (bench/stop_floor.py --kill cgroup / pid+cgroup, issue 20).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from herder.core import effects as fx
from herder.core.effects import Kind, Scope
from herder.core.world import World
from herder.health.limits import Limits
from herder.health.monitor import Checks
from herder.logs._hub import LogHub
from herder.runtime.calendar import Calendar
from herder.runtime.events import EventBus
from herder.runtime.hooks import Hooks
from herder.runtime.processes import Processes
from herder.runtime.timers import Timers


class EffectRunner:
    def __init__(self, world: World, procs: Processes, timers: Timers, events: EventBus, logs: LogHub,
                 checks: Checks, limits: Limits | None, on_finished: Callable[[int], None], hooks: Hooks,
                 calendar: Calendar) -> None:
        self.hooks = hooks
        self.calendar = calendar
        self.world = world
        self.procs = procs
        self.timers = timers
        self.events = events
        self.logs = logs
        self.checks = checks
        self.limits = limits
        self.on_finished = on_finished
        self.replies: dict[int, asyncio.Future[fx.Reply]] = {}

    def run(self, effects: list[fx.Effect]) -> None:
        kills = [eff for eff in effects if isinstance(eff, fx.Kill) and eff.scope is Scope.TREE]
        if len(kills) > 1:
            for kill in kills:
                try:
                    self.procs.kill_main(kill.name)
                except Exception as e:  # noqa: BLE001 - an adapter's bug must not stop supervision
                    self._bug(kill, e)
        for eff in effects:
            try:
                self._one(eff)
            except Exception as e:  # noqa: BLE001 - an adapter's bug must not stop supervision
                self._bug(eff, e)

    def _bug(self, eff: fx.Effect, e: Exception) -> None:
        name = getattr(eff, "name", "")
        self.events.emit(name, "bug", f"herder bug carrying out {type(eff).__name__}: {e!r}")
        print(f"herder: bug carrying out {eff!r}: {e!r}", file=sys.stderr)

    def _one(self, eff: fx.Effect) -> None:
        if isinstance(eff, fx.Publish):
            self._publish(eff)
        elif isinstance(eff, fx.Spawn):
            self.procs.spawn(eff)
        elif isinstance(eff, fx.Signal):
            self.procs.signal(eff.name, eff.signal, eff.scope)
        elif isinstance(eff, fx.Kill):
            self.procs.kill(eff.name, eff.scope)
        elif isinstance(eff, fx.KillLeftovers):
            self.procs.kill_leftovers(eff.name)
        elif isinstance(eff, fx.ArmTimer):
            self.timers.arm(eff.key, eff.at)
        elif isinstance(eff, fx.CancelTimer):
            self.timers.cancel(eff.key)
        elif isinstance(eff, fx.RunCheck):
            self.checks.run(eff.name, eff.check, eff.run)
        elif isinstance(eff, fx.CancelChecks):
            self.checks.cancel(eff.name)
            self.logs.unwatch(eff.name)
        elif isinstance(eff, fx.SampleMemory):
            self.checks.sample_memory(eff.name, eff.run)
        elif isinstance(eff, fx.MovePid):
            self.procs.move_pid(eff)
        elif isinstance(eff, fx.DropInstance):
            self.procs.drop(eff.name)
            if self.limits is not None:
                self.limits.forget(eff.name)
        elif isinstance(eff, fx.Reply):
            fut = self.replies.pop(eff.ticket, None)
            if fut is not None and not fut.done():
                fut.set_result(eff)
        elif isinstance(eff, fx.RunHook):
            self.hooks.run(eff)
        elif isinstance(eff, fx.StopHook):
            self.hooks.signal(eff)
        elif isinstance(eff, fx.RecordRun):
            self.calendar.record(eff)
        elif isinstance(eff, fx.Finished):
            self.on_finished(eff.exit_code)

    def _publish(self, eff: fx.Publish) -> None:
        data: dict[str, Any] = dict(eff.data)
        if eff.kind is Kind.EXIT:
            inst = self.world.instances.get(eff.name)
            if inst is not None:
                data.update(self.logs.exit_data(inst))
        elif eff.kind is Kind.HOOK and data.get("phase") == "end" and not data.get("ok"):
            inst = self.world.instances.get(eff.name)
            if inst is not None:
                data["stderr_tail"] = self.logs.hook_tail(inst, str(data.get("hook")))
        self.events.emit(eff.name, str(eff.kind), eff.message, data)
