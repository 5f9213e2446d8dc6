"""A keeper's whole state as one record, so a new keeper can carry on where an old one stopped.

Three ways a keeper's state changes hands, one format for all:

- `herder upgrade`: the keeper execs the installed version of itself (systemd's
  daemon-reexec shape; herder.keeper.upgrade). execve keeps its pid, so every service stays its child (their
  exits, even during the exec, are reaped afterwards with their status), and every fd
  without close-on-exec: the pipes, the stored sockets, the lock, the shared counters.
  Before the exec the pump stops reading and the writer writes all it read
  (`Capture.pause`), and each stream's unfinished line travels in the record, so
  not a byte is lost or written twice.
- the keeper was killed: the decision process, which holds a copy of every pipe's read
  end and knows every instance, writes the same record and execs itself into a keeper
  (herder.runtime.keeper_lost). The services are then children of init, followed by pidfd.
- (not built) the service manager restarted herder while a keeper still runs (systemd
  after `systemctl kill --kill-who=main`): the running keeper would send the record and
  its fds over a socket to the new one; see docs/supervisor.md, "Limits".

Fds are referred to by their index in the list that travels with the record (inherited
fd numbers after an exec, SCM_RIGHTS over a socket).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import TYPE_CHECKING, Any

from herder.keeper import wire
from herder.keeper.children import Child
from herder.keeper.counters import Counters

if TYPE_CHECKING:
    from herder.keeper.keeper import Keeper

VERSION = 1                # the record this keeper writes
ACCEPTS = frozenset({1})   # the records it reads (`--can-resume V` and the trampoline check this)


class Fds:
    """An fd list a record refers to by index."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def add(self, fd: int) -> int:
        self.fds.append(fd)
        return len(self.fds) - 1


def build(k: Keeper, why: str, own: bool) -> tuple[dict[str, Any], list[int]]:
    """The record of a quiesced keeper (`own`: its children stay its children: an exec)."""
    fds = Fds()
    cap, cap_fds = k.capture.export()
    cap["fds"] = [fds.add(fd) for fd in cap_fds]
    children = []
    for child in k.children.by_pid.values():
        rec = child.record()
        rec["own"] = child.own and own
        children.append(rec)
    rec_: dict[str, Any] = {
        "v": VERSION, "why": why, "gen": k.gen, "state_dir": k.state_dir,
        "opts": {"dp_args": k.opts.dp_args, "console": k.opts.console},
        "children": children, "exits": k._unacked(), "snapshot": {"world": k.snap_world, "instances": k.snap_inst},
        "config": k.config_text, "stored": {n: fds.add(fd) for n, fd in k.stored.items()}, "capture": cap,
        "counters": fds.add(k.counters.fd), "slots": k.counters.slots, "notes": k.notes,
        "pending": [k.forwarded[i] for i in sorted(k.forwarded)] + k.pending,   # unacknowledged ones too
        "lost": k.lost, "retired": sorted(k.children.retired), "orphans_reaped": k.children.orphans_reaped,
    }
    return rec_, fds.fds


def read(fd: int) -> dict[str, Any]:
    """The record and its fd list, as an exec'ing keeper left them in a memfd (closed here)."""
    raw: dict[str, Any] = json.loads(wire.read_blob(fd).decode("utf-8", "surrogateescape"))
    os.close(fd)
    return raw


def load(k: Keeper, raw: dict[str, Any]) -> None:
    """Become the keeper a record describes (after an exec, fds are inherited by number)."""
    v = int(raw["record"].get("v", 0))
    if v not in ACCEPTS:
        raise ValueError(f"a keeper record of version {v} (this keeper reads {sorted(ACCEPTS)})")
    apply(k, raw["record"], [int(x) for x in raw["fds"]])


def apply(k: Keeper, rec: dict[str, Any], fds: list[int]) -> None:
    for f in fds:
        with contextlib.suppress(OSError):
            os.set_inheritable(f, False)
    k.why = str(rec.get("why", "resume"))
    k.gen = int(rec.get("gen", 0))
    k.state_dir = rec.get("state_dir")
    opts = rec.get("opts") or {}
    if opts.get("dp_args") and not k.opts.dp_args:
        k.opts.dp_args = [str(x) for x in opts["dp_args"]]
    was = opts.get("console")
    if k.opts.console == "off" and was not in (None, False, "off"):
        k.opts.console = "view" if was is True else str(was)
    if rec.get("counters") is not None:      # an exec of a keeper: the same counters go on
        k.counters.close()
        k.counters = Counters(fds[int(rec["counters"])])
        k.counters.slots = {str(a): int(b) for a, b in (rec.get("slots") or {}).items()}
        k.capture.counters = k.counters
        k.capture.pump.counters = k.counters
    snap = rec.get("snapshot") or {}
    k.snap_world = snap.get("world")
    k.snap_inst = dict(snap.get("instances") or {})
    k.config_text = rec.get("config")
    k.stored = {str(n): fds[int(i)] for n, i in (rec.get("stored") or {}).items()}
    k.pending = list(rec.get("pending") or [])
    k.notes = list(rec.get("notes") or [])
    k.lost = dict(rec.get("lost") or {})
    k.children.retired = {int(p) for p in rec.get("retired") or []}
    k.children.orphans_reaped = int(rec.get("orphans_reaped", 0))
    with k._exit_lock:
        for e in rec.get("exits") or []:
            k.exits[int(e["seq"])] = e
    k.bump_seq(max(k.exits, default=0))
    cap = rec.get("capture") or {}
    k.capture.restore(cap, [fds[int(i)] for i in cap.get("fds", [])])
    for raw in rec.get("children") or []:
        child = Child.of(raw)
        if raw.get("own", False) and child.pid > 0:
            k.children.by_pid[child.pid] = child
        else:
            k.follow_foreign(child)
