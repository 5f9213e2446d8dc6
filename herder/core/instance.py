"""One instance's record: its observed state, its desired state and its bookkeeping.

Observed state (`State`) and desired state (`Instance.want_up`) are kept apart: an
operator's stop sets want_up = False and the table walks the instance to STOPPED; a
crash does not touch want_up, so the table walks it back up. The record is plain data
owned by the core's World; only the table (herder.core.machine) and the step
(herder.core.step) write it. The runtime reads it to render status.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from herder.config.model import ServiceSpec
from herder.core.effects import HookKind, TimerKind
from herder.core.probe import Tracker


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


ALIVE = frozenset({State.STARTING, State.RUNNING, State.RELOADING, State.STOPPING})   # a process exists
UP = frozenset({State.STARTING, State.RUNNING, State.RELOADING})   # alive and not being stopped
READY_STATES = frozenset({State.RUNNING, State.RELOADING})
IDLE = frozenset({State.STOPPED, State.EXITED, State.FAILED})      # no process and none coming by itself
SETTLED_UP = frozenset({State.RUNNING, State.EXITED, State.FAILED, State.STOPPED})   # a start's outcome


@dataclass(frozen=True)
class Exit:
    code: int | None
    signal: str | None      # the signal's name ("SIGKILL") when a signal ended it

    def __str__(self) -> str:
        return f"signal {self.signal}" if self.signal else f"exit {self.code}"


@dataclass(frozen=True)
class RunEnd:
    """How a run ended, kept while a hook still runs (post_stop, or a pre_stop or post_start
    that outlived the process): what the restart policy then decides on."""

    stopped: bool                   # herder stopped it (an operator, `down`, or as failing)
    ran: float = 0.0                # seconds since the spawn
    exit: Exit | None = None        # None: no process was started (pre_start failed, spawn failed)
    reason: str = ""                # a cause herder saw (oom …), or why the start failed
    never_ready: bool = False       # ended on its own before it was running
    failing: str = ""               # stopped as failing: the FailReason
    was_ready: bool = False

    @property
    def start_failed(self) -> bool:
        return self.exit is None


@dataclass
class Instance:
    """Everything herder decides about one instance."""

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
    healthy: bool | None = None         # None: unknown, or no liveness check configured
    status: str = ""                    # last STATUS= text
    failing: str = ""                   # why herder is stopping it as failed (ready_timeout, health, watchdog, memory)
    was_ready: bool = False             # this run reached ready
    run: int = 0                        # spawn counter: results of an earlier run's checks are stale
    timers: dict[TimerKind, float] = field(default_factory=dict)   # armed deadlines (monotonic)
    probe: Tracker | None = None        # liveness (probe and watchdog) when the spec has any
    hook: HookKind | None = None        # the hook running now (at most one per instance)
    hook_killed: str = ""               # why herder killed the running hook ("timed out after 30s")
    pending: RunEnd | None = None       # the run is over, but a hook still runs: decided when it ends
    killed: bool = False                # forced stop (Kill): no post_stop hook

    @property
    def alive(self) -> bool:
        return self.state in ALIVE

    def settled_up(self) -> bool:
        """Running (ready), or an outcome that will not change by itself."""
        return self.state in SETTLED_UP

    def good_up(self) -> bool:
        """The outcome a start hopes for: running, or a job that completed."""
        return self.state is State.RUNNING or self.completed


def instance_names(service: str, replicas: int) -> list[tuple[str, int | None]]:
    """`web` for one instance; `web.0` … `web.N-1` for replicas."""
    if replicas == 1:
        return [(service, None)]
    return [(f"{service}.{i}", i) for i in range(replicas)]
