"""The keeper died (kill -9): this decision process becomes the keeper, and the services
never notice.

What it holds for exactly this moment: a copy of every pipe's read end (so no service
writing to stdout got EPIPE or SIGPIPE), the lock, the API and notify sockets, the World
and the table of live processes. It writes them into a keeper's resume record
(herder.keeper.resume) and execs `python -m herder.keeper --resume`: same pid (the lock's
holder is now this pid), same fds. The new keeper reads the pipes again and starts a new
decision process, which adopts everything with the state carried over.

When it happens matters (docs/supervisor.md, "What a kill -9 does"): once this process
has adopted, its World says what runs and the record is built from it, with the spawns
still in flight (their pipes' read ends, kept here, and their cookies: the next decision
process looks for a process that carries one before it spawns again, herder.runtime.adopt)
and the exits received but not stepped yet. Before that (the keeper killed while this
process starts up), the World is empty and the record is made of what the keeper handed
over at the handshake (`from_welcome`), even a handshake cut short (herder.runtime.dp):
never from an empty World. And only a keeper that is really dead is replaced: a closed
socket with a live keeper (`KeeperLink.peer_dead`) means this process just exits.

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
from herder.core.instance import ALIVE, State
from herder.keeper import wire
from herder.keeper.counters import CARRIED, DONE, READ, Counters
from herder.keeper.resume import Fds
from herder.units import parse_signal

if TYPE_CHECKING:
    from herder.runtime.supervisor import Supervisor

_BLOCK = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD}


def replace_keeper(sup: Supervisor, services: list[str], socket_group: str | None, console: bool | None,
                   print_events: bool = True) -> None:
    """Exec into a keeper carrying everything on. Returns only if it did not (the keeper
    lives, or the exec failed)."""
    from herder.cli.up import dp_args

    link = sup.link
    if link is not None and not link.peer_dead():
        sup.events.emit("", "keeper_lost", "herder: the keeper closed its connection but is still running; this "
                        f"decision process (pid {os.getpid()}) exits and leaves the services to it")
        sup.handover = True         # exit without touching a service: the keeper starts another one
        sup.world.exit_code = 1
        sup.finish_now()
        return
    msg = f"herder: the keeper died; this decision process (pid {os.getpid()}) becomes the keeper"
    sup.events.emit("", "keeper_lost", msg)
    print(msg, file=sys.stderr, flush=True)
    for comp in sup.components:    # the events so far (this one too) are on disk before the exec
        journal = getattr(comp, "journal", None)
        if journal is not None:
            journal.close(timeout=5.0)
    record, fds = build(sup, dp_args(str(sup.config.path), services, socket_group, console, print_events),
                         sup.logs.console)
    if not sup.adopted:     # this process's journal may not be open yet: the next one says it
        record["notes"].append({"t": "event", "instance": "", "kind": "keeper_lost", "message": msg,
                                "data": {"pid": os.getpid()}})
    try:
        become_keeper(record, fds, link.ready_fd if link is not None else -1)
    except OSError as e:
        sup.events.emit("", "keeper_lost", f"herder: cannot exec a new keeper ({e}); stopping every service")
        sup.world.exit_code = 1
        sup.force()


def become_keeper(record: dict[str, Any], fds: list[int], ready_fd: int = -1) -> None:
    """Exec `python -m herder.keeper --resume` with `record` (same pid, the fds inherited).
    `ready_fd`: `up -d`'s start-up pipe, not answered yet: the new keeper's first decision
    process answers it (`up -d` then reports the start, not "exited during start-up").
    Raises OSError when the exec failed (signals unblocked again)."""
    blob = wire.blob_fd(json.dumps({"record": record, "fds": fds}).encode("utf-8", "surrogateescape"))
    for fd in [blob, *fds, *([ready_fd] if ready_fd >= 0 else [])]:
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
        os.execv(wire.self_exe(), [sys.executable, "-P", "-m", "herder.keeper", "--resume", str(blob),
                                   *(["--ready-fd", str(ready_fd)] if ready_fd >= 0 else [])])
    except OSError:
        if ready_fd >= 0:
            os.set_inheritable(ready_fd, False)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _BLOCK)
        os.close(blob)
        raise


def build(sup: Supervisor, args: list[str], console: str) -> tuple[dict[str, Any], list[int]]:
    """A keeper's resume record from what this decision process knows: its World once it
    has adopted, else what the keeper handed over at the handshake."""
    welcome = sup.welcome or {}
    if not sup.adopted:
        stored = {**{n: fd for n, fd in sup.stored.items()}, **sup.kept_fds}
        pipes = [(name, run, kept, specs) for name, (run, kept, specs) in sup.logs.pipes.items()]
        extra = sup.procs.unstepped_exits() + [m for m, _ in welcome.get("early") or [] if m.get("t") == "exit"]
        return from_welcome(welcome, str(sup.config.state_dir), args, console, pipes, stored, extra,
                            [w for _, w, _ in sup.signals_unstepped.values()],
                            json.dumps(to_record(sup.config)))
    fds = Fds()
    world = sup.world
    exits = sup.procs.unstepped_exits()
    exited = {int(e["pid"]) for e in exits}
    children = []
    for name, inst in world.instances.items():
        p = sup.procs.procs.get(name)
        if inst.state not in ALIVE or inst.pid is None or p is None or inst.pid in exited:
            continue
        children.append({"name": name, "run": inst.run, "pid": inst.pid, "start_time": p.start_time,
                         "cookie": p.cookie, "cgroup": str(p.cgroup.path) if p.cgroup is not None else None,
                         "stop_signal": int(parse_signal(inst.spec.stop_signal)),
                         "stop_timeout": inst.spec.stop_timeout,
                         "own": False})
    pipes = [(name, run, kept, specs) for name, (run, kept, specs) in sup.logs.pipes.items()]
    pipes += [(f.name, f.run, f.outs.keep, f.outs.specs) for f in sup.flights_lost]
    from herder.core import snapshot

    record = _record(
        fds, state_dir=str(sup.config.state_dir), args=args, console=console, gen=int(welcome.get("gen", 1)),
        children=children, exits=exits,
        snapshot={"world": snapshot.world(world, to_record), "instances": {n: sup.inst_record(n)
                                                                             for n in world.instances}},
        config=json.dumps(to_record(sup.config)), stored=sup.kept_fds, pipes=pipes,
        lost=_lost(sup.logs.counters, {n: slot for n, (slot, _) in sup.logs.slots.items()}),
        pending=[w for _, w, _ in sup.signals_unstepped.values()], notes=[], watches=_watches(sup))
    return record, fds.fds


def _watches(sup: Supervisor) -> list[dict[str, Any]]:
    """ready.log watches of instances still starting (a match already made, too): the new
    keeper goes on matching, so the swap never times an instance out."""
    watches = []
    for name, inst in sup.world.instances.items():
        if inst.state is State.STARTING and inst.spec.ready.log is not None:
            seen = sup.matched.get(name)
            done = seen is not None and int(seen.get("run", -1)) == inst.run
            watches.append({"name": name, "run": inst.run, "pattern": inst.spec.ready.log, "done": done,
                            "line": str(seen.get("line", "")) if done and seen is not None else ""})
    return watches


def from_welcome(welcome: dict[str, Any], state_dir: str, args: list[str], console: str,
                 pipes: list[tuple[str, int, list[int], list[dict[str, Any]]]], stored: dict[str, int],
                 extra_exits: list[dict[str, Any]], pending: list[str],
                 config: str | None = None) -> tuple[dict[str, Any], list[int]]:
    """The record when the keeper died before this process adopted anything: what the
    keeper's welcome said (its state record, its children, their unacknowledged exits,
    its pending signals and notes), the pipes and fds it handed over. Its children were
    its own; now they are orphans, followed by pidfd."""
    fds = Fds()
    exits: dict[int, dict[str, Any]] = {}
    for e in [*(welcome.get("exits") or []), *extra_exits]:
        exits[int(e["seq"])] = e
    children = [{**c, "own": False} for c in welcome.get("children") or []]
    counters: Counters | None = None
    if isinstance(welcome.get("counters_fd"), int):
        with contextlib.suppress(OSError, ValueError):
            counters = Counters(int(welcome["counters_fd"]), writable=False)
    slots = {k[2:]: int(v) for k, v in (welcome.get("slots") or {}).items() if str(k).startswith("i:")}
    record = _record(
        fds, state_dir=state_dir, args=args, console=console, gen=int(welcome.get("gen", 1)), children=children,
        exits=[exits[s] for s in sorted(exits)], snapshot=welcome.get("snapshot"),
        config=welcome.get("config") if isinstance(welcome.get("config"), str) else config, stored=stored,
        pipes=pipes, lost={**(welcome.get("lost") or {}), **_lost(counters, slots)},
        pending=[*(str(p[1]) if isinstance(p, list) else str(p) for p in welcome.get("pending") or []), *pending],
        notes=list(welcome.get("notes") or []))
    return record, fds.fds


def _record(fds: Fds, *, state_dir: str, args: list[str], console: str, gen: int, children: list[dict[str, Any]],
            exits: list[dict[str, Any]], snapshot: dict[str, Any] | None, config: str | None,
            stored: dict[str, int], pipes: list[tuple[str, int, list[int], list[dict[str, Any]]]],
            lost: dict[str, int], pending: list[str], notes: list[dict[str, Any]],
            watches: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    watches = watches or []
    channels = []
    chan_fds = []
    for name, run, kept, specs in pipes:
        if len(kept) != len(specs) or not kept:
            continue
        channels.append({"name": name, "run": run, "specs": specs, "carry": []})
        chan_fds += [fds.add(fd) for fd in kept]
    lock_fd = stored.get("lock")
    return {
        "v": 1, "why": "keeper_lost", "gen": gen, "state_dir": state_dir,
        "opts": {"dp_args": args, "console": console}, "children": children, "exits": exits,
        "snapshot": snapshot or {"world": None, "instances": {}}, "config": config,
        "stored": {name: fds.add(fd) for name, fd in stored.items()},
        "capture": {"channels": channels, "fds": chan_fds, "rings": {}, "err_tail": {}, "seq": 0,
                    "watches": watches},
        "pending": pending, "notes": notes, "lost": lost, "retired": [], "orphans_reaped": 0,
        "lock_fd": lock_fd if isinstance(lock_fd, int) else -1,
    }


def _lost(counters: Counters | None, slots: dict[str, int]) -> dict[str, int]:
    """Bytes a dead keeper had read but not written, per instance: read - done, and the
    unfinished lines it held back (CARRIED), from the shared counters."""
    lost: dict[str, int] = {}
    if counters is None:
        return lost
    for name, slot in slots.items():
        n = counters.get(slot, READ) - counters.get(slot, DONE) + counters.get(slot, CARRIED)
        if n > 0:
            lost[name] = n
    return lost
