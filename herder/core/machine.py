"""The per-instance state machine, written as one table of (state, event type) -> rule.

Each rule updates the instance it is given and adds effects (Spawn, Signal, timers,
Publish …) to `Out`; it never performs I/O. The table is checked twice: a pair missing
from it raises TransitionError (an impossible event, a bug in herder), and a rule that
leaves the instance in a state outside the row's declared targets raises at once, so the
declared targets (and docs/states.md, generated from them) cannot drift from what the
rules do. The whole table is walked by tests/core/test_machine.py, and random event
sequences are driven through it by tests/core/test_step_properties.py.

Only herder.core.step calls `handle`; the runtime never does.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from herder.core import effects as fx
from herder.core import lifecycle as lc
from herder.core.effects import HookKind, Kind, Scope, TimerKind
from herder.core.events import (
    INSTANCE_EVENTS,
    BackoffDone,
    DepsMet,
    Exited,
    Extend,
    Fail,
    FailReason,
    Found,
    HealthChanged,
    HookDone,
    Kill,
    MainPid,
    OneInstance,
    Ready,
    ReadyTimeout,
    Reloading,
    Restart,
    Spawned,
    SpawnFailed,
    Start,
    Stop,
    StopTimeout,
)
from herder.core.instance import Exit, Instance, RunEnd, State
from herder.core.out import Out
from herder.errors import TransitionError
from herder.units import parse_signal

E = TypeVar("E", bound=OneInstance)


class Row(Protocol):
    """One cell of the table, whatever its event type."""

    @property
    def targets(self) -> frozenset[State]: ...
    @property
    def doc(self) -> str: ...
    def apply(self, out: Out, inst: Instance, ev: OneInstance, now: float) -> None: ...


@dataclass(frozen=True)
class Transition(Generic[E]):
    event: type[E]
    rule: Callable[[Out, Instance, E, float], None]
    targets: frozenset[State]   # the states the rule may end in (checked after every use)
    doc: str

    def apply(self, out: Out, inst: Instance, ev: OneInstance, now: float) -> None:
        if not isinstance(ev, self.event):
            raise TransitionError(f"{inst.name}: a {type(ev).__name__} reached the row of {self.event.__name__}")
        self.rule(out, inst, ev, now)


TABLE: dict[tuple[State, type[OneInstance]], Row] = {}


def handle(out: Out, inst: Instance, ev: OneInstance, now: float) -> None:
    """Apply one event to one instance through TABLE."""
    before = inst.state
    row = TABLE.get((before, type(ev)))
    if row is None:
        raise TransitionError(f"{inst.name}: event {ev.label} is impossible in state {before.value}")
    start = len(out.effects)
    row.apply(out, inst, ev, now)
    out.stamp(inst, start)
    if inst.state not in row.targets:
        raise TransitionError(f"{inst.name}: {before.value} + {ev.label} ended in {inst.state.value}, outside the "
                              f"row's targets ({', '.join(sorted(s.value for s in row.targets))})")


def _scope(inst: Instance, wide: Scope) -> Scope:
    return Scope.MAIN if inst.spec.kill == "main" else wide


# ---- rules ---------------------------------------------------------------------------------

def _ignore(o: Out, inst: Instance, ev: OneInstance, now: float) -> None:
    return None


def _want_up(o: Out, inst: Instance, ev: Start | Restart, now: float) -> None:
    inst.want_up = True
    if inst.state in (State.FAILED, State.EXITED, State.STOPPED):
        inst.failed_starts.clear()
        inst.consecutive = 0
        inst.completed = False
    o.cancel(inst, TimerKind.BACKOFF)
    o.move(inst, State.WAITING, now, "dependencies")


def _want_down_idle(o: Out, inst: Instance, ev: Stop | Kill, now: float) -> None:
    inst.want_up = False
    o.cancel(inst, TimerKind.BACKOFF)
    o.move(inst, State.STOPPED, now)


def _spawn(o: Out, inst: Instance) -> None:
    o.add(fx.Spawn(inst.name, inst.run, inst.spec.ready.log if inst.spec.ready.kind == "log" else None))


def _deps_met(o: Out, inst: Instance, ev: DepsMet, now: float) -> None:
    inst.run += 1
    inst.pending, inst.killed = None, False
    if lc.hook_of(inst, HookKind.PRE_START) is not None:
        lc.start_hook(o, inst, HookKind.PRE_START, now)
        o.move(inst, State.STARTING, now, "pre_start hook")
        return
    _spawn(o, inst)
    o.move(inst, State.STARTING, now)


def _spawned(o: Out, inst: Instance, ev: Spawned, now: float) -> None:
    inst.pid, inst.started_at, inst.completed = ev.pid, now, False
    inst.failing, inst.healthy, inst.status = "", None, ""
    inst.was_ready = False
    o.note(inst, Kind.SPAWN, f"{inst.name}: started (pid {inst.pid})", {"pid": inst.pid})
    if inst.spec.ready.kind is None:
        _reached_ready(o, inst, now)
    elif inst.spec.ready.timeout > 0:
        o.arm(inst, TimerKind.READY, now + inst.spec.ready.timeout)


def _reached_ready(o: Out, inst: Instance, now: float) -> None:
    """Ready: running, unless a post_start hook must succeed first."""
    if inst.state is State.STARTING and lc.hook_of(inst, HookKind.POST_START) is not None:
        lc.start_hook(o, inst, HookKind.POST_START, now)
        o.move(inst, State.STARTING, now, "post_start hook")
        return
    inst.was_ready = True
    o.move(inst, State.RUNNING, now)


def _ready(o: Out, inst: Instance, ev: Ready, now: float) -> None:
    if inst.hook is not None or inst.pid is None:   # post_start runs already (a second READY=1), or no process
        return
    o.cancel(inst, TimerKind.READY)
    if inst.state is State.RELOADING:
        o.move(inst, State.RUNNING, now, "reloaded")
        return
    _reached_ready(o, inst, now)


def _reloading(o: Out, inst: Instance, ev: Reloading, now: float) -> None:
    o.move(inst, State.RELOADING, now)


def _ready_timeout(o: Out, inst: Instance, ev: ReadyTimeout, now: float) -> None:
    kind = inst.spec.ready.kind or "ready"
    msg = (f"{inst.name} was not ready within ready.timeout = {inst.spec.ready.timeout:g}s ({kind} check); "
           "stopping it as a failed start. Raise ready.timeout if it needs longer.")
    _fail(o, inst, Fail(inst.name, FailReason.READY_TIMEOUT, msg), now)


def _fail(o: Out, inst: Instance, ev: Fail, now: float) -> None:
    """Stop through the normal stop path; the exit then goes through the restart policy."""
    if inst.pid is None:             # during pre_start: nothing of the program runs yet
        return
    o.note(inst, Kind.FAILING, ev.message or f"{inst.name}: failing ({ev.reason})", {"reason": str(ev.reason)})
    _stop_now(o, inst, now, then_start=inst.want_up, reason=str(ev.reason))
    inst.failing = str(ev.reason)


def _health(o: Out, inst: Instance, ev: HealthChanged, now: float) -> None:
    if inst.healthy == ev.healthy:
        return
    inst.healthy = ev.healthy
    word = {True: "healthy", False: "unhealthy", None: "unknown"}[ev.healthy]
    o.note(inst, Kind.HEALTH, f"{inst.name}: {word}" + (f" ({ev.message})" if ev.message else ""),
              {"health": word, "reason": str(ev.reason)})


def _mainpid(o: Out, inst: Instance, ev: MainPid, now: float) -> None:
    old, inst.pid = inst.pid, ev.pid
    o.note(inst, Kind.MAINPID, f"{inst.name}: main process is now pid {inst.pid} (was {old})",
              {"pid": inst.pid, "old": old})


def _extend(o: Out, inst: Instance, ev: Extend, now: float) -> None:
    """EXTEND_TIMEOUT_USEC: the deadline becomes at least now + seconds (systemd's rule)."""
    kind = TimerKind.READY if inst.state is State.STARTING else TimerKind.STOP
    deadline = inst.timers.get(kind)
    if deadline is None or now + ev.seconds <= deadline:
        return
    o.arm(inst, kind, now + ev.seconds)
    o.note(inst, Kind.EXTEND,
              f"{inst.name}: {kind.value} deadline extended by the program to {ev.seconds:g}s from now",
              {"seconds": ev.seconds, "timer": kind.value})


def _spawned_stopping(o: Out, inst: Instance, ev: Spawned, now: float) -> None:
    """A spawn decided in the same step as the stop or kill that came after it (a critical
    service's exit policy, a forced `down`): the process exists now, and is stopped the way
    that stop meant: SIGKILL after a kill, else the stop signal, with the stop timeout."""
    inst.pid, inst.started_at, inst.completed = ev.pid, now, False
    o.note(inst, Kind.SPAWN, f"{inst.name}: started (pid {inst.pid}) while stopping: stopping it", {"pid": inst.pid})
    if inst.killed:
        o.add(fx.Kill(inst.name, _scope(inst, Scope.TREE)))
        o.arm(inst, TimerKind.STOP, now + inst.spec.stop_timeout)
    else:
        _send_stop_signal(o, inst, now)


def _spawn_failed_stopping(o: Out, inst: Instance, ev: SpawnFailed, now: float) -> None:
    o.note(inst, Kind.SPAWN_FAILED, f"{inst.name}: cannot start: {ev.error}", {"error": ev.error})
    lc.run_over(o, inst, RunEnd(stopped=True, reason=f"cannot start: {ev.error}"), now)


def _spawn_failed(o: Out, inst: Instance, ev: SpawnFailed, now: float) -> None:
    o.note(inst, Kind.SPAWN_FAILED, f"{inst.name}: cannot start: {ev.error}", {"error": ev.error})
    lc.run_over(o, inst, RunEnd(stopped=False, reason=f"cannot start: {ev.error}"), now)


def _record_exit(o: Out, inst: Instance, ev: Exited, now: float) -> tuple[float, Exit]:
    """Forget the process; publish `exit`. Returns how long it ran, and how it ended."""
    ran = now - inst.started_at if inst.started_at is not None else 0.0
    inst.last_exit = ex = Exit(ev.code, ev.signal)
    pid, inst.pid, inst.started_at = inst.pid, None, None
    what = f"{ex}, {ev.reason}" if ev.reason else str(ex)
    data: dict[str, fx.JSON] = {"pid": pid, "code": ex.code, "signal": ex.signal, "runtime": round(ran, 6)}
    if ev.reason:
        data["reason"] = ev.reason
    if ev.away:
        data["away"] = True
    away = " while herder was away (found on adoption)" if ev.away else ""
    o.note(inst, Kind.EXIT, f"{inst.name}: {what}{away} after {ran:.3f}s (pid {pid})", data)
    if inst.spec.kill != "main":
        o.add(fx.KillLeftovers(inst.name))
    return ran, ex


def _exit(o: Out, inst: Instance, ev: Exited, now: float) -> None:
    """The main process ended on its own: the restart policy (herder.core.lifecycle), once
    no hook of the run runs any more."""
    never_ready = inst.state is State.STARTING   # a failed start whatever the code (systemd: Type=notify)
    ran, ex = _record_exit(o, inst, ev, now)
    o.cancel(inst, TimerKind.READY)
    end = RunEnd(stopped=False, ran=ran, exit=ex, reason=ev.reason, never_ready=never_ready,
                 was_ready=inst.was_ready)
    if inst.hook is not None:        # post_start still runs: stop it, decide once it ended
        inst.pending = end
        lc.stop_hook(o, inst, now, inst.spec.stop_timeout)
        o.move(inst, State.STOPPING, now, f"exited during the {inst.hook} hook")
        return
    lc.run_over(o, inst, end, now)


def _backoff_done(o: Out, inst: Instance, ev: BackoffDone, now: float) -> None:
    inst.restarts += 1
    o.move(inst, State.WAITING, now, "dependencies")


def _stop_now(o: Out, inst: Instance, now: float, *, then_start: bool, reason: str = "") -> None:
    """pre_stop (for an instance that was ready), then stop_signal and stop_timeout."""
    inst.want_up = then_start
    o.cancel(inst, TimerKind.READY)
    why = reason or ("restart" if then_start else "")
    if inst.pid is None:             # pre_start runs: stop it instead of starting
        lc.stop_hook(o, inst, now, inst.spec.stop_timeout)
        o.move(inst, State.STOPPING, now, why)
        return
    if inst.hook is not None:        # post_start runs: stop it too
        lc.stop_hook(o, inst, now, inst.spec.stop_timeout)
    elif inst.was_ready and lc.hook_of(inst, HookKind.PRE_STOP) is not None:
        lc.start_hook(o, inst, HookKind.PRE_STOP, now)
        o.move(inst, State.STOPPING, now, why)
        return
    _send_stop_signal(o, inst, now)
    o.move(inst, State.STOPPING, now, why)


def _send_stop_signal(o: Out, inst: Instance, now: float) -> None:
    o.add(fx.Signal(inst.name, parse_signal(inst.spec.stop_signal), _scope(inst, Scope.GROUP)))
    o.arm(inst, TimerKind.STOP, now + inst.spec.stop_timeout)


def _stop(o: Out, inst: Instance, ev: Stop, now: float) -> None:
    _stop_now(o, inst, now, then_start=False)


def _restart(o: Out, inst: Instance, ev: Restart, now: float) -> None:
    _stop_now(o, inst, now, then_start=True)


def _stopping_start(o: Out, inst: Instance, ev: Start | Restart, now: float) -> None:
    inst.want_up = True


def _stopping_stop(o: Out, inst: Instance, ev: Stop, now: float) -> None:
    inst.want_up = False


def _stopping_exit(o: Out, inst: Instance, ev: Exited, now: float) -> None:
    end = RunEnd(stopped=True, failing=inst.failing, was_ready=inst.was_ready)
    ran, ex = _record_exit(o, inst, ev, now)
    o.cancel(inst, TimerKind.STOP)
    inst.failing = ""
    end = dataclasses.replace(end, ran=ran, exit=ex, reason=ev.reason)
    if inst.hook is not None:        # pre_stop (or a post_start being stopped) still runs: wait for it
        inst.pending = end
        return
    lc.run_over(o, inst, end, now)


def _hook_done(o: Out, inst: Instance, ev: HookDone, now: float) -> None:
    """A hook ended: the start goes on, the stop goes on, or the run is over."""
    if inst.hook is None or ev.hook is not inst.hook or ev.run != inst.run:
        return                       # not the hook that runs now: a late answer
    ok, what = lc.hook_ended(o, inst, ev)
    kind = ev.hook
    if kind is HookKind.PRE_START:
        if inst.state is State.STARTING and ok:
            _spawn(o, inst)
            o.move(inst, State.STARTING, now)
            return
        stopped = inst.state is State.STOPPING
        lc.run_over(o, inst, RunEnd(stopped=stopped, reason=f"pre_start hook {what}"), now)
    elif inst.pending is not None and inst.pid is None:
        if kind is HookKind.POST_STOP:
            lc.settle(o, inst, inst.pending, now)
        else:
            lc.run_over(o, inst, inst.pending, now)
    elif kind is HookKind.POST_START and inst.state is State.STARTING:
        if ok:
            inst.was_ready = True
            o.move(inst, State.RUNNING, now)
        else:
            _fail(o, inst, Fail(inst.name, FailReason.HOOK, f"{inst.name}: post_start hook {what}; stopping it "
                                f"as a failed start"), now)
    elif kind is HookKind.PRE_STOP and inst.pid is not None:
        _send_stop_signal(o, inst, now)


def _stop_timeout(o: Out, inst: Instance, ev: StopTimeout, now: float) -> None:
    if inst.pid is None:
        return
    scope = _scope(inst, Scope.TREE)
    msg = (f"{inst.name} ignored {inst.spec.stop_signal} for {inst.spec.stop_timeout:g}s; sent SIGKILL to its "
           f"{'main process' if scope is Scope.MAIN else 'process tree'}. Raise stop_timeout if it needs longer.")
    o.add(fx.Kill(inst.name, scope))
    o.note(inst, Kind.STOP_TIMEOUT, msg)


def _kill(o: Out, inst: Instance, ev: Kill, now: float) -> None:
    inst.want_up, inst.killed = False, True
    if inst.hook is not None:
        o.add(fx.StopHook(inst.name, signal.SIGKILL))
    if inst.pid is not None:
        o.add(fx.Kill(inst.name, _scope(inst, Scope.TREE)))
    o.cancel(inst, TimerKind.READY)
    if inst.state is not State.STOPPING:
        if inst.pid is not None:
            o.arm(inst, TimerKind.STOP, now + inst.spec.stop_timeout)
        o.move(inst, State.STOPPING, now, "forced")


def _found_alive(o: Out, inst: Instance, ev: Found, now: float) -> None:
    """Adoption of a live instance: the same process goes on (or, a start cut short, the
    process that start made); anything else about it is as the record says."""
    if ev.pid is None:
        if inst.pid is None and inst.state is State.STARTING:      # the spawn never happened: do it now
            o.add(fx.Spawn(inst.name, inst.run, inst.spec.ready.log if inst.spec.ready.kind == "log" else None))
            o.note(inst, Kind.ADOPTED, f"{inst.name}: its start was cut short by herder's restart; starting it now",
                   {"planned": ev.planned})
        return
    if inst.pid is None:
        _spawned(o, inst, Spawned(inst.name, ev.pid), now)
    elif inst.pid != ev.pid:
        inst.pid = ev.pid
    o.note(inst, Kind.ADOPTED, f"{inst.name}: adopted (pid {ev.pid}), still {inst.state.value}",
           {"pid": ev.pid, "planned": ev.planned})


def _found_idle(o: Out, inst: Instance, ev: Found, now: float) -> None:
    """A live process of an instance the record has none for (a previous herder's, left by a
    killed keeper): kept when the instance is wanted up, else stopped the normal way."""
    if ev.pid is None:
        return
    inst.run += 1
    inst.pid, inst.started_at, inst.completed, inst.failing = ev.pid, now, False, ""
    inst.healthy, inst.status, inst.was_ready = None, "", inst.spec.ready.kind is None
    o.cancel(inst, TimerKind.BACKOFF)
    if not inst.want_up:
        o.note(inst, Kind.ADOPTED, f"{inst.name}: found running (pid {ev.pid}) though it should be down; stopping it",
               {"pid": ev.pid, "planned": ev.planned})
        _stop_now(o, inst, now, then_start=False, reason="found running; not wanted")
        return
    o.note(inst, Kind.ADOPTED, f"{inst.name}: adopted (pid {ev.pid}), left running by a previous herder",
           {"pid": ev.pid, "planned": ev.planned})
    if inst.was_ready:
        o.move(inst, State.RUNNING, now, "adopted")
    else:
        o.move(inst, State.STARTING, now, "adopted")
        if inst.spec.ready.timeout > 0:
            o.arm(inst, TimerKind.READY, now + inst.spec.ready.timeout)


# ---- the table -----------------------------------------------------------------------------

S = State
_IDLE = (S.STOPPED, S.EXITED, S.FAILED)
_UP = (S.STARTING, S.RUNNING, S.RELOADING)
_ALIVE = (*_UP, S.STOPPING)
_ALL = tuple(State)


def _rule(states: Iterable[State], event: type[E], rule: Callable[[Out, Instance, E, float], None],
          targets: Iterable[State], doc: str) -> None:
    for s in states:
        if (s, event) in TABLE:
            raise TransitionError(f"two rules for ({s.value}, {event.label})")
        TABLE[(s, event)] = Transition(event, rule, frozenset(targets), doc)


def _same(states: tuple[State, ...], events: Iterable[type[OneInstance]], doc: str) -> None:
    """Rows where the event changes nothing (each state stays as it is)."""
    for s in states:
        for e in events:
            _rule((s,), e, _ignore, (s,), doc)


_rule(_IDLE, Start, _want_up, (S.WAITING,), "wanted up: wait for dependencies (resets the start limit)")
_rule(_IDLE, Restart, _want_up, (S.WAITING,), "wanted up: wait for dependencies (resets the start limit)")
_same((S.STOPPED,), (Stop, Kill), "already stopped")
_rule((S.EXITED, S.FAILED), Stop, _want_down_idle, (S.STOPPED,), "clear: stopped")
_rule((S.EXITED, S.FAILED), Kill, _want_down_idle, (S.STOPPED,), "clear: stopped")
_same((S.WAITING,), (Start, Restart), "already wanted up")
_rule((S.WAITING,), Stop, _want_down_idle, (S.STOPPED,), "not started: stopped")
_rule((S.WAITING,), Kill, _want_down_idle, (S.STOPPED,), "not started: stopped")
_rule((S.WAITING,), DepsMet, _deps_met, (S.STARTING,),
      "run the pre_start hook, else spawn the process (ready.log watches its output from the start)")
_rule((S.STARTING,), Spawned, _spawned, (S.STARTING, S.RUNNING),
      "running (after the post_start hook), or starting until ready (arm ready.timeout)")
_rule((S.STARTING,), SpawnFailed, _spawn_failed, (S.BACKOFF, S.FAILED, S.EXITED, S.STOPPING, S.STOPPED),
      "a failed start (post_stop hook first)")
_rule((S.STARTING,), Ready, _ready, (S.RUNNING, S.STARTING), "ready: cancel the ready timeout; the post_start hook, "
      "else running")
_rule((S.RELOADING,), Ready, _ready, (S.RUNNING,), "reload finished")
_same((S.RUNNING, S.STOPPING), (Ready,), "no change")
_rule((S.RUNNING,), Reloading, _reloading, (S.RELOADING,), "the program reloads; READY=1 ends it")
_same((S.STARTING, S.RELOADING, S.STOPPING), (Reloading,), "not meaningful here: ignored")
_rule((S.STARTING,), ReadyTimeout, _ready_timeout, (S.STOPPING,),
      "not ready in time: stop it; its exit is a failed start (backoff, start limit)")
_rule((S.STARTING,), Fail, _fail, (S.STOPPING, S.STARTING), "failing: stop it; its exit goes through the restart "
      "policy (ignored during pre_start)")
_rule((S.RUNNING, S.RELOADING), Fail, _fail, (S.STOPPING,), "failing (health, watchdog, memory): stop it; its exit "
      "goes through the restart policy")
_rule(_UP, Exited, _exit, (S.EXITED, S.BACKOFF, S.FAILED, S.STOPPING, S.STOPPED),
      "apply the restart policy (after the post_stop hook); a run shorter than min_uptime, or never ready, is a "
      "failed start")
_same(_UP, (Start,), "already up")
_rule(_UP, Stop, _stop, (S.STOPPING,), "the pre_stop hook if it was ready, then stop_signal, arm stop_timeout")
_rule(_UP, Restart, _restart, (S.STOPPING,), "stop, then start again")
_rule(_ALIVE, Kill, _kill, (S.STOPPING,), "SIGKILL the tree (and any hook) now")
for _s in _ALIVE:
    _rule((_s,), MainPid, _mainpid, (_s,), "stop and signals now go to the new main pid")
for _s in (S.STARTING, S.STOPPING):
    _rule((_s,), Extend, _extend, (_s,), "push the ready or stop deadline")
_same((S.RUNNING, S.RELOADING), (Extend,), "no deadline to extend")
for _s in _ALL:
    _rule((_s,), HealthChanged, _health, (_s,), "record the health verdict (an event when it changes)")
_same(tuple(s for s in _ALL if s is not S.STARTING), (ReadyTimeout,), "a late timer: ignored")
_same((S.STOPPING, *_IDLE, S.WAITING, S.BACKOFF), (Fail,), "not running: nothing to restart")
_same((*_IDLE, S.WAITING, S.BACKOFF), (Reloading, MainPid, Extend), "no process: ignored (a late message)")
_rule((S.BACKOFF,), BackoffDone, _backoff_done, (S.WAITING,), "delay over: start again")
_rule((S.BACKOFF,), Start, _want_up, (S.WAITING,), "skip the rest of the delay")
_rule((S.BACKOFF,), Restart, _want_up, (S.WAITING,), "skip the rest of the delay")
_rule((S.BACKOFF,), Stop, _want_down_idle, (S.STOPPED,), "cancel the restart")
_rule((S.BACKOFF,), Kill, _want_down_idle, (S.STOPPED,), "cancel the restart")
_rule((S.STOPPING,), Exited, _stopping_exit, (S.STOPPED, S.WAITING, S.BACKOFF, S.FAILED, S.EXITED, S.STOPPING),
      "stopped (after the hooks still running and post_stop); start again after a restart; stopped as failing: "
      "the restart policy (backoff, failed, exited)")
_rule((S.STOPPING,), StopTimeout, _stop_timeout, (S.STOPPING,), "SIGKILL the tree")
_rule((S.STOPPING,), Spawned, _spawned_stopping, (S.STOPPING,),
      "a spawn decided in the step that then stopped it: stop the new process (SIGKILL after a kill)")
_rule((S.STOPPING,), SpawnFailed, _spawn_failed_stopping, (S.STOPPED, S.WAITING, S.BACKOFF, S.FAILED, S.EXITED),
      "a spawn decided in the step that then stopped it failed: stopped (start again after a restart)")
_rule((S.STOPPING,), Start, _stopping_start, (S.STOPPING,), "start again once stopped")
_rule((S.STOPPING,), Restart, _stopping_start, (S.STOPPING,), "start again once stopped")
_rule((S.STOPPING,), Stop, _stopping_stop, (S.STOPPING,), "stay down once stopped")
_rule((S.STARTING,), HookDone, _hook_done,
      (S.STARTING, S.RUNNING, S.STOPPING, S.BACKOFF, S.FAILED, S.EXITED, S.STOPPED),
      "pre_start ok: spawn; post_start ok: running; a failure is a failed start (post_stop first)")
_rule((S.STOPPING,), HookDone, _hook_done, (S.STOPPING, S.STOPPED, S.WAITING, S.BACKOFF, S.FAILED, S.EXITED),
      "pre_stop over: the stop signal; the last hook of a run over: post_stop, then the restart policy")
_same((*_IDLE, S.WAITING, S.BACKOFF, S.RUNNING, S.RELOADING), (HookDone,), "no hook runs here: a late answer")

for _s in _ALIVE:
    _rule((_s,), Found, _found_alive, (_s, S.RUNNING) if _s is S.STARTING else (_s,),
          "adopted: the same process carries on (a start cut short is carried out)")
_rule((*_IDLE, S.WAITING, S.BACKOFF), Found, _found_idle, (S.RUNNING, S.STARTING, S.STOPPING, *_IDLE, S.WAITING,
      S.BACKOFF), "a live process the record has none for: adopted when wanted up, else stopped")

IMPOSSIBLE = frozenset((s, e) for s in State for e in INSTANCE_EVENTS if (s, e) not in TABLE)
