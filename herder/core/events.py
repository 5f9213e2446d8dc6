"""What the core is told: one frozen dataclass per kind of event, with typed fields.

Two groups:

- **instance events** (`InstanceEvent`) are the columns of the instance table
  (herder.core.machine): what can happen to one instance. The step produces most of
  them itself from the inputs below (a TimerFired of kind BACKOFF becomes BackoffDone, a
  passing readiness check becomes Ready, an operator's ordered stop becomes Stop once the
  instance's dependents are down); the runtime posts Spawned, SpawnFailed and Exited.
- **inputs** are what adapters turn I/O into: operator commands, timers, check results,
  sd_notify datagrams, log lines, memory samples, `up`, `down`, Ctrl+C, reload.

Everything the runtime posts goes through `herder.core.step.step`; nothing else decides.
New kinds of input (hook completions, schedules) are new classes here plus a branch in
the step; the instance table grows a column only when the instance's own state machine
must answer them, as it does for adoption after a herder restart (`Found`).
"""

from __future__ import annotations

import enum
import signal as _signal
from dataclasses import dataclass
from typing import ClassVar

from herder.config import Config
from herder.core.effects import Check, HookKind, TimerKey
from herder.core.plan import Plan


class FailReason(enum.StrEnum):
    """Why herder stops an instance as failing (the `failing` event's reason)."""

    READY_TIMEOUT = "ready_timeout"
    HEALTH = "health"
    WATCHDOG = "watchdog"
    MEMORY = "memory"
    HOOK = "hook"             # post_start failed


class SpawnCause(enum.Enum):
    """Whose fault a failed spawn is. PROGRAM: the command cannot run (a missing file, no
    permission, an unknown account): a failed start. HERDER is reserved for herder's own
    exhaustion (EMFILE, ENFILE, ENOMEM), which will be retried without counting against
    the start limit (issue 13); the runtime does not report it yet."""

    PROGRAM = "program"
    HERDER = "herder"


class Verb(enum.Enum):
    START = "start"
    STOP = "stop"
    RESTART = "restart"


# ---- instance events: the columns of the table --------------------------------------------

@dataclass(frozen=True)
class OneInstance:
    """Base of the instance events: each is about the instance `name`."""

    label: ClassVar[str] = ""
    name: str


@dataclass(frozen=True)
class Start(OneInstance):
    """Wanted up (operator, `up`): wait for dependencies, then spawn."""

    label: ClassVar[str] = "start"


@dataclass(frozen=True)
class Stop(OneInstance):
    """Wanted down: stop_signal, then SIGKILL after stop_timeout."""

    label: ClassVar[str] = "stop"


@dataclass(frozen=True)
class Restart(OneInstance):
    """Stop if running, then start again."""

    label: ClassVar[str] = "restart"


@dataclass(frozen=True)
class Kill(OneInstance):
    """Forced shutdown: SIGKILL now."""

    label: ClassVar[str] = "kill"


@dataclass(frozen=True)
class DepsMet(OneInstance):
    """Every dependency meets its condition (decided by the step's reconcile)."""

    label: ClassVar[str] = "deps_met"


@dataclass(frozen=True)
class Spawned(OneInstance):
    """The process exists."""

    label: ClassVar[str] = "spawned"
    pid: int


@dataclass(frozen=True)
class SpawnFailed(OneInstance):
    """The process could not be started; `error` is the OS's reason."""

    label: ClassVar[str] = "spawn_failed"
    error: str
    cause: SpawnCause = SpawnCause.PROGRAM


@dataclass(frozen=True)
class Ready(OneInstance):
    """Readiness reached (READY=1, a passing check, a matching log line)."""

    label: ClassVar[str] = "ready"


@dataclass(frozen=True)
class Exited(OneInstance):
    """The main process `pid` ended. `signal` is the name of the signal that ended it;
    `reason` names a cause herder detected (oom, or an exit whose status is unknown).
    `away`: it ended while no decision process was running (found at adoption)."""

    label: ClassVar[str] = "exit"
    pid: int | None
    code: int | None
    signal: str | None = None
    reason: str = ""
    away: bool = False


@dataclass(frozen=True)
class Found(OneInstance):
    """Adoption (a decision process started while services ran: after a crash of the
    previous one, an upgrade, or a keeper that was killed): what the system says of this
    instance. `pid` is its live main process, or None when none exists. The table
    answers: a live process is kept (adopted), or stopped when it is not wanted; a start
    interrupted before its process existed is carried out. `planned`: the previous
    decision process handed over on purpose (`herder upgrade`), not a crash (the `adopted`
    alert condition is for crashes)."""

    label: ClassVar[str] = "found"
    pid: int | None
    planned: bool = False


@dataclass(frozen=True)
class BackoffDone(OneInstance):
    label: ClassVar[str] = "backoff_done"


@dataclass(frozen=True)
class StopTimeout(OneInstance):
    label: ClassVar[str] = "stop_timeout"


@dataclass(frozen=True)
class ReadyTimeout(OneInstance):
    label: ClassVar[str] = "ready_timeout"


@dataclass(frozen=True)
class Reloading(OneInstance):
    """The program sent RELOADING=1."""

    label: ClassVar[str] = "reloading"


@dataclass(frozen=True)
class Fail(OneInstance):
    """herder judged the process failing: stop it; its exit goes through the restart policy."""

    label: ClassVar[str] = "fail"
    reason: FailReason
    message: str = ""


