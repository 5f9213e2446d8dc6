"""The World: everything the core decides over, in one value owned by the runtime loop.

It holds the instances (observed and desired state, probe trackers, armed deadlines),
the dependency graph (`deps`, `by_service`), what operators hold down by hand, the
operator jobs in progress (ordered stops, restarts, rolling restarts, reloads), the
shutdown phase and herder's exit code. `step()` (herder.core.step) is the only writer;
the runtime and the API read it (status, metrics, waits).

The dependency facts and the "waiting for" reasons are derived here from the instances,
so the step, the status view (`blocked`) and tests ask the same functions.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo

from herder.config import Config, ServiceSpec
from herder.core import graph
from herder.core.effects import TimerKey, TimerKind
from herder.core.events import Verb
from herder.core.instance import ALIVE, IDLE, READY_STATES, UP, Instance, State, instance_names
from herder.core.plan import Plan
from herder.core.probe import Tracker, counts_healthy
from herder.errors import UnknownService


class Phase(enum.Enum):
    UP = "up"          # supervising
    DOWN = "down"      # stopping everything in reverse dependency order
    DONE = "done"      # every instance idle after `down`: the supervisor may exit


class JobKind(enum.Enum):
    START = "start"
    STOP = "stop"          # ordered: an instance goes once its dependents in the job are down
    RESTART = "restart"    # ordered stop of all, then start of all (forward order by dependencies)
    ROLLING = "rolling"    # one service's replicas, one at a time, each back up before the next
    RELOAD = "reload"      # stop what a new config removes or changes, then apply it


@dataclass
class Job:
    """An operator's action on several instances, carried out over many steps."""

    id: int
    kind: JobKind
    names: list[str]
    ticket: int = 0                  # non-zero: send Reply(ticket) once, when done or at the deadline
    timeout: float = 0.0
    pending: list[str] = field(default_factory=list)    # not yet acted on (in order)
    issued: set[str] = field(default_factory=set)       # acted on
    released: bool = False           # RESTART: every member is down, starts may go ahead
    replied: bool = False
    current: str | None = None       # ROLLING: the replica being restarted
    config: Config | None = None     # RELOAD: the new config
    plan: Plan | None = None         # RELOAD: what changes
    was_up: dict[str, bool] = field(default_factory=dict)   # RELOAD: restarted services that were up

    @property
    def key(self) -> str:
        return f"#{self.id}"


@dataclass
class Alarm:
    """A service's schedule or restart_schedule (herder.core.calendar)."""

    service: str
    kind: TimerKind     # SCHEDULE or RESTART_SCHEDULE
    expr: str
    zone: str           # the time zone's name ("" = the machine's local zone)
    due: float          # wall-clock seconds

    @property
    def key(self) -> TimerKey:
        return TimerKey(self.kind, "@" + self.service)


VERB_JOBS = {Verb.START: JobKind.START, Verb.STOP: JobKind.STOP, Verb.RESTART: JobKind.RESTART}


