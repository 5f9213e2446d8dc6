"""THE step: `step(world, event, now) -> effects`. Every decision herder takes is here.

The runtime posts one typed event at a time (herder.core.events) with the injected
clock's time; `step` updates the World and returns the effects to carry out, in order
(herder.core.effects). It never performs I/O and never reads a clock, so all of it runs
in tests without processes, on any time line.

Where each decision lives:

- the instance table (what an event does to one instance): herder/core/machine.py;
- the liveness table (probe verdicts, the watchdog): herder/core/probe.py;
- what follows a transition (checks, probes, bind): herder/core/context.py;
- operator jobs (ordered stop, restart, rolling restart): herder/core/jobs.py;
- reloads: herder/core/reconfigure.py;
- dependencies and `down` order, run after every event: herder/core/reconcile.py;
- the shutdown phase (`down`, force, herder's deadline, the stop budget):
  herder/core/shutdown.py;
- critical services (the exit policy, run by the reconcile, and the health verdict):
  herder/core/critical.py;
- this module: turning inputs (timers, check results, sd_notify messages, memory
  samples, log matches, commands, `up`, `down`) into the above, with the guards on
  which state each is meaningful in.
"""

from __future__ import annotations

from herder.core import calendar, graph, jobs, reconfigure, shutdown
from herder.core import effects as fx
from herder.core import lifecycle as lc
from herder.core.context import Ctx
from herder.core.effects import Check, Effect, Kind, Scope, TimerKind
from herder.core.events import (
    INSTANCE_EVENTS,
    BackoffDone,
    CheckDone,
    Command,
    Down,
    Event,
    Exited,
    Extend,
    Fail,
    FailReason,
    Force,
    Found,
    Held,
    InstanceEvent,
    Interrupt,
    LogMatched,
    MainPid,
    MemorySampled,
    Notice,
    Notified,
    NotifyErrno,
    NotifyExtend,
    NotifyMainPid,
    NotifyReady,
    NotifyReloading,
    NotifyStatus,
    NotifyStopping,
    NotifyWatchdog,
    Ready,
    ReadyTimeout,
    Reconfigure,
    Reloading,
    SendSignal,
    Start,
    StopTimeout,
    TimerFired,
    Up,
    WallClock,
)
from herder.core.instance import ALIVE, IDLE, Instance, State
from herder.core.probe import PEv
from herder.core.reconcile import reconcile
from herder.core.world import JobKind, Phase, World

_INSTANCE_TIMERS: dict[TimerKind, type[BackoffDone | StopTimeout | ReadyTimeout]] = {
    TimerKind.BACKOFF: BackoffDone, TimerKind.STOP: StopTimeout, TimerKind.READY: ReadyTimeout}


def step(world: World, event: Event, now: float) -> list[Effect]:
    """Apply one event at monotonic time `now`; the effects for the runtime, in order."""
    ctx = Ctx(world, now)
    _dispatch(ctx, event)
    reconcile(ctx)
    return ctx.out.effects


def _dispatch(ctx: Ctx, ev: Event) -> None:
    world = ctx.world
    if isinstance(ev, INSTANCE_EVENTS):
        _instance_event(ctx, ev)
    elif isinstance(ev, TimerFired):
        _timer(ctx, ev)
    elif isinstance(ev, CheckDone):
        _check_done(ctx, ev)
    elif isinstance(ev, LogMatched):
        inst = _current(ctx, ev.name, ev.run)
        if inst is not None and inst.state is State.STARTING and inst.spec.ready.kind == "log":
            _ready_by_check(ctx, inst, "log", f"log line matched: {ev.line[:120]}")
    elif isinstance(ev, MemorySampled):
        _memory(ctx, ev)
    elif isinstance(ev, Notified):
        _notified(ctx, ev)
    elif isinstance(ev, Command):
        jobs.command(ctx, ev)
    elif isinstance(ev, SendSignal):
        _send_signal(ctx, ev)
    elif isinstance(ev, Up):
        _up(ctx, ev)
    elif isinstance(ev, Held):
        world.held = set(ev.names)
    elif isinstance(ev, Down):
        shutdown.begin(ctx)
    elif isinstance(ev, Interrupt):
        if world.phase is Phase.UP:
            shutdown.begin(ctx)
        else:
            shutdown.force(ctx)
    elif isinstance(ev, Force):
        shutdown.force(ctx)
    elif isinstance(ev, Reconfigure):
        reconfigure.begin(ctx, ev)
    elif isinstance(ev, WallClock):
        calendar.wall_clock(ctx, ev)


