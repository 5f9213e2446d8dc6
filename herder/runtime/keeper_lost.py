"""The keeper died (kill -9): this decision process becomes the keeper, and the services
never notice.

What it holds for exactly this moment: a copy of every pipe's read end (so no service
writing to stdout got EPIPE or SIGPIPE), the lock, the API and notify sockets, the World
and the table of live processes. It writes them into a keeper's resume record
(herder.keeper.resume) and execs `python -m herder.keeper --resume`: same pid (the lock's
holder is now this pid), same fds. The new keeper reads the pipes again and starts a new
decision process, which adopts everything with the state carried over.

What is lost, and said: the services' parent is gone, so they were re-parented to init
(or to the nearest subreaper); the new keeper follows them by pidfd, and an exit is then
reported with its status unknown (restart policy as for a failure); once restarted, an
instance is the keeper's child again. Bytes the dead keeper had read but not yet written
are counted from the shared counters (read − done per instance) and reported
(`log_lost`), never silently dropped.

Under a service manager (systemd), the dead keeper was the unit's main process. The unit
herder installs (systemd >= 250) has ExitType=cgroup, so the unit lives on while its
services run, and NotifyAccess=all: the keeper this process becomes gets the manager's
socket (HERDER_MANAGER_NOTIFY, which the old keeper passed down) and names itself with
MAINPID=, so `systemctl stop` reaches it again (docs/supervisor.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from herder.config import to_record
from herder.core import snapshot
from herder.core.instance import ALIVE, State
from herder.keeper import wire
from herder.keeper.counters import DONE, READ
from herder.units import parse_signal

if TYPE_CHECKING:
    from herder.runtime.supervisor import Supervisor

_BLOCK = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD}


def replace_keeper(sup: Supervisor, services: list[str], socket_group: str | None, console: bool | None,
                   print_events: bool = True) -> None:
    """Exec into a keeper carrying everything on. Returns only if the exec failed."""
    from herder.cli.up import dp_args

    msg = f"herder: the keeper died; this decision process (pid {os.getpid()}) becomes the keeper"
    sup.events.emit("", "keeper_lost", msg)
    print(msg, file=sys.stderr, flush=True)
    for comp in sup.components:    # the events so far (this one too) are on disk before the exec
        journal = getattr(comp, "journal", None)
        if journal is not None:
            journal.close(timeout=5.0)
    record, fds = build(sup, dp_args(str(sup.config.path), services, socket_group, console, print_events),
                         sup.logs.console)
    blob = wire.blob_fd(json.dumps({"record": record, "fds": fds}).encode("utf-8", "surrogateescape"))
    for fd in [blob, *fds]:
        os.set_inheritable(fd, True)
    lock_fd = record.get("lock_fd")
    if isinstance(lock_fd, int) and lock_fd >= 0:
        with contextlib.suppress(OSError):
            os.ftruncate(lock_fd, 0)
            os.pwrite(lock_fd, f"{os.getpid()}\n".encode(), 0)
    manager = os.environ.get("HERDER_MANAGER_NOTIFY")
    if manager:     # the keeper talks to herder's manager (systemd): this process will be the keeper
        os.environ["NOTIFY_SOCKET"] = manager
        wd = os.environ.get("HERDER_UPWARD_WATCHDOG", "")
        with contextlib.suppress(ValueError):
            if wd and float(wd) > 0:
                os.environ["WATCHDOG_USEC"] = str(round(float(wd) * 1_000_000))
                os.environ["WATCHDOG_PID"] = str(os.getpid())
    signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCK)
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(wire.self_exe(), [sys.executable, "-m", "herder.keeper", "--resume", str(blob)])
    except OSError as e:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _BLOCK)
        sup.events.emit("", "keeper_lost", f"herder: cannot exec a new keeper ({e}); stopping every service")
        sup.world.exit_code = 1
        sup.force()


def build(sup: Supervisor, args: list[str], console: str) -> tuple[dict[str, Any], list[int]]:
    """A keeper's resume record from what this decision process knows."""
    fds: list[int] = []

    def add(fd: int) -> int:
        fds.append(fd)
        return len(fds) - 1

    world = sup.world
    children = []
    for name, inst in world.instances.items():
        p = sup.procs.procs.get(name)
        if inst.state not in ALIVE or inst.pid is None or p is None:
            continue
        children.append({"name": name, "run": inst.run, "pid": inst.pid, "start_time": p.start_time,
                         "cookie": p.cookie, "cgroup": str(p.cgroup.path) if p.cgroup is not None else None,
                         "stop_signal": int(parse_signal(inst.spec.stop_signal)),
                         "stop_timeout": inst.spec.stop_timeout,
                         "own": False})
    channels = []
    chan_fds = []
    for name, (run, kept, specs) in sup.logs.pipes.items():
        if len(kept) != len(specs) or not kept:
            continue
        channels.append({"name": name, "run": run, "specs": specs, "carry": []})
        chan_fds += [add(fd) for fd in kept]
    watches = []    # ready.log of instances still starting: the new keeper goes on matching
    for name, inst in world.instances.items():
        if inst.state is State.STARTING and inst.spec.ready.log is not None:
            seen = sup.matched.get(name)
            done = seen is not None and int(seen.get("run", -1)) == inst.run
            watches.append({"name": name, "run": inst.run, "pattern": inst.spec.ready.log, "done": done,
                            "line": str(seen.get("line", "")) if done and seen is not None else ""})
    lost: dict[str, int] = {}
    counters = sup.logs.counters
    if counters is not None:
        for name, (slot, _sinks) in sup.logs.slots.items():
            n = counters.get(slot, READ) - counters.get(slot, DONE)
            if n > 0:
                lost[name] = n
    stored = {name: add(fd) for name, fd in sup.kept_fds.items()}
    lock_fd = sup.kept_fds.get("lock")
    to_cfg = to_record
    record: dict[str, Any] = {
        "v": 1, "why": "keeper_lost", "gen": int(sup.welcome.get("gen", 1)) if sup.welcome else 1,
        "state_dir": str(sup.config.state_dir), "opts": {"dp_args": args, "console": console},
        "children": children, "exits": [],
        "snapshot": {"world": snapshot.world(world, to_cfg),
                     "instances": {n: snapshot.instance(i) for n, i in world.instances.items()}},
        "config": json.dumps(to_cfg(sup.config)), "stored": stored,
        "capture": {"channels": channels, "fds": chan_fds, "rings": {}, "err_tail": {}, "seq": 0, "watches": watches},
        "pending": [], "notes": [], "lost": lost, "retired": [], "orphans_reaped": 0,
        "lock_fd": lock_fd if isinstance(lock_fd, int) else -1,
    }
    return record, fds