@dataclass
class World:
    config: Config
    spread: Callable[[], float] = lambda: 0.0      # backoff jitter in [-1, 1], injected
    instances: dict[str, Instance] = field(default_factory=dict)
    by_service: dict[str, list[str]] = field(default_factory=dict)
    deps: dict[str, dict[str, str]] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)    # stopped by hand: `up` leaves them down
    phase: Phase = Phase.UP
    forced: bool = False
    exit_code: int = 0
    exit_reason: str = ""                          # why herder exits with exit_code (the exit policy)
    jobs: dict[int, Job] = field(default_factory=dict)
    timers: dict[TimerKey, float] = field(default_factory=dict)   # the supervisor's own deadlines
    next_job: int = 1
    wall_offset: float | None = None   # wall clock = monotonic + offset (input WallClock); None: not told yet
    local_tz: tzinfo = UTC    # the machine's zone, for schedules without `timezone` (injected)
    alarms: dict[TimerKey, Alarm] = field(default_factory=dict)   # schedules, by their timer's key
    queued: set[str] = field(default_factory=set)   # scheduled services with a run queued (overlap = "queue")

    @classmethod
    def create(cls, config: Config, now: float, spread: Callable[[], float] | None = None,
               local_tz: tzinfo | None = None) -> World:
        world = cls(config)
        if spread is not None:
            world.spread = spread
        if local_tz is not None:
            world.local_tz = local_tz
        for svc, spec in config.services.items():
            add_service(world, svc, spec, now)
        return world

    # ---- queries -----------------------------------------------------------------------------

    def resolve(self, names: Iterable[str]) -> list[str]:
        """Service or instance names -> instance names; UnknownService names what exists."""
        out: list[str] = []
        unknown = []
        for n in names:
            if n in self.by_service:
                out.extend(self.by_service[n])
            elif n in self.instances:
                out.append(n)
            else:
                unknown.append(n)
        if unknown:
            raise UnknownService(unknown, sorted(self.by_service))
        return list(dict.fromkeys(out))

    def facts(self, name: str) -> graph.Facts:
        inst = self.instances[name]
        started = inst.state in UP and inst.pid is not None
        ready = inst.state in READY_STATES
        hopeless = inst.state is State.FAILED or (inst.state is State.EXITED and not inst.completed) \
            or (inst.state is State.STOPPED and not inst.want_up)
        return graph.Facts(inst.state.value, started, ready, ready and counts_healthy(inst.spec.health, inst.healthy),
                           inst.completed, hopeless)

    def unmet(self, inst: Instance) -> list[str]:
        """'waiting for db (started): failed' for each dependency not meeting its condition."""
        reasons = []
        for dep, cond in self.deps.get(inst.service, {}).items():
            facts = [self.facts(n) for n in self.by_service.get(dep, [])]
            if not graph.condition_met(cond, facts):
                reasons.append(graph.waiting_reason(dep, cond, facts))
        return reasons

    def blocked(self, service: str) -> bool:
        """Waiting on a dependency that will not get there by itself (failed, stopped …)."""
        for dep, cond in self.deps.get(service, {}).items():
            facts = [self.facts(n) for n in self.by_service.get(dep, [])]
            if not graph.condition_met(cond, facts) and (not facts or any(f.hopeless for f in facts)):
                return True
        return False

    def dependents(self, service: str) -> list[str]:
        """Instances of the services that depend on `service`."""
        return [n for svc, deps in self.deps.items() if service in deps for n in self.by_service.get(svc, [])]

    def dependents_alive(self, service: str, among: set[str] | None = None) -> bool:
        return any(self.instances[n].state in ALIVE for n in self.dependents(service) if among is None or n in among)

    def all_idle(self) -> bool:
        return all(inst.state in IDLE for inst in self.instances.values())


def add_service(world: World, svc: str, spec: ServiceSpec, now: float,
                replicas: Iterable[int] | None = None) -> list[str]:
    """Create the (idle) instances of a service, or the given replicas of it; their names."""
    wanted = set(replicas) if replicas is not None else None
    world.deps[svc] = dict(spec.depends_on)
    names = world.by_service.setdefault(svc, [])
    added = []
    for name, replica in instance_names(svc, spec.replicas):
        if name in world.instances or (wanted is not None and replica not in wanted):
            continue
        probe = Tracker(spec.health) if spec.health.kind is not None or spec.health.watchdog else None
        world.instances[name] = Instance(name, svc, replica, spec, since=now, probe=probe)
        names.append(name)
        added.append(name)
    return added


def drop_instance(world: World, name: str) -> None:
    """Forget an idle instance (a reload removed it)."""
    inst = world.instances.pop(name)
    names = world.by_service.get(inst.service, [])
    if name in names:
        names.remove(name)
    if not names:
        world.by_service.pop(inst.service, None)
        world.deps.pop(inst.service, None)
    world.held.discard(name)
