"""One step in progress: the world, the effects so far, the time, and the one way an
instance event is applied (`Ctx.apply`).

`apply` runs the instance table and then what follows from the transition, in one
place, so no component has to watch published events to react:

- a spawn resets the liveness tracker (arming the watchdog), starts the first readiness
  attempt (http, tcp, exec; ready.log watches from the spawn itself) and the RSS watch;
- leaving `starting` abandons the readiness check; reaching `running` from it starts
  liveness probing (after health.initial_delay);
- an exit stops every check and timer of the run, resets the tracker, and restarts the
  `bind = true` dependents that are up;
- the tracker's verdicts and actions go back into the table as HealthChanged and Fail.
"""

from __future__ import annotations

from herder.core import effects as fx
from herder.core import machine
from herder.core.effects import Check, Kind, TimerKind
from herder.core.events import Exited, Fail, HealthChanged, InstanceEvent, Restart, Spawned
from herder.core.instance import UP, Instance, State
from herder.core.out import Out
from herder.core.probe import Act, ArmWatchdog, PEv, Schedule, Verdict
from herder.core.world import Phase, World
from herder.errors import TransitionError

_PROBE_TIMERS = (TimerKind.PROBE, TimerKind.WATCHDOG, TimerKind.MEMORY, TimerKind.RETRY)


class Ctx:
    def __init__(self, world: World, now: float) -> None:
        self.world = world
        self.now = now
        self.out = Out(world.spread)

    def reply(self, ticket: int, ok: bool, message: str = "", problems: tuple[str, ...] = (),
              reached: tuple[str, ...] = ()) -> None:
        if ticket:
            self.out.add(fx.Reply(ticket, ok, message, problems, reached))

    def bug(self, name: str, error: Exception) -> None:
        self.out.publish(name, Kind.BUG, f"herder bug: {error}")

    # ---- the one way into the instance table ---------------------------------------------------

    def apply(self, ev: InstanceEvent) -> bool:
        """Run `ev` through the table and what follows from it; True if the state changed."""
        inst = self.world.instances.get(ev.name)
        if inst is None:
            return False
        before = inst.state
        try:
            machine.handle(self.out, inst, ev, self.now)
        except TransitionError as e:   # a bug in herder; never let it stop supervision
            self.bug(inst.name, e)
            return False
        if isinstance(ev, Spawned):
            self._spawned(inst)
        if before is State.STARTING and inst.state is not State.STARTING:
            self.out.cancel(inst, TimerKind.RETRY)
            self.out.add(fx.CancelChecks(inst.name))
            if inst.state is State.RUNNING:
                self.feed(inst, PEv.READY)
        if isinstance(ev, Exited):
            self._exited(inst)
        return inst.state is not before

    def _spawned(self, inst: Instance) -> None:
        self.feed(inst, PEv.SPAWNED)
        if inst.state is State.STARTING and inst.spec.ready.kind in ("http", "tcp", "exec"):
            self.out.add(fx.RunCheck(inst.name, Check.READY, inst.run))
        if inst.spec.limits.max_memory_restart is not None:
            self.out.arm(inst, TimerKind.MEMORY, self.now + inst.spec.limits.memory_check_interval)

    def _exited(self, inst: Instance) -> None:
        self.out.cancel(inst, *_PROBE_TIMERS)
        self.out.add(fx.CancelChecks(inst.name))
        self.feed(inst, PEv.EXITED)
        self._bind(inst)

    def _bind(self, dep: Instance) -> None:
        """bind = true: a dependent restarts whenever a dependency's process ends (it then
        waits for the dependency's condition again, like any start)."""
        if self.world.phase is not Phase.UP:
            return
        for svc, deps in self.world.deps.items():
            cond = deps.get(dep.service)
            if cond is None or cond == "completed":
                continue
            for n in self.world.by_service.get(svc, []):
                inst = self.world.instances[n]
                if inst.spec.bind and inst.state in UP:
                    self.out.note(inst, Kind.BIND, f"{n}: restarting with its dependency {dep.name} (bind = true)",
                                  {"dependency": dep.name})
                    self.apply(Restart(n))

    # ---- liveness: the probe table's effects -------------------------------------------------

    def feed(self, inst: Instance, ev: PEv, why: str = "") -> None:
        if inst.probe is None:
            return
        for eff in inst.probe.handle(ev, why):
            if isinstance(eff, Schedule):
                self.out.arm(inst, TimerKind.PROBE, self.now + eff.delay)
            elif isinstance(eff, ArmWatchdog):
                self.out.arm(inst, TimerKind.WATCHDOG, self.now + eff.delay)
            elif isinstance(eff, Verdict):
                self.apply(HealthChanged(inst.name, eff.healthy, eff.reason, eff.message))
            elif isinstance(eff, Act):
                self.apply(Fail(inst.name, eff.reason, f"{inst.name}: {eff.message}; restarting"))
