"""The per-instance state machine, written as one table of (state, event) -> rule.

Observed state (`State`) and desired state (`Instance.want_up`) are kept apart: an
operator's stop sets want_up = False and the machine walks to STOPPED; a crash does not
touch want_up, so the machine walks back up. Every handler is pure: it updates the
instance record it is given and returns effects (`Spawn`, `Signal`, `ArmTimer` …) for
the runtime to carry out. A pair missing from the table raises TransitionError.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from herder.config.model import ServiceSpec
from herder.core import backoff
from herder.errors import TransitionError


class State(enum.Enum):
    STOPPED = "stopped"    # no process; not wanted up (or never started)
    WAITING = "waiting"    # wanted up; a dependency does not meet its condition yet
    STARTING = "starting"  # spawned; not ready yet
    RUNNING = "running"    # spawned and ready
    BACKOFF = "backoff"    # exited; restart timer armed
    RELOADING = "reloading"  # ready, then sent RELOADING=1; READY=1 ends it
    STOPPING = "stopping"  # stop signal sent; waiting for the exit
    EXITED = "exited"      # ended and not restarted (`completed` when it succeeded)
    FAILED = "failed"      # start limit reached; parked until `herder start`


class Ev(enum.Enum):
    START = "start"                # operator or `up`: want it up
    STOP = "stop"                  # operator or `down`: want it down
    RESTART = "restart"            # operator: stop if running, then start
    DEPS_MET = "deps_met"          # every dependency meets its condition
    SPAWNED = "spawned"            # the process exists (data: pid)
    SPAWN_FAILED = "spawn_failed"  # the OS refused to start it (data: error)
    READY = "ready"                # readiness reached
    EXIT = "exit"                  # the main process ended (data: code, signal)
    BACKOFF_DONE = "backoff_done"  # restart delay elapsed
    STOP_TIMEOUT = "stop_timeout"  # stop_timeout elapsed while stopping
    KILL = "kill"                  # forced shutdown: SIGKILL now
    READY_TIMEOUT = "ready_timeout"  # ready.timeout elapsed while starting
    RELOADING = "reloading"        # the program sent RELOADING=1
    FAIL = "fail"                  # herder judged the process failing (data: reason, message): restart it
    HEALTH = "health"              # the health verdict changed (data: healthy, reason, message)
    MAINPID = "mainpid"            # the program named another main process (data: pid)
    EXTEND = "extend"              # EXTEND_TIMEOUT_USEC= (data: seconds): push the ready/stop deadline


ALIVE = frozenset({State.STARTING, State.RUNNING, State.RELOADING, State.STOPPING})
UP = (State.STARTING, State.RUNNING, State.RELOADING)   # alive and not being stopped
READY_STATES = (State.RUNNING, State.RELOADING)


# ---- effects: what the runtime must do ---------------------------------------------

@dataclass(frozen=True)
class Spawn:
    pass


@dataclass(frozen=True)
class Signal:
    signal: str     # "SIGTERM" …
    scope: str      # "main" | "group" | "tree"


@dataclass(frozen=True)
class KillLeftovers:
    """SIGKILL whatever the exited main process left behind in its tree."""


@dataclass(frozen=True)
class ArmTimer:
    kind: str       # "backoff" | "stop" | "ready"
    delay: float


@dataclass(frozen=True)
class CancelTimer:
    kind: str


@dataclass(frozen=True)
class Publish:
    """An event for the journal, the console and API streams."""

    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


Effect = Spawn | Signal | KillLeftovers | ArmTimer | CancelTimer | Publish


@dataclass
class Exit:
    code: int | None
    signal: str | None

    def __str__(self) -> str:
        return f"signal {self.signal}" if self.signal else f"exit {self.code}"


@dataclass
class Instance:
    """Everything herder tracks about one instance; owned by the runtime loop only."""

    name: str
    service: str
    replica: int | None
    spec: ServiceSpec
    state: State = State.STOPPED
    want_up: bool = False
    since: float = 0.0                  # monotonic time of the last state change
    pid: int | None = None
    started_at: float | None = None     # monotonic time of the last spawn
    restarts: int = 0
    consecutive: int = 0                # n of the backoff curve
    failed_starts: deque[float] = field(default_factory=deque)
    last_exit: Exit | None = None
    completed: bool = False
    reason: str = ""
    healthy: bool | None = None         # None: no liveness check configured
    status: str = ""                    # last STATUS= text
    failing: str = ""                   # why herder is stopping it as failed (ready_timeout, health, watchdog, memory)
    was_ready: bool = False             # this run reached ready
    ready_deadline: float | None = None  # monotonic deadline of ready.timeout while starting
    stop_deadline: float | None = None   # monotonic deadline of stop_timeout while stopping


Rule = Callable[[Instance, dict[str, Any], float], list[Effect]]


@dataclass(frozen=True)
class Transition:
    rule: Rule
    targets: tuple[State, ...]   # states the rule may end in (for docs and tests)
    doc: str


class Machine:
    """Applies events to instances through TABLE. `spread()` gives jitter in [-1, 1]."""

    def __init__(self, spread: Callable[[], float] = lambda: 0.0) -> None:
        self.spread = spread

    def handle(self, inst: Instance, ev: Ev, now: float, **data: Any) -> list[Effect]:
        tr = TABLE.get((inst.state, ev))
        if tr is None:
            raise TransitionError(f"{inst.name}: event {ev.value} is impossible in state {inst.state.value}")
        return tr.rule(self, inst, data, now)  # type: ignore[call-arg]


def _move(inst: Instance, state: State, now: float, out: list[Effect], reason: str = "") -> None:
    old = inst.state
    inst.state, inst.since, inst.reason = state, now, reason
    if old is not state:
        out.append(Publish("state", f"{inst.name}: {old.value} -> {state.value}" + (f" ({reason})" if reason else ""),
                           {"from": old.value, "to": state.value, "reason": reason}))


# ---- rules ---------------------------------------------------------------------------

def _ignore(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    return []


def _want_up(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    out: list[Effect] = []
    inst.want_up = True
    if inst.state in (State.FAILED, State.EXITED, State.STOPPED):
        inst.failed_starts.clear()
        inst.consecutive = 0
        inst.completed = False
    if inst.state is State.BACKOFF:
        out.append(CancelTimer("backoff"))
    _move(inst, State.WAITING, now, out, "dependencies")
    return out


def _want_down_idle(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    out: list[Effect] = []
    inst.want_up = False
    if inst.state is State.BACKOFF:
        out.append(CancelTimer("backoff"))
    _move(inst, State.STOPPED, now, out)
    return out


def _deps_met(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    out: list[Effect] = [Spawn()]
    _move(inst, State.STARTING, now, out)
    return out


def _spawned(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    inst.pid, inst.started_at, inst.completed = data["pid"], now, False
    inst.failing, inst.healthy, inst.status, inst.ready_deadline = "", None, "", None
    inst.was_ready = not data.get("await_ready")
    out: list[Effect] = [Publish("spawn", f"{inst.name}: started (pid {inst.pid})", {"pid": inst.pid})]
    if inst.was_ready:
        _move(inst, State.RUNNING, now, out)
    elif inst.spec.ready.timeout > 0:
        inst.ready_deadline = now + inst.spec.ready.timeout
        out.append(ArmTimer("ready", inst.spec.ready.timeout))
    return out


def _ready(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    out: list[Effect] = []
    if inst.state is State.STARTING:
        out.append(CancelTimer("ready"))
        inst.ready_deadline = None
    inst.was_ready = True
    _move(inst, State.RUNNING, now, out, "reloaded" if inst.state is State.RELOADING else "")
    return out


def _reloading(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    out: list[Effect] = []
    _move(inst, State.RELOADING, now, out)
    return out


def _ready_timeout(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    kind = inst.spec.ready.kind or "ready"
    msg = (f"{inst.name} was not ready within ready.timeout = {inst.spec.ready.timeout:g}s ({kind} check); "
           "stopping it as a failed start. Raise ready.timeout if it needs longer.")
    return _fail(m, inst, {"reason": "ready_timeout", "message": msg}, now)


def _fail(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    """Stop through the normal stop path; the exit then goes through the restart policy."""
    reason = data["reason"]
    out: list[Effect] = [Publish("failing", data.get("message") or f"{inst.name}: failing ({reason})",
                                 {"reason": reason})]
    out += _stop(m, inst, {"then_start": inst.want_up, "reason": reason}, now)
    inst.failing = reason
    return out


def _health(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    healthy = data["healthy"]
    if inst.healthy == healthy:
        return []
    inst.healthy = healthy
    word = {True: "healthy", False: "unhealthy", None: "unknown"}[healthy]
    return [Publish("health", f"{inst.name}: {word}" + (f" ({data['message']})" if data.get("message") else ""),
                    {"health": word, "reason": data.get("reason", "health")})]


def _mainpid(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    old, inst.pid = inst.pid, data["pid"]
    return [Publish("mainpid", f"{inst.name}: main process is now pid {inst.pid} (was {old})",
                    {"pid": inst.pid, "old": old})]


def _extend(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    """EXTEND_TIMEOUT_USEC: the deadline becomes at least now + seconds (systemd's rule)."""
    kind = "ready" if inst.state is State.STARTING else "stop"
    deadline = inst.ready_deadline if kind == "ready" else inst.stop_deadline
    if deadline is None or now + data["seconds"] <= deadline:
        return []
    deadline = now + data["seconds"]
    if kind == "ready":
        inst.ready_deadline = deadline
    else:
        inst.stop_deadline = deadline
    return [ArmTimer(kind, data["seconds"]),
            Publish("extend", f"{inst.name}: {kind} deadline extended by the program to {data['seconds']:g}s from now",
                    {"seconds": data["seconds"], "timer": kind})]


def _spawn_failed(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    out: list[Effect] = [Publish("spawn_failed", f"{inst.name}: cannot start: {data['error']}", {"error": data["error"]})]
    _restart_or_park(m, inst, now, out, failed_start=True, why=f"cannot start: {data['error']}")
    return out


def _exit(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    """The main process ended on its own: apply the restart policy."""
    ex = Exit(data.get("code"), data.get("signal"))
    ran = now - (inst.started_at if inst.started_at is not None else now)
    out = _record_exit(inst, ex, ran, data.get("reason", ""))
    if inst.state is State.STARTING:
        out.append(CancelTimer("ready"))
    spec = inst.spec
    # exiting before it became ready is a failed start whatever the code (systemd: Type=notify)
    never_ready = inst.state is State.STARTING
    success = ex.signal is None and ex.code in spec.success_exit_codes and not data.get("reason") and not never_ready
    was_ready = inst.was_ready
    if spec.kill != "main":
        out.append(KillLeftovers())
    why = f"{data['reason']} ({ex})" if data.get("reason") else str(ex)
    if never_ready:
        why += " before it was ready"
    if spec.restart == "never" or (spec.restart == "on-failure" and success):
        inst.completed = success
        _move(inst, State.EXITED, now, out, "completed" if success else why)
        return out
    if ran >= spec.backoff.reset_after:
        inst.consecutive = 0
    failed_start = ran < spec.min_uptime or not was_ready
    _restart_or_park(m, inst, now, out, failed_start=failed_start, why=why)
    return out


def _record_exit(inst: Instance, ex: Exit, ran: float, reason: str = "") -> list[Effect]:
    """`reason` names a cause herder detected (oom: the kernel's OOM killer ended it)."""
    inst.last_exit = ex
    pid, inst.pid, inst.started_at = inst.pid, None, None
    extra = {"reason": reason} if reason else {}
    what = f"{ex}, {reason}" if reason else str(ex)
    return [Publish("exit", f"{inst.name}: {what} after {ran:.3f}s (pid {pid})",
                    {"pid": pid, "code": ex.code, "signal": ex.signal, "runtime": round(ran, 6), **extra})]


def _restart_or_park(m: Machine, inst: Instance, now: float, out: list[Effect], *, failed_start: bool, why: str) -> None:
    spec = inst.spec
    if failed_start and backoff.over_start_limit(spec.start_limit, inst.failed_starts, now):
        reason = (f"{len(inst.failed_starts)} failed starts within {spec.start_limit.interval:g}s "
                  f"(start_limit.burst = {spec.start_limit.burst}); last: {why}. Fix it, then `herder start {inst.service}`")
        out.append(Publish("failed", f"{inst.name}: gave up: {reason}", {"reason": reason}))
        _move(inst, State.FAILED, now, out, reason)
        return
    if spec.restart == "never":
        _move(inst, State.EXITED, now, out, why)
        return
    delay = backoff.delay(spec.backoff, inst.consecutive, m.spread())
    inst.consecutive += 1
    out.append(ArmTimer("backoff", delay))
    out.append(Publish("restart", f"{inst.name}: restarting in {delay:.3f}s ({why})", {"delay": round(delay, 6), "why": why}))
    _move(inst, State.BACKOFF, now, out, why)


def _backoff_done(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    out: list[Effect] = []
    inst.restarts += 1
    _move(inst, State.WAITING, now, out, "dependencies")
    return out


def _stop(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    inst.want_up = bool(data.get("then_start", False))
    scope = "main" if inst.spec.kill == "main" else "group"
    out: list[Effect] = [Signal(inst.spec.stop_signal, scope), ArmTimer("stop", inst.spec.stop_timeout)]
    if inst.state is State.STARTING:
        out.append(CancelTimer("ready"))
    inst.stop_deadline = now + inst.spec.stop_timeout
    _move(inst, State.STOPPING, now, out, data.get("reason") or ("restart" if inst.want_up else ""))
    return out


def _restart(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    return _stop(m, inst, {"then_start": True}, now)


def _stopping_start(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    inst.want_up = True
    return []


def _stopping_stop(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    inst.want_up = False
    return []


def _stopping_exit(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    ex = Exit(data.get("code"), data.get("signal"))
    ran = now - inst.started_at if inst.started_at is not None else 0.0
    was_ready = inst.was_ready
    out = _record_exit(inst, ex, ran, data.get("reason", ""))
    out.append(CancelTimer("stop"))
    inst.stop_deadline = None
    if inst.spec.kill != "main":
        out.append(KillLeftovers())
    failing, inst.failing = inst.failing, ""
    if failing and inst.want_up:
        # stopped by herder as failing: the restart policy, backoff and start limit apply
        if ran >= inst.spec.backoff.reset_after:
            inst.consecutive = 0
        failed_start = failing == "ready_timeout" or not was_ready or ran < inst.spec.min_uptime
        _restart_or_park(m, inst, now, out, failed_start=failed_start, why=failing)
    elif inst.want_up:
        inst.restarts += 1
        _move(inst, State.WAITING, now, out, "dependencies")
    else:
        _move(inst, State.STOPPED, now, out)
    return out


def _stop_timeout(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    scope = "main" if inst.spec.kill == "main" else "tree"
    msg = (f"{inst.name} ignored {inst.spec.stop_signal} for {inst.spec.stop_timeout:g}s; sent SIGKILL to its "
           f"{'main process' if scope == 'main' else 'process tree'}. Raise stop_timeout if it needs longer.")
    return [Signal("SIGKILL", scope), Publish("stop_timeout", msg)]


def _kill(m: Machine, inst: Instance, data: dict[str, Any], now: float) -> list[Effect]:
    inst.want_up = False
    out: list[Effect] = [Signal("SIGKILL", "main" if inst.spec.kill == "main" else "tree")]
    if inst.state is State.STARTING:
        out.append(CancelTimer("ready"))
    if inst.state is not State.STOPPING:
        out.append(ArmTimer("stop", inst.spec.stop_timeout))
        _move(inst, State.STOPPING, now, out, "forced")
    return out


S, E = State, Ev
_IDLE = (S.STOPPED, S.EXITED, S.FAILED)
TABLE: dict[tuple[State, Ev], Transition] = {}


def _rule(states: tuple[State, ...], events: tuple[Ev, ...], rule: Any, targets: tuple[State, ...], doc: str) -> None:
    for s in states:
        for e in events:
            assert (s, e) not in TABLE, (s, e)
            TABLE[(s, e)] = Transition(rule, targets, doc)


_rule(_IDLE, (E.START, E.RESTART), _want_up, (S.WAITING,), "wanted up: wait for dependencies (resets the start limit)")
_rule((S.STOPPED,), (E.STOP, E.KILL), _ignore, (S.STOPPED,), "already stopped")
_rule((S.EXITED, S.FAILED), (E.STOP, E.KILL), _want_down_idle, (S.STOPPED,), "clear: stopped")
_rule((S.WAITING,), (E.START, E.RESTART), _ignore, (S.WAITING,), "already wanted up")
_rule((S.WAITING,), (E.STOP, E.KILL), _want_down_idle, (S.STOPPED,), "not started: stopped")
_rule((S.WAITING,), (E.DEPS_MET,), _deps_met, (S.STARTING,), "spawn the process")
_rule((S.STARTING,), (E.SPAWNED,), _spawned, (S.STARTING, S.RUNNING), "running, or starting until ready")
_rule((S.STARTING,), (E.SPAWN_FAILED,), _spawn_failed, (S.BACKOFF, S.FAILED, S.EXITED), "a failed start")
_rule((S.STARTING,), (E.READY,), _ready, (S.RUNNING,), "ready: cancel the ready timeout")
_rule((S.RELOADING,), (E.READY,), _ready, (S.RUNNING,), "reload finished")
_rule((S.RUNNING, S.STOPPING), (E.READY,), _ignore, (S.RUNNING, S.STOPPING), "no change")
_rule((S.RUNNING,), (E.RELOADING,), _reloading, (S.RELOADING,), "the program reloads; READY=1 ends it")
_rule((S.STARTING, S.RELOADING, S.STOPPING), (E.RELOADING,), _ignore, (S.STARTING, S.RELOADING, S.STOPPING),
      "not meaningful here: ignored")
_rule((S.STARTING,), (E.READY_TIMEOUT,), _ready_timeout, (S.STOPPING,),
      "not ready in time: stop it; its exit is a failed start (backoff, start limit)")
_rule((S.STARTING, S.RUNNING, S.RELOADING), (E.FAIL,), _fail, (S.STOPPING,),
      "failing (health, watchdog, memory): stop it; its exit goes through the restart policy")
_rule((S.STARTING, S.RUNNING, S.RELOADING), (E.EXIT,), _exit, (S.EXITED, S.BACKOFF, S.FAILED),
      "apply the restart policy; a run shorter than min_uptime, or never ready, is a failed start")
_rule((S.STARTING, S.RUNNING, S.RELOADING), (E.START,), _ignore, (S.STARTING, S.RUNNING, S.RELOADING), "already up")
_rule((S.STARTING, S.RUNNING, S.RELOADING), (E.STOP,), _stop, (S.STOPPING,), "stop_signal, arm stop_timeout")
_rule((S.STARTING, S.RUNNING, S.RELOADING), (E.RESTART,), _restart, (S.STOPPING,), "stop, then start again")
_rule((S.STARTING, S.RUNNING, S.RELOADING, S.STOPPING), (E.KILL,), _kill, (S.STOPPING,), "SIGKILL the tree now")
_rule((S.STARTING, S.RUNNING, S.RELOADING, S.STOPPING), (E.MAINPID,), _mainpid,
      (S.STARTING, S.RUNNING, S.RELOADING, S.STOPPING), "stop and signals now go to the new main pid")
_rule((S.STARTING, S.STOPPING), (E.EXTEND,), _extend, (S.STARTING, S.STOPPING), "push the ready or stop deadline")
_rule((S.RUNNING, S.RELOADING), (E.EXTEND,), _ignore, (S.RUNNING, S.RELOADING), "no deadline to extend")
_rule(tuple(State), (E.HEALTH,), _health, tuple(State), "record the health verdict (an event when it changes)")
_rule(tuple(s for s in State if s is not S.STARTING), (E.READY_TIMEOUT,), _ignore, tuple(s for s in State if s is not S.STARTING),
      "a late timer: ignored")
_rule((S.STOPPING,) + _IDLE + (S.WAITING, S.BACKOFF), (E.FAIL,), _ignore, (S.STOPPING,) + _IDLE + (S.WAITING, S.BACKOFF),
      "not running: nothing to restart")
_rule(_IDLE + (S.WAITING, S.BACKOFF), (E.RELOADING, E.MAINPID, E.EXTEND), _ignore, _IDLE + (S.WAITING, S.BACKOFF),
      "no process: ignored (a late message)")
_rule((S.BACKOFF,), (E.BACKOFF_DONE,), _backoff_done, (S.WAITING,), "delay over: start again")
_rule((S.BACKOFF,), (E.START, E.RESTART), _want_up, (S.WAITING,), "skip the rest of the delay")
_rule((S.BACKOFF,), (E.STOP, E.KILL), _want_down_idle, (S.STOPPED,), "cancel the restart")
_rule((S.STOPPING,), (E.EXIT,), _stopping_exit, (S.STOPPED, S.WAITING), "stopped (or start again after a restart)")
_rule((S.STOPPING,), (E.STOP_TIMEOUT,), _stop_timeout, (S.STOPPING,), "SIGKILL the tree")
_rule((S.STOPPING,), (E.START, E.RESTART), _stopping_start, (S.STOPPING,), "start again once stopped")
_rule((S.STOPPING,), (E.STOP,), _stopping_stop, (S.STOPPING,), "stay down once stopped")