def _instance_event(ctx: Ctx, ev: InstanceEvent) -> None:
    """Spawned, SpawnFailed and Exited come from the runtime; an exit of a pid that is no
    longer the instance's main process (or of an instance without one) is stale."""
    inst = ctx.world.instances.get(ev.name)
    if inst is None:
        return
    if isinstance(ev, Exited) and (inst.state not in ALIVE or (ev.pid is not None and ev.pid != inst.pid)):
        return
    if isinstance(ev, Found) and ev.pid is not None and inst.state in IDLE and inst.run == 0:
        # nothing was ever decided about it (a fresh start finding what a killed herder left):
        # wanted up exactly when `up` would start it
        world = ctx.world
        inst.want_up = inst.spec.autostart and inst.name not in world.held and world.phase is Phase.UP
    ctx.apply(ev)


def _current(ctx: Ctx, name: str, run: int) -> Instance | None:
    """The instance, if `run` is its current run and its process lives (else a late result)."""
    inst = ctx.world.instances.get(name)
    if inst is None or inst.run != run or inst.state not in ALIVE:
        return None
    return inst


# ---- timers ------------------------------------------------------------------------------------

def _timer(ctx: Ctx, ev: TimerFired) -> None:
    world, key = ctx.world, ev.key
    if key.owner.startswith(("#", "@")) or not key.owner:
        if world.timers.get(key) != ev.at:
            return   # cancelled or re-armed since: stale
        del world.timers[key]
        if key.kind in (TimerKind.SCHEDULE, TimerKind.RESTART_SCHEDULE):
            calendar.fire(ctx, key)
        elif key.kind is TimerKind.SHUTDOWN:
            shutdown.deadline(ctx)
        elif key.kind is TimerKind.JOB:
            job = world.jobs.get(int(key.owner[1:]))
            if job is not None and job.kind is JobKind.RELOAD:
                reconfigure.deadline(ctx, job)
            elif job is not None:
                jobs.deadline(ctx, job)
        return
    inst = world.instances.get(key.owner)
    if inst is None or inst.timers.get(key.kind) != ev.at:
        return
    del inst.timers[key.kind]
    event = _INSTANCE_TIMERS.get(key.kind)
    if event is not None:
        ctx.apply(event(inst.name))
    elif key.kind is TimerKind.RETRY and inst.state is State.STARTING:
        ctx.out.add(fx.RunCheck(inst.name, Check.READY, inst.run))
    elif key.kind is TimerKind.PROBE and inst.state in ALIVE:
        ctx.out.add(fx.RunCheck(inst.name, Check.HEALTH, inst.run))
    elif key.kind is TimerKind.WATCHDOG:
        ctx.feed(inst, PEv.EXPIRE)
    elif key.kind is TimerKind.MEMORY and inst.state in ALIVE:
        ctx.out.add(fx.SampleMemory(inst.name, inst.run))
    elif key.kind is TimerKind.HOOK:
        lc.hook_timeout(ctx.out, inst)


# ---- measurements ---------------------------------------------------------------------------

def _check_done(ctx: Ctx, ev: CheckDone) -> None:
    inst = _current(ctx, ev.name, ev.run)
    if inst is None:
        return
    if ev.check is Check.HEALTH:
        ctx.feed(inst, PEv.PASS if ev.ok else PEv.FAIL, ev.why)
    elif inst.state is State.STARTING:
        if ev.ok:
            _ready_by_check(ctx, inst, inst.spec.ready.kind or "", ev.why)
        else:
            ctx.out.arm(inst, TimerKind.RETRY, ctx.now + inst.spec.ready.interval)


def _ready_by_check(ctx: Ctx, inst: Instance, kind: str, why: str) -> None:
    ctx.out.note(inst, Kind.READY_CHECK, f"{inst.name}: ready ({kind}: {why})", {"check": kind})
    ctx.apply(Ready(inst.name))


