"""Adoption: a decision process that starts while services run takes them over, untouched.

It starts with what the keeper hands it (herder.runtime.handshake): its table of live
children (pid, start time, cookie, cgroup, run), the exit records no decision process
has taken yet (with their status, and the last stderr lines), and the last state record
of the World (herder.core.snapshot). The record says what was decided; the keeper's
table says what exists. Where they disagree, the system wins, and every case goes
through the one pure step as a typed event (herder.core.events.Found / Exited), so the
restart policy, backoff and start limits apply as they would have:

| record says | the keeper says | event |
|---|---|---|
| alive, pid P | P is alive | Found(P): adopted, same pid |
| alive, pid P | P exited with status N | Exited(N, away): the restart policy applies |
| alive, pid P | nothing of P | Exited(status unknown, away) |
| starting, no pid yet | a child of that run | Found(pid): the start went through |
| starting, no pid yet | nothing, but a process carries its cookie | Found(pid): a killed keeper started it |
| starting, no pid yet | nothing at all | Found(None): the spawn is made now |
| not alive | a live child | Found(pid): adopted if wanted up, else stopped |
| (no such instance) | a live child | killed (a process herder does not list) |

With no record at all (the first start on this state_dir, or herder and its keeper were
both killed), what the system says is all there is (`from_system`): run.json, the
instance cgroups and the cookies in /proc name the processes a previous herder left;
those proven herder's (start time and cookie) are adopted, followed by pidfd, and
their pipes are reopened from /proc/PID/fd when still there, so their output is logged
again. Deadlines in the record are re-armed as they were (monotonic time is the
machine's).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from herder.config import from_record
from herder.core import snapshot
from herder.core.effects import HookKind, TimerKey
from herder.core.events import Down, Exited, Found, HookDone, LogMatched, Up
from herder.core.instance import ALIVE, State
from herder.core.world import Phase
from herder.process import tree
from herder.process.cgroup import Cgroup, Cgroups
from herder.runtime.processes import UNKNOWN
from herder.store import runstate
from herder.store.statedir import state_tag

if TYPE_CHECKING:
    from herder.runtime.supervisor import Supervisor


def start(sup: Supervisor, welcome: dict[str, Any], only: Iterable[str] | None, fresh: bool) -> None:
    """Post the adoption events, then (a fresh World) `up`."""
    world = sup.world
    snap = welcome.get("snapshot") or {}
    restored = False
    if snap.get("world") is not None and not fresh:
        problems = snapshot.restore(world, snap["world"], snap.get("instances") or {}, from_record)
        for p in problems:
            sup.events.emit("", "state_problem", f"herder: {p}", {})
        restored = True
        for name, raw in (snap.get("instances") or {}).items():   # the same cookie from one process to the next
            if name in world.instances and isinstance(raw, dict) and raw.get("cookie"):
                sup.procs.proc(name).cookie = str(raw["cookie"])
    planned = welcome.get("why") == "upgrade"
    children = {str(c["name"]): c for c in welcome.get("children", [])}
    for name, c in children.items():
        if name in world.instances:
            sup.procs.adopt(name, int(c["pid"]), str(c.get("cookie", "")), c.get("start_time"), c.get("cgroup"))
    exit_pids = {int(e["pid"]) for e in welcome.get("exits", [])}
    for rec in welcome.get("exits", []):
        sup.procs.exited(rec, away=True)
    orphans = [n for n, i in world.instances.items() if i.state is State.STARTING and i.hook is not HookKind.PRE_START
               and (children.get(n) is None or int(children[n].get("run", -1)) != i.run)]
    piped = {str(rec["name"]) for rec, _ in welcome.get("pipe_list", [])}
    started = started_anyway(sup, orphans, piped) if restored and orphans else {}
    for name, inst in world.instances.items():
        c = children.get(name)
        pid = int(c["pid"]) if c is not None else None
        if inst.state in ALIVE and inst.pid is not None:
            if pid == inst.pid or (pid is not None and inst.pid not in exit_pids):
                sup.post(Found(name, pid, planned))
            elif inst.pid not in exit_pids:
                sup.post(Exited(name, inst.pid, None, None, UNKNOWN, away=True))
        elif inst.state is State.STARTING and inst.hook is HookKind.PRE_START and c is None:
            pass       # no spawn yet: its pre_start is reported ended below (_hooks_left), a failed start
        elif inst.state is State.STARTING:
            sup.post(Found(name, pid if c is not None and int(c.get("run", -1)) == inst.run else started.get(name),
                           planned))
        elif pid is not None:
            sup.post(Found(name, pid, planned))
    for m in welcome.get("matched") or []:     # ready.log matched, maybe never stepped: a no-op unless still starting
        sup.post(LogMatched(str(m["name"]), int(m["run"]), str(m.get("line", ""))))
    for name, c in children.items():
        if name not in world.instances:
            _stray(sup, name, c)
    if restored:
        _hooks_left(sup)
        if world.phase is not Phase.UP:
            sup.post(Down())      # a stop in progress goes on; one that was complete finishes (a step re-derives it)
        for key, at in world.timers.items():
            sup.timers.arm(key, at)
        for inst in world.instances.values():
            for kind, at in inst.timers.items():
                sup.timers.arm(TimerKey(kind, inst.name), at)
    else:
        from_system(sup, set(children))
        sup.post(Up(tuple(only or ())))
    n = len(children)
    if n or restored:
        why = {"restart": "the decision process restarted", "upgrade": "herder was upgraded",
               "keeper_lost": "herder's keeper was replaced"}.get(
            str(welcome.get("why")), "herder restarted")
        data: dict[str, Any] = {"adopted": n, "restored": restored, "why": welcome.get("why")}
        sup.events.emit("", "supervisor", f"herder: {why}; adopted {n} running instance(s), "
                        f"{'state carried over' if restored else 'no state record: counters start afresh'}",
                        data)


def _hooks_left(sup: Supervisor) -> None:
    """Hooks the killed decision process was running: they were its children, not the
    keeper's (herder.runtime.hooks), so nothing reports their end. They are ended (their
    process group, found by the instance's cookie tag and HERDER_HOOK) and reported as
    ended with an unknown outcome; the core goes on as after a failed hook."""
    running = {n: i for n, i in sup.world.instances.items() if i.hook is not None}
    if not running:
        return
    for pid, (name, _cookie) in tree.with_cookie_prefix(state_tag(sup.config.state_dir) + ".").items():
        if name in running and tree.hook(pid) is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    for name, inst in running.items():
        assert inst.hook is not None
        sup.post(HookDone(name, inst.hook, inst.run, None,
                          error="herder's decision process was restarted while it ran: ended, outcome unknown"))


def _stray(sup: Supervisor, name: str, c: dict[str, Any]) -> None:
    """A live child of an instance this config does not have: herder will not run what it
    does not list."""
    pid = int(c["pid"])
    cg = c.get("cgroup")
    if cg and sup.procs.cgroups is not None and Path(os.path.normpath(cg)).parent == sup.procs.cgroups.root:
        Cgroup(Path(cg)).kill()
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    sup.events.emit(name, "supervisor", f"{name}: running (pid {pid}) but not in the config any more; killed it",
                    {"pid": pid})


def from_system(sup: Supervisor, known: set[str]) -> None:
    """No state record: adopt what a previous herder on this state_dir left running (its
    keeper was killed too). Only processes proven herder's are touched
    (herder.store.runstate.leftovers: a run.json record whose start time *and* cookie
    match, herder's own cgroup subtree for this state_dir, processes carrying this
    state_dir's cookie tag); a corrupt run.json is set aside and said, a record naming a
    stranger proves nothing and is said. The rest of an instance's tree stays with its
    main process."""
    state_dir = sup.config.state_dir
    left = runstate.leftovers(state_dir, sup.procs.cgroups.root if sup.procs.cgroups is not None else None)
    for problem in left.problems:
        sup.events.emit("", "state_problem", f"herder: {problem}", {"file": "run.json"})
    if left.ignored:
        sup.events.emit("", "supervisor", "herder: run.json names processes that are not herder's; left alone: "
                        + ", ".join(left.ignored))
    by_name: dict[str, tuple[int, str, int | None]] = {}
    members: dict[str, set[int]] = {}
    for name, pids in left.pids.items():
        pids = {p for p in pids if tree.start_time(p) is not None}
        if not pids or name in known:
            continue
        members[name] = pids
        if name not in sup.world.instances:
            continue
        top = _top(next(iter(pids)), pids)
        by_name[name] = (top, tree.cookie(top) or "", tree.start_time(top))
    lost = _follow(sup, by_name, {n: 1 for n in by_name}, set())
    for name in by_name:
        sup.post(Found(name, by_name[name][0]))
    for name, pids in members.items():      # strays: processes of instances not adopted (not in the config)
        if name not in by_name and name not in known:
            tree.kill_all(pids, signal.SIGKILL)
            sup.events.emit(name, "supervisor", f"{name}: {len(pids)} process(es) left by a previous herder that "
                            "this config does not run; killed them", {"pids": sorted(pids)})
    if by_name and sup.link is not None:
        sup.events.emit("", "supervisor",
                        f"herder: adopted {len(by_name)} instance(s) a killed herder left running "
                        f"({', '.join(sorted(by_name))}); followed by pidfd, exit status unknown when they end"
                        + (f"; output not recoverable for {', '.join(sorted(lost))} (its pipe is gone)"
                           if lost else ""),
                        {"adopted": sorted(by_name)})


def started_anyway(sup: Supervisor, names: list[str], piped: set[str]) -> dict[str, int]:
    """Starting instances the keeper has no child for: a keeper killed with their spawns in
    flight may have started them (write-ahead: the record says STARTING before the spawn is
    sent, and the child carries its instance's cookie from exec on). Look before spawning
    again: a process with this state_dir's cookie tag and the instance's name, or in its
    cgroup, is adopted (the oldest; any other copy is killed), moved into its cgroup when a
    keeper died before it could place it, followed by pidfd, its pipes read again unless
    the keeper reads them already (`piped`). Said, with the pids."""
    want = set(names)
    found: dict[str, set[int]] = {}
    tag = state_tag(sup.config.state_dir) + "."
    for pid, (name, _cookie) in tree.with_cookie_prefix(tag).items():
        if name in want:
            found.setdefault(name, set()).add(pid)
    cgs = sup.procs.cgroups
    if cgs is not None:
        for name in want:
            with contextlib.suppress(OSError):
                found.setdefault(name, set()).update(Cgroup(cgs.root / name).procs())
    by_name: dict[str, tuple[int, str, int | None]] = {}
    extra: dict[str, list[int]] = {}
    for name, pids in found.items():
        # started since the instance became STARTING: a process of an earlier run (kill = "main"
        # leaves its children; the cookie is the instance's) is not this start's
        since = sup.world.instances[name].since
        pids = {p for p in pids if tree.started_since(p, since)}
        tops = sorted({_top(p, pids) for p in pids}, key=lambda p: tree.start_time(p) or 0)
        if not tops:
            continue
        top = tops[0]
        by_name[name] = (top, tree.cookie(top) or "", tree.start_time(top))
        if len(tops) > 1:
            extra[name] = tops[1:]
            for other in tops[1:]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(other, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(other, signal.SIGKILL)
        if cgs is not None and (cgs.root / name).is_dir():
            Cgroups.adopt(Cgroup(cgs.root / name), top)   # forked before a dead keeper could place it
    if not by_name:
        return {}
    _follow(sup, by_name, {n: sup.world.instances[n].run for n in by_name}, piped)
    sup.events.emit("", "supervisor", f"herder: {len(by_name)} starting instance(s) were already started by a "
                    "keeper killed before it answered; adopted, not started again: "
                    + ", ".join(f"{n} (pid {by_name[n][0]})" for n in sorted(by_name))
                    + ("; extra copies killed: " + ", ".join(f"{n} {p}" for n, p in sorted(extra.items()))
                       if extra else ""),
                    {"adopted": {n: by_name[n][0] for n in by_name}, "killed": extra})
    return {n: v[0] for n, v in by_name.items()}


def _follow(sup: Supervisor, by_name: dict[str, tuple[int, str, int | None]], runs: dict[str, int],
            piped: set[str]) -> list[str]:
    """Adopt these processes (name -> pid, cookie, start time): the keeper follows them by
    pidfd and reads their pipes again (reopened through /proc, unless in `piped`). Returns
    the names whose output could not be recovered."""
    adopt_children: list[dict[str, Any]] = []
    pipes: list[dict[str, Any]] = []
    pipe_fds: list[int] = []
    for name, (pid, cookie, st) in by_name.items():
        inst = sup.world.instances[name]
        cg = str(sup.procs.cgroups.root / name) if sup.procs.cgroups is not None and \
            (sup.procs.cgroups.root / name).is_dir() else None
        sup.procs.adopt(name, pid, cookie, st, cg)
        adopt_children.append({"name": name, "run": runs[name], "pid": pid, "start_time": st, "cookie": cookie,
                               "cgroup": cg, "stop_signal": int(signal.SIGTERM),
                               "stop_timeout": inst.spec.stop_timeout})
        if name in piped:
            continue
        specs, fds = _reopen(sup, name, pid)
        if specs:
            pipes.append({"name": name, "run": runs[name], "specs": specs})
            pipe_fds += fds
    if adopt_children and sup.link is not None:
        sup.link.send({"t": "adopt", "children": adopt_children, "pipes": pipes}, pipe_fds)
    return [n for n in by_name if n not in piped and n not in {p["name"] for p in pipes}]


def _top(pid: int, group: set[int]) -> int:
    """The member of `group` whose parent is not in it (the instance's main process)."""
    cur = pid
    for _ in range(64):
        parent = tree.ppid(cur)
        if parent is None or parent not in group:
            return cur
        cur = parent
    return pid


def _reopen(sup: Supervisor, name: str, pid: int) -> tuple[list[dict[str, Any]], list[int]]:
    """Reopen a leftover process's stdout/stderr pipes through /proc (a pipe can be opened
    again there while its writer lives), so the keeper logs it again."""
    inst = sup.world.instances[name]
    outs = sup.logs.outputs(inst)           # the specs this instance's streams would get
    for fd in outs.fds + outs.keep:
        os.close(fd)
    specs: list[dict[str, Any]] = []
    fds: list[int] = []
    for n, spec in ((1, outs.out), (2, outs.err)):
        if not isinstance(spec, dict):
            continue
        path = f"/proc/{pid}/fd/{n}"
        try:
            if not stat.S_ISFIFO(os.stat(path).st_mode):
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        specs.append(spec)
        fds.append(fd)
    return specs, fds
