"""What the core asks the runtime to do: typed effects, with enums for every choice.

The core never performs I/O; `step()` returns these and the runtime's effect runner
carries them out in order. Each effect names the instance it is about (`name`), so the
runner needs no other context. Enums replace the strings the runtime used to parse:
`Scope` (which processes a signal reaches), `TimerKind` (which deadline), `Check` (which
measurement), `Kind` (which journal event).
"""

from __future__ import annotations

import enum
import signal as _signal
from collections.abc import Mapping
from dataclasses import dataclass, field


class Scope(enum.Enum):
    """Which processes a signal reaches."""

    MAIN = "main"      # the main process only
    GROUP = "group"    # its process group
    TREE = "tree"      # everything the instance started: its cgroup, else group + descendants + cookie


class TimerKind(enum.Enum):
    BACKOFF = "backoff"     # restart delay elapsed
    STOP = "stop"           # stop_timeout elapsed: SIGKILL
    READY = "ready"         # ready.timeout elapsed: a failed start
    RETRY = "retry"         # ready.interval elapsed: the next readiness attempt
    PROBE = "probe"         # health.interval elapsed: the next liveness probe
    WATCHDOG = "watchdog"   # no WATCHDOG=1 in time
    MEMORY = "memory"       # limits.memory_check_interval elapsed: sample the RSS
    SHUTDOWN = "shutdown"   # herder.shutdown_timeout elapsed during `down`
    JOB = "job"             # an operator job's deadline (the wait of start/stop/restart, a reload)
    HOOK = "hook"           # a hook's timeout (or the grace after it was asked to stop): SIGKILL it
    SCHEDULE = "schedule"   # a service's `schedule` is due (owner "@service")
    RESTART_SCHEDULE = "restart_schedule"   # a service's `restart_schedule` is due (owner "@service")


class HookKind(enum.StrEnum):
    """The hooks of a service (config [services.NAME.hooks])."""

    PRE_START = "pre_start"
    POST_START = "post_start"
    PRE_STOP = "pre_stop"
    POST_STOP = "post_stop"


@dataclass(frozen=True, order=True)
class TimerKey:
    """A deadline's identity: (kind, owner). `owner` is an instance name, "" for the
    supervisor, "#<job id>" for an operator job, or "@<service>" for a service's calendar."""

    kind: TimerKind
    owner: str = ""


class Check(enum.Enum):
    """A measurement the runtime makes when asked (its result comes back as CheckDone)."""

    READY = "ready"     # one attempt of the readiness check (http, tcp, exec)
    HEALTH = "health"   # one liveness probe (http, tcp, exec)


class Kind(enum.StrEnum):
    """Kinds of the events the core publishes (the journal's `kind` column)."""

    STATE = "state"
    SPAWN = "spawn"
    SPAWN_FAILED = "spawn_failed"
    EXIT = "exit"
    RESTART = "restart"
    FAILED = "failed"
    FAILING = "failing"
    STOP_TIMEOUT = "stop_timeout"
    HEALTH = "health"
    MAINPID = "mainpid"
    EXTEND = "extend"
    WAITING = "waiting"
    BIND = "bind"
    READY_CHECK = "ready_check"
    STATUS = "status"
    NOTIFY_STOPPING = "notify_stopping"
    NOTIFY_WARNING = "notify_warning"
    ERRNO = "errno"
    ROLLING = "rolling"
    ADOPTED = "adopted"
    HOOK = "hook"
    SCHEDULE = "schedule"
    RESTART_PREVENTED = "restart_prevented"
    SUPERVISOR = "supervisor"
    CRITICAL = "critical"       # a critical service failed for good: herder stops and exits (core.critical)
    BUG = "bug"


# ---- effects -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Spawn:
    """Start the instance's process. `watch_log`: a pattern its output lines are matched
    against from the first byte on (ready.log); a match comes back as LogMatched(run)."""

    name: str
    run: int
    watch_log: str | None = None


@dataclass(frozen=True)
class Signal:
    name: str
    signal: _signal.Signals
    scope: Scope


@dataclass(frozen=True)
class Kill:
    """SIGKILL (or the platform's hard stop) to the scope."""

    name: str
    scope: Scope


@dataclass(frozen=True)
class KillLeftovers:
    """SIGKILL whatever the exited main process left behind in its group or tree."""

    name: str


@dataclass(frozen=True)
class ArmTimer:
    """Fire TimerFired(key, at) once the clock reaches `at`; replaces an armed timer of the key."""

    key: TimerKey
    at: float


@dataclass(frozen=True)
class CancelTimer:
    key: TimerKey


JSON = str | int | float | bool | None | list["JSON"] | dict[str, "JSON"]


@dataclass(frozen=True)
class Publish:
    """An event for the journal, the console and the API streams ("" = the supervisor)."""

    name: str
    kind: Kind
    message: str
    data: Mapping[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True)
class RunCheck:
    """Make one attempt of a check; the answer comes back as CheckDone(name, check, run)."""

    name: str
    check: Check
    run: int


@dataclass(frozen=True)
class CancelChecks:
    """Abandon the instance's checks in flight and its log watch (their run is over)."""

    name: str


@dataclass(frozen=True)
class SampleMemory:
    """Measure the RSS of the instance's tree; the answer comes back as MemorySampled(run)."""

    name: str
    run: int


@dataclass(frozen=True)
class MovePid:
    """MAINPID=: `new` is the main process now; `old` is reaped quietly. `watch`: `new` is
    not herder's child, so its end must be learnt another way (a pidfd)."""

    name: str
    old: int
    new: int
    watch: bool


@dataclass(frozen=True)
class DropInstance:
    """A reload removed the (idle) instance: forget its process record and cgroup."""

    name: str


@dataclass(frozen=True)
class Reply:
    """The answer to an operator job (`ticket` came with its command)."""

    ticket: int
    ok: bool
    message: str = ""
    problems: tuple[str, ...] = ()
    reached: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunHook:
    """Run the instance's hook `hook` (its command from the instance's spec) for run `run`;
    its end comes back as HookDone(name, hook, run, …)."""

    name: str
    hook: HookKind
    run: int


@dataclass(frozen=True)
class StopHook:
    """Send `signal` to the process group of the instance's running hook."""

    name: str
    signal: _signal.Signals


@dataclass(frozen=True)
class RecordRun:
    """Remember (in the state dir) that `service`'s schedule ran at wall-clock time `wall`,
    so runs missed while herder is down can be told at its next start."""

    service: str
    wall: float


@dataclass(frozen=True)
class Finished:
    """`down` is complete: every instance is idle. The supervisor may exit with `exit_code`;
    `reason` says why when that is not a plain stop (a critical service failed for good)."""

    exit_code: int
    reason: str = ""


Effect = (Spawn | Signal | Kill | KillLeftovers | ArmTimer | CancelTimer | Publish | RunCheck | CancelChecks
          | SampleMemory | MovePid | DropInstance | Reply | RunHook | StopHook | RecordRun | Finished)
