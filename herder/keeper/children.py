"""The keeper's children: starting instances, reaping them, following those it did not fork.

The keeper is every service's parent (and a child subreaper, so their orphans come back
to it too): a service's exit is reaped here with its status, whether or not a decision
process is connected at that moment; the record waits (`Keeper.exits`) until one has
taken it. Each child is known from the instant of its fork: it carries its instance's
cookie (HERDER_INSTANCE_ID) in its environment from exec on, and it is placed in its
instance's cgroup (created before the fork) right after it, so even a keeper killed in
between leaves a record the next herder reads (herder.runtime.adopt).

Processes the keeper did not fork (instances a dead keeper left behind, now children of
init; a MAINPID= hand-over to a process whose parent lives) are followed through a
pidfd: readable when the process ends; its status is not ours to know.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from herder.process import tree
from herder.process.cgroup import Cgroup, Cgroups
from herder.process.spawn import Launch, spawn


@dataclass
class Child:
    """One instance's main process, as the keeper knows it."""

    name: str
    run: int
    pid: int
    start_time: int | None
    cookie: str
    cgroup: str | None = None
    stop_signal: int = int(signal.SIGTERM)
    stop_timeout: float = 10.0
    own: bool = True               # the keeper forked it (or inherited it across an exec): status known
    pidfd: int = field(default=-1, repr=False)

    def record(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("pidfd")
        return d

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Child:
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw and k != "pidfd"}
        return cls(**known)


class Children:
    def __init__(self) -> None:
        self.by_pid: dict[int, Child] = {}
        self.retired: set[int] = set()      # former main pids after MAINPID= (reaped quietly)
        self.recent: dict[int, Child] = {}  # the last children reaped (a MAINPID= may name their successor late)
        self.orphans_reaped = 0

    # ---- starting ---------------------------------------------------------------------------

    def spawn(self, name: str, run: int, launch: Launch, stdout: Any, stderr: Any, cgroup: str | None,
              cookie: str, stop_signal: int, stop_timeout: float) -> Child:
        """Fork and exec; raises herder.errors.SpawnError with the OS's reason."""
        cg = None
        if cgroup is not None:
            with contextlib.suppress(OSError):
                Path(cgroup).mkdir(exist_ok=True)
                cg = Cgroup(Path(cgroup))
        popen = spawn(launch, stdout, stderr)
        popen.returncode = 0     # the keeper's reaper owns this pid: Popen must never waitpid() it
        if cg is not None:
            Cgroups.adopt(cg, popen.pid)
        child = Child(name, run, popen.pid, tree.start_time(popen.pid), cookie, cgroup if cg else None,
                      stop_signal, stop_timeout)
        self.by_pid[child.pid] = child
        return child

    # ---- ending -----------------------------------------------------------------------------

    def reap(self) -> list[tuple[int, int, Child | None]]:
        """Every exited child: (pid, exit code as waitstatus_to_exitcode gives it, its Child)."""
        out = []
        for pid, code in tree.reaped():
            child = self.by_pid.pop(pid, None)
            if child is None:
                if pid in self.retired:
                    self.retired.discard(pid)
                else:
                    self.orphans_reaped += 1
            else:
                if child.pidfd >= 0:
                    os.close(child.pidfd)
                    child.pidfd = -1
                self.recent[pid] = child
                if len(self.recent) > 256:
                    del self.recent[next(iter(self.recent))]
            out.append((pid, code, child))
        return out

    def watch(self, child: Child) -> int:
        """A pidfd for a process the keeper cannot reap (-1: gone, or no pidfd here).

        The pidfd is opened first, then the process is checked against the record: its
        start time, and its cookie when one can be read (a process that rewrote its
        environment shows none). Checked after the open, a pid reused by a stranger in
        between cannot slip through: a mismatch is the recorded process gone (status
        unknown), never a stranger followed and later signalled."""
        self.by_pid[child.pid] = child
        child.own = False
        try:
            child.pidfd = os.pidfd_open(child.pid)
        except (OSError, AttributeError):
            child.pidfd = -1
            return -1
        seen = tree.cookie(child.pid)
        if (child.start_time is not None and tree.start_time(child.pid) != child.start_time) or \
                (child.cookie and seen is not None and seen != child.cookie):
            os.close(child.pidfd)
            child.pidfd = -1
        return child.pidfd

    def gone(self, pid: int) -> Child | None:
        """A watched process's pidfd became readable: it ended (unless it is our own zombie)."""
        child = self.by_pid.get(pid)
        if child is None:
            return None
        if tree.ppid(pid) == os.getpid():
            return None              # it became our child after all: the reaper will have its status
        del self.by_pid[pid]
        if child.pidfd >= 0:
            os.close(child.pidfd)
            child.pidfd = -1
        return child

    def move(self, name: str, old: int, new: int) -> Child | None:
        """MAINPID=: `new` is the instance's main process now; `old` will be reaped quietly.

        `old` may be gone already (a daemon's parent exits as soon as its child announced
        itself; its exit was reported, and the core ignores it once the pid moved): the
        record is taken from the recently reaped, so `new` is followed all the same."""
        child = self.by_pid.pop(old, None)
        if child is not None:
            self.retired.add(old)
        else:
            child = self.recent.pop(old, None)
            if child is None or child.name != name:
                return None
        if child.pidfd >= 0:
            os.close(child.pidfd)
            child.pidfd = -1
        child.pid, child.start_time = new, tree.start_time(new)
        self.by_pid[new] = child
        if tree.ppid(new) != os.getpid():
            self.watch(child)
        else:
            child.own = True
        return child

    def of(self, name: str) -> Child | None:
        return next((c for c in self.by_pid.values() if c.name == name), None)

    # ---- the last resort ----------------------------------------------------------------------

    def signal_all(self, signum: int) -> None:
        """Every instance's tree: its cgroup, else its group and cookie holders."""
        for child in list(self.by_pid.values()):
            signal_child(child, signum)

    def records(self) -> list[dict[str, Any]]:
        return [c.record() for c in self.by_pid.values()]


def signal_child(child: Child, signum: int) -> None:
    """One instance's tree: its cgroup, else its process group and its main process."""
    if child.cgroup is not None and Path(child.cgroup).is_dir():
        cg = Cgroup(Path(child.cgroup))
        if signum == signal.SIGKILL:
            cg.kill()
        else:
            cg.signal(signum)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(child.pid, signum)


def exit_words(code: int | None) -> tuple[int | None, str | None]:
    """(exit code, signal name) from waitstatus_to_exitcode's value (None: unknown)."""
    if code is None:
        return None, None
    if code < 0:
        try:
            return None, signal.Signals(-code).name
        except ValueError:
            return None, f"SIG{-code}"
    return code, None


OnExit = Callable[[Child, int | None], None]
