"""A simulated runtime for the pure core: `step()` driven without processes or a loop.

    sim = Sim({"web": ServiceSpec(command=("web",))})
    sim.post(Up())
    sim.exit("web", code=3)          # the main process ends
    sim.advance(0.2)                 # the backoff timer fires on the simulated clock
    assert sim.state("web") == "running"

It carries out the core's effects the way the real runtime would, minus the I/O: a
Spawn gets a fresh pid (or a SpawnFailed, see `fail_spawns`), armed timers go on a
deadline heap on the simulated clock, a Kill ends the process, a stop signal ends it
unless the service is listed in `stubborn`. Everything the core published is kept in
`events`, every reply in `replies`. A hook ends at once with exit 0, or with the code in
`hook_codes`, or is held running (`hold_hooks`) until `end_hook` (a StopHook ends a held
hook by its signal unless the hook is in `stubborn_hooks`). The wall clock is `now +
wall_offset`; `post(WallClock(sim.wall_offset))` arms the schedules, and a change of
`wall_offset` (a clock step) is told to the core before the next event, as the runtime does.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from herder.config import Config, HerderSettings, ServiceSpec
from herder.core import effects as fx
from herder.core.events import Event, Exited, HookDone, Spawned, SpawnFailed, TimerFired, WallClock
from herder.core.instance import Instance
from herder.core.step import step
from herder.core.world import World

WALL_DRIFT = 1.0   # seconds the wall clock may drift from what the core was told before it is told again


def config_of(services: Mapping[str, ServiceSpec], settings: HerderSettings | None = None) -> Config:
    """A Config for tests, without a file (paths under /nonexistent)."""
    base = Path("/nonexistent/herder")
    return Config(base / "herder.toml", settings or HerderSettings(), base / ".herder", base / ".herder/logs",
                  dict(services))


@dataclass
class Sim:
    services: Mapping[str, ServiceSpec] | Config
    now: float = 1000.0
    stubborn: set[str] = field(default_factory=set)      # services whose processes ignore the stop signal
    unkillable: set[str] = field(default_factory=set)    # services whose processes survive SIGKILL (D state)
    fail_spawns: dict[str, str] = field(default_factory=dict)   # service -> spawn error
    spread: float = 0.0
    wall_offset: float = 1_735_689_600.0 - 1000.0    # wall clock 2025-01-01T00:00:00Z at now = 1000
    hook_codes: dict[tuple[str, str], int] = field(default_factory=dict)   # (service, hook) -> exit code
    hold_hooks: set[tuple[str, str]] = field(default_factory=set)        # (service, hook): run until end_hook
    stubborn_hooks: set[tuple[str, str]] = field(default_factory=set)    # held hooks that ignore SIGTERM
    world: World = field(init=False)
    events: list[fx.Publish] = field(default_factory=list)
    effects: list[fx.Effect] = field(default_factory=list)
    replies: dict[int, fx.Reply] = field(default_factory=dict)
    finished: int | None = None
    checks: list[fx.RunCheck] = field(default_factory=list)
    _heap: list[tuple[float, int, fx.TimerKey]] = field(default_factory=list)
    armed: dict[fx.TimerKey, float] = field(default_factory=dict)
    _queue: deque[Event] = field(default_factory=deque)
    _spawned: deque[Event] = field(default_factory=deque)   # a spawn's answer comes before anything else
    _pid: int = 100
    _seq: int = 0
    hooks: dict[str, tuple[fx.HookKind, int, float]] = field(default_factory=dict)   # running: kind, run, start
    records: dict[str, float] = field(default_factory=dict)   # RecordRun: service -> wall

    def __post_init__(self) -> None:
        cfg = self.services if isinstance(self.services, Config) else config_of(self.services)
        self.world = World.create(cfg, self.now, lambda: self.spread)

    # ---- driving -------------------------------------------------------------------------------

    def post(self, event: Event) -> list[fx.Effect]:
        """Step `event` and everything its effects lead to at the current time; its own effects."""
        first = self._step(event)
        while self._spawned or self._queue:
            self._step((self._spawned or self._queue).popleft())
        return first

    def advance(self, seconds: float) -> None:
        """Move the clock, firing every timer that falls due, in deadline order."""
        end = self.now + seconds
        while self._heap and self._heap[0][0] <= end:
            at, _, key = heapq.heappop(self._heap)
            if self.armed.get(key) != at:
                continue
            del self.armed[key]
            self.now = max(self.now, at)
            self.post(TimerFired(key, at))
        self.now = end

    def run_timers(self, limit: float = 3600.0) -> None:
        """Fire timers until none is left within `limit` seconds (the loop idling)."""
        end = self.now + limit
        while self._heap and self._heap[0][0] <= end:
            self.advance(max(0.0, self._heap[0][0] - self.now))

    def exit(self, name: str, code: int | None = 0, signal: str | None = None, reason: str = "") -> None:
        """The instance's main process ends on its own."""
        self.post(Exited(name, self.world.instances[name].pid, code, signal, reason))

    def end_hook(self, name: str, code: int | None = 0, signal: str | None = None) -> None:
        """The instance's running (held) hook ends."""
        kind, run, started = self.hooks.pop(name)
        self.post(HookDone(name, kind, run, code, signal, seconds=self.now - started))

    @property
    def wall(self) -> float:
        return self.now + self.wall_offset

    # ---- looking -------------------------------------------------------------------------------

    def inst(self, name: str) -> Instance:
        return self.world.instances[name]

    def state(self, name: str) -> str:
        return self.world.instances[name].state.value

    def kinds(self, name: str | None = None) -> list[str]:
        return [str(e.kind) for e in self.events if name is None or e.name == name]

    # ---- the simulated runtime -----------------------------------------------------------------

    def _step(self, event: Event) -> list[fx.Effect]:
        told = self.world.wall_offset
        if told is not None and abs(told - self.wall_offset) > WALL_DRIFT and not isinstance(event, WallClock):
            self._step(WallClock(self.wall_offset))     # as the runtime does: the clock was stepped
        out = step(self.world, event, self.now)
        self.effects.extend(out)
        for eff in out:
            self._carry_out(eff)
        return out

    def _carry_out(self, eff: fx.Effect) -> None:
        world = self.world
        if isinstance(eff, fx.Publish):
            self.events.append(eff)
        elif isinstance(eff, fx.Spawn):
            inst = world.instances[eff.name]
            error = self.fail_spawns.get(inst.service)
            if error is not None:
                self._spawned.append(SpawnFailed(eff.name, error))
            else:
                self._pid += 1
                self._spawned.append(Spawned(eff.name, self._pid))
        elif isinstance(eff, fx.ArmTimer):
            self._seq += 1
            self.armed[eff.key] = eff.at
            heapq.heappush(self._heap, (eff.at, self._seq, eff.key))
        elif isinstance(eff, fx.CancelTimer):
            self.armed.pop(eff.key, None)
        elif isinstance(eff, fx.Signal):
            target = world.instances.get(eff.name)
            if target is not None and target.pid is not None and target.service not in self.stubborn \
                    and eff.signal.name == target.spec.stop_signal:
                self._queue.append(Exited(eff.name, target.pid, None, eff.signal.name))
        elif isinstance(eff, fx.Kill):
            target = world.instances.get(eff.name)
            if target is not None and target.pid is not None and target.service not in self.unkillable:
                self._queue.append(Exited(eff.name, target.pid, None, "SIGKILL"))
        elif isinstance(eff, fx.RunHook):
            key = (world.instances[eff.name].service, eff.hook.value)
            if key in self.hold_hooks:
                self.hooks[eff.name] = (eff.hook, eff.run, self.now)
            else:
                self._spawned.append(HookDone(eff.name, eff.hook, eff.run, self.hook_codes.get(key, 0)))
        elif isinstance(eff, fx.StopHook):
            running = self.hooks.get(eff.name)
            svc = world.instances[eff.name].service
            if running is not None and (eff.signal.name == "SIGKILL"
                                        or (svc, running[0].value) not in self.stubborn_hooks):
                del self.hooks[eff.name]
                self._queue.append(HookDone(eff.name, running[0], running[1], None, eff.signal.name,
                                            seconds=self.now - running[2]))
        elif isinstance(eff, fx.RecordRun):
            self.records[eff.service] = eff.wall
        elif isinstance(eff, fx.RunCheck):
            self.checks.append(eff)
        elif isinstance(eff, fx.Reply):
            self.replies[eff.ticket] = eff
        elif isinstance(eff, fx.Finished):
            self.finished = eff.exit_code