@dataclass(frozen=True)
class HealthChanged(OneInstance):
    """The combined liveness verdict changed (None: unknown)."""

    label: ClassVar[str] = "health"
    healthy: bool | None
    reason: FailReason = FailReason.HEALTH
    message: str = ""


@dataclass(frozen=True)
class MainPid(OneInstance):
    """The program named another main process (already checked to be its own)."""

    label: ClassVar[str] = "mainpid"
    pid: int


@dataclass(frozen=True)
class Extend(OneInstance):
    """EXTEND_TIMEOUT_USEC=: the ready or stop deadline becomes at least now + seconds."""

    label: ClassVar[str] = "extend"
    seconds: float


@dataclass(frozen=True)
class HookDone(OneInstance):
    """The hook `hook` of run `run` ended: `code` (exit status), or `signal` (its name), or
    `error` (it could not be started: the OS's reason). `seconds`: how long it ran."""

    label: ClassVar[str] = "hook_done"
    hook: HookKind
    run: int
    code: int | None
    signal: str | None = None
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.error


InstanceEvent = (Start | Stop | Restart | Kill | DepsMet | Spawned | SpawnFailed | Ready | Exited | BackoffDone
                 | StopTimeout | ReadyTimeout | Reloading | Fail | HealthChanged | MainPid | Extend | Found
                 | HookDone)
INSTANCE_EVENTS: tuple[type[InstanceEvent], ...] = (
    Start, Stop, Restart, Kill, DepsMet, Spawned, SpawnFailed, Ready, Exited, BackoffDone, StopTimeout, ReadyTimeout,
    Reloading, Fail, HealthChanged, MainPid, Extend, Found, HookDone)


# ---- inputs: what the adapters post ------------------------------------------------------

@dataclass(frozen=True)
class Up:
    """`herder up [SERVICE…]`: start the named services and what they depend on, or every
    autostart service that is not held down by an operator."""

    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class Held:
    """The instances an operator stopped by hand (kept across herder restarts)."""

    names: frozenset[str]


@dataclass(frozen=True)
class Command:
    """An operator's start / stop / restart of instances, as one job. A reply (effect
    Reply) is sent for a non-zero `ticket` when the job is done or `timeout` (> 0) passed."""

    verb: Verb
    names: tuple[str, ...]
    ticket: int = 0
    timeout: float = 0.0


@dataclass(frozen=True)
class SendSignal:
    """`herder signal`: `signal` to each live instance's main process (or tree)."""

    names: tuple[str, ...]
    signal: _signal.Signals
    tree: bool = False
    ticket: int = 0


@dataclass(frozen=True)
class Down:
    """Stop everything in reverse dependency order, then finish (SIGTERM, API, first Ctrl+C)."""


@dataclass(frozen=True)
class Interrupt:
    """Ctrl+C: the first is Down, the next Force."""


@dataclass(frozen=True)
class Force:
    """SIGKILL to everything left now; the exit code becomes 1."""


@dataclass(frozen=True)
class TimerFired:
    """The clock reached the deadline `at` armed for `key` (stale ones are ignored)."""

    key: TimerKey
    at: float


@dataclass(frozen=True)
class CheckDone:
    name: str
    check: Check
    run: int
    ok: bool
    why: str


@dataclass(frozen=True)
class LogMatched:
    """A line of run `run`'s output matched ready.log."""

    name: str
    run: int
    line: str


@dataclass(frozen=True)
class MemorySampled:
    name: str
    run: int
    rss: int


@dataclass(frozen=True)
class WallClock:
    """What the wall clock reads: wall = monotonic + `offset`. Posted at start (with
    `last`: each scheduled service's last run, wall-clock, from the state dir) and again
    whenever the runtime sees the wall clock stepped against the monotonic one (NTP, a
    resume from suspend), so schedules follow the wall clock (herder.core.calendar)."""

    offset: float
    last: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Reconfigure:
    """Apply a reload `plan` (herder.core.plan.diff of the running config and `config`)."""

    config: Config
    plan: Plan
    ticket: int = 0


# ---- sd_notify messages, as the notify adapter hands them over -----------------------------

@dataclass(frozen=True)
class NotifyReady:
    pass


@dataclass(frozen=True)
class NotifyStatus:
    text: str


@dataclass(frozen=True)
class NotifyMainPid:
    """MAINPID=pid. `owned`: pid is the main process or one of its descendants (the
    adapter asked /proc). `foreign`: its parent is not herder (herder cannot reap it)."""

    pid: int
    owned: bool
    foreign: bool


@dataclass(frozen=True)
class NotifyReloading:
    pass


@dataclass(frozen=True)
class NotifyStopping:
    pass


@dataclass(frozen=True)
class NotifyWatchdog:
    trigger: bool = False    # WATCHDOG=trigger: expire now


@dataclass(frozen=True)
class NotifyExtend:
    seconds: float


@dataclass(frozen=True)
class NotifyErrno:
    errno: int
    text: str                # the OS's name for it ("No such file or directory")


Notice = (NotifyReady | NotifyStatus | NotifyMainPid | NotifyReloading | NotifyStopping | NotifyWatchdog
          | NotifyExtend | NotifyErrno)


@dataclass(frozen=True)
class Notified:
    """One sd_notify datagram from (a process of) instance `name`, in order."""

    name: str
    notices: tuple[Notice, ...]


Input = (Up | Held | Command | SendSignal | Down | Interrupt | Force | TimerFired | CheckDone | LogMatched
         | MemorySampled | Reconfigure | Notified | WallClock)
Event = InstanceEvent | Input