def _memory(ctx: Ctx, ev: MemorySampled) -> None:
    """Over limits.max_memory_restart: a graceful restart (once per run); else sample again."""
    inst = _current(ctx, ev.name, ev.run)
    limit = inst.spec.limits.max_memory_restart if inst is not None else None
    if inst is None or limit is None:
        return
    if ev.rss > limit:
        mb = 1024 * 1024
        ctx.apply(Fail(inst.name, FailReason.MEMORY,
                       f"{inst.name}: RSS of its process tree is {ev.rss / mb:.1f} MB, over "
                       f"limits.max_memory_restart = {limit / mb:.1f} MB; restarting gracefully"))
    else:
        ctx.out.arm(inst, TimerKind.MEMORY, ctx.now + inst.spec.limits.memory_check_interval)


# ---- sd_notify --------------------------------------------------------------------------------

def _notified(ctx: Ctx, ev: Notified) -> None:
    inst = ctx.world.instances.get(ev.name)
    if inst is None:
        return
    # READY=1 last: "READY=1\nSTATUS=…" / "READY=1\nMAINPID=…" are ready with that status/pid
    for n in sorted(ev.notices, key=lambda x: isinstance(x, NotifyReady)):
        _notice(ctx, inst, n)


def _notice(ctx: Ctx, inst: Instance, n: Notice) -> None:
    name, state = inst.name, inst.state
    if isinstance(n, NotifyReady):
        if (state is State.STARTING and inst.spec.ready.kind == "notify") or state is State.RELOADING:
            ctx.apply(Ready(name))
    elif isinstance(n, NotifyStatus):
        inst.status = n.text
        ctx.out.note(inst, Kind.STATUS, f"{name}: {n.text}", {"status": n.text})
    elif isinstance(n, NotifyMainPid):
        _mainpid(ctx, inst, n)
    elif isinstance(n, NotifyReloading):
        if state is State.RUNNING:
            ctx.apply(Reloading(name))
    elif isinstance(n, NotifyStopping):
        ctx.out.note(inst, Kind.NOTIFY_STOPPING, f"{name}: the program reports it is stopping")
    elif isinstance(n, NotifyWatchdog):
        if n.trigger:
            ctx.feed(inst, PEv.EXPIRE, "the program asked for a watchdog restart (WATCHDOG=trigger)")
        else:
            ctx.feed(inst, PEv.PING)
    elif isinstance(n, NotifyExtend):
        if state in (State.STARTING, State.STOPPING):
            ctx.apply(Extend(name, n.seconds))
    elif isinstance(n, NotifyErrno):
        ctx.out.note(inst, Kind.ERRNO, f"{name}: the program reports errno {n.errno} ({n.text})", {"errno": n.errno})


def _mainpid(ctx: Ctx, inst: Instance, n: NotifyMainPid) -> None:
    if inst.pid is None or n.pid == inst.pid or inst.state not in ALIVE:
        return
    if n.pid <= 1 or not n.owned:
        ctx.out.note(inst, Kind.NOTIFY_WARNING, f"{inst.name}: MAINPID={n.pid} ignored: not a process of this "
                     "instance (it must be the main process or one of its descendants)", {"pid": n.pid})
        return
    ctx.out.add(fx.MovePid(inst.name, inst.pid, n.pid, n.foreign))
    ctx.apply(MainPid(inst.name, n.pid))


# ---- operator and lifetime -------------------------------------------------------------------

def _send_signal(ctx: Ctx, ev: SendSignal) -> None:
    sent = []
    for n in ev.names:
        inst = ctx.world.instances.get(n)
        if inst is not None and inst.pid is not None and inst.state in ALIVE:
            ctx.out.add(fx.Signal(n, ev.signal, Scope.TREE if ev.tree else Scope.MAIN))
            sent.append(n)
    missed = [n for n in ev.names if n not in sent]
    ctx.reply(ev.ticket, not missed, f"not running, no signal sent: {', '.join(missed)}" if missed else "",
              reached=tuple(sent))


def _up(ctx: Ctx, ev: Up) -> None:
    """The first start: the named services and their dependencies, else every autostart
    service not held down by hand and not scheduled (a job runs on its calendar); in
    dependency order (each waits for its conditions)."""
    world = ctx.world
    if ev.only:
        services = graph.closure(world.deps, ev.only)
    else:
        services = {s for s, spec in world.config.services.items() if spec.autostart and spec.schedule is None}
    for level in graph.levels(world.deps):
        for svc in level:
            if svc in services:
                for n in world.by_service.get(svc, []):
                    if ev.only or n not in world.held:
                        ctx.apply(Start(n))
