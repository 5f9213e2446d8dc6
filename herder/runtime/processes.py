"""The processes behind the instances, as the decision process sees them. I/O only, no decisions.

The keeper (herder.keeper) is every service's parent: a Spawn effect becomes a spawn
request to it (the Launch, the streams, the cgroup to place the child in), and its
answer (Spawned / SpawnFailed) is stepped before any other event: while a spawn is in
flight the supervisor steps nothing else (herder.runtime.supervisor), so nothing comes
between a spawn and its answer, as when spawning was in-process. Exits come from the
keeper too, after it has written the instance's last output, with its last stderr lines;
each is acknowledged once stepped (the keeper keeps it until then, so an exit in the
instant of a crash is never lost).

Each instance has a record here (its cookie, cgroup, process group, start time) that
the core need not know. Signals are sent from here: to a cgroup, a process group, or a
pid the keeper has not reaped yet (it only reaps after reporting). This process's own
children are its helpers (exec probes); it reaps those itself.

An exit record is stepped after what is queued on the notify socket (`before_exit`), as
systemd orders them: a daemon that hands over with MAINPID= and exits at once is then
followed to its new main process instead of being taken for ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from herder.core import effects as fx
from herder.core.effects import Scope
from herder.core.events import Event, Exited, Spawned, SpawnFailed
from herder.core.world import World
from herder.errors import SpawnError
from herder.logs._hub import LogHub
from herder.process import spawn as spawner
from herder.process import tree
from herder.process.cgroup import Cgroup, Cgroups
from herder.runtime.clock import Clock
from herder.runtime.keeper_link import KeeperLink
from herder.store import runstate
from herder.store.runstate import LiveRecord
from herder.units import parse_signal

Post = Callable[[Event], None]
EnvFor = Callable[[str], dict[str, str]]
Prepare = Callable[[str, spawner.Launch], spawner.Launch]
ExitReason = Callable[[str], str]
KILL_WAIT = 1.0   # real seconds a virtual clock waits for a SIGKILLed main process to be reaped
SPAWN_DEADLINE = 30.0   # real seconds a spawn request waits for the keeper's answer (then the start fails)
UNKNOWN = "status unknown"


@dataclass
class Proc:
    """The runtime side of an instance."""

    cookie: str
    cgroup: Cgroup | None = None
    pgid: int | None = None
    start_time: int | None = None
    run: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Flight:
    """A spawn request the keeper has not answered: what a keeper-lost record needs of it
    (the read ends this process keeps, the cookie the child carries, its cgroup)."""

    name: str
    run: int
    outs: Any
    release: Callable[[], None]
    cookie: str = ""
    cgroup: str | None = None
    timer: Any = None           # the deadline's asyncio handle
    sent: float = 0.0           # time.monotonic() of the request


class Processes:
    def __init__(self, world: World, logs: LogHub, post: Post, post_now: Post, clock: Clock) -> None:
        self.world = world
        self.clock = clock
        self.logs = logs
        self.post = post              # an event for the queue
        self.post_now = post_now      # the answer to a spawn: stepped before anything else
        self.procs: dict[str, Proc] = {}
        self.cgroups: Cgroups | None = None
        self.link: KeeperLink | None = None
        self.base_env = spawner.base_environment()   # children's environment: herder's, taken once
        self.env_for: list[EnvFor] = []              # extra environment (NOTIFY_SOCKET …)
        self.prepare: list[Prepare] = []             # launch changes (cgroup limits …)
        self.exit_reason: ExitReason = lambda name: ""   # a cause herder saw (oom)
        self.before_exit: list[Callable[[], None]] = []  # run before a main exit is handled (notify socket)
        # told each spawn's answer, after it is posted: (instance, its pid; None: no process)
        self.after_answer: list[Callable[[str, int | None], None]] = []
        self.orphans_reaped = 0
        self.keeper_exited: Callable[[int], None] = lambda code: None
        self.in_flight: dict[int, _Flight] = {}
        self.acks: list[int] = []                    # exit records stepped, to acknowledge
        self.unstepped: dict[int, tuple[int, dict[str, Any], Event]] = {}   # id(event) -> (seq, record, event)
        self.late: set[int] = set()                  # spawn ids past their deadline: a late answer is killed
        self._seen: set[int] = set()
        self._ids = itertools.count(1)
        self._by_pid: dict[int, str] = {}
        self._helpers: dict[int, Callable[[int], None]] = {}   # helper processes (exec probes)
        self._killed: dict[str, tuple[Callable[[], None], asyncio.TimerHandle]] = {}
        self._reaped: asyncio.Event | None = None
        self.runstate: runstate.RunStateWriter | None = None
        self._live_dirty = False

    def proc(self, name: str) -> Proc:
        p = self.procs.get(name)
        if p is None:
            p = self.procs[name] = Proc(cookie=runstate.new_cookie(self.world.config.state_dir))
        return p

    # ---- effects ---------------------------------------------------------------------------------

    def spawn(self, eff: fx.Spawn) -> None:
        inst = self.world.instances[eff.name]
        p = self.proc(eff.name)
        if self.link is None or self.link.lost:
            self.post_now(SpawnFailed(inst.name, "herder's keeper is gone; it is being replaced"))
            return
        outs = None
        try:
            launch = spawner.plan(inst.name, inst.replica, inst.spec, p.cookie, self.base_env)
            for env in self.env_for:
                launch.env.update(env(inst.name))
            for change in self.prepare:
                launch = change(inst.name, launch)
            outs = self.logs.outputs(inst)
            cg = None
            if self.cgroups is not None and inst.spec.kill == "tree":
                if p.cgroup is None:
                    p.cgroup = self.cgroups.for_instance(inst.name)   # exists before the child does
                cg = str(p.cgroup.path)
        except (OSError, KeyError, ValueError, SpawnError) as e:
            if outs is not None:
                outs.close_all()       # the pipes made for it
            self.post_now(SpawnFailed(inst.name, f"cannot prepare: {e}"))
            return
        rid = next(self._ids)
        flight = self.in_flight[rid] = _Flight(inst.name, eff.run, outs, self.clock.busy(), p.cookie, cg,
                                               sent=time.monotonic())
        with contextlib.suppress(RuntimeError):      # no running loop (a test driving the step by hand)
            flight.timer = asyncio.get_running_loop().call_later(SPAWN_DEADLINE, self._overdue, rid)
        p.run = eff.run
        fds, outs.fds = outs.fds, []
        self.link.send({"t": "spawn", "id": rid, "name": inst.name, "run": eff.run, "launch": launch.to_wire(),
                        "out": outs.out, "err": outs.err, "cgroup": cg, "cookie": p.cookie, "watch": eff.watch_log,
                        "stop_signal": int(parse_signal(inst.spec.stop_signal)),
                        "stop_timeout": inst.spec.stop_timeout}, fds)

    def answered(self, msg: dict[str, Any]) -> None:
        """The keeper's answer to a spawn request."""
        rid = int(msg["id"])
        flight = self.in_flight.pop(rid, None)
        if flight is None:
            if rid in self.late and msg["t"] == "spawned":
                self.late.discard(rid)
                self._kill_late(msg)
            return
        if flight.timer is not None:
            flight.timer.cancel()
        flight.release()
        name = flight.name
        if msg["t"] == "spawn_failed":
            flight.outs.close_all()
            self.post_now(SpawnFailed(name, str(msg["error"])))
            self._answered(name, None)
            return
        pid = int(msg["pid"])
        p = self.proc(name)
        p.pgid, p.start_time = pid, msg.get("start_time")
        self.logs.spawned(name, flight.run, flight.outs, int(msg.get("slot", -1)), msg.get("sinks") or {})
        self._by_pid[pid] = name
        self._live_dirty = True
        if msg.get("problem"):        # the keeper forked it, then something failed (its capture …)
            self.logs.events.emit(name, "log_error", f"{name}: {msg['problem']}", {"pid": pid})
        self.post_now(Spawned(name, pid))
        self._answered(name, pid)

    def _answered(self, name: str, pid: int | None) -> None:
        for fn in self.after_answer:
            fn(name, pid)

    def spawning(self, pid: int) -> str | None:
        """The instance whose spawn is still unanswered by the keeper and which `pid` belongs
        to (it carries the request's cookie and started since the request): a child can
        speak (sd_notify) before herder has learnt its pid."""
        if not self.in_flight:
            return None
        cookie = tree.cookie(pid)
        if cookie is None:
            return None
        for f in self.in_flight.values():
            if f.cookie == cookie and tree.started_since(pid, f.sent):
                return f.name
        return None

    def lost_flights(self) -> list[_Flight]:
        """The keeper died with spawns unanswered: their fate is learnt at adoption."""
        out = list(self.in_flight.values())
        self.in_flight.clear()
        for f in out:
            if f.timer is not None:
                f.timer.cancel()
            f.release()
        return out

    def _overdue(self, rid: int) -> None:
        """The keeper did not answer a spawn in SPAWN_DEADLINE: the start fails (the core's
        restart policy applies), and anything the keeper did start for it is killed (by its
        cookie and cgroup now, by pid if the answer comes later): herder never waits
        forever, and never keeps a process it does not list."""
        flight = self.in_flight.pop(rid, None)
        if flight is None:
            return
        flight.release()
        self.late.add(rid)
        if len(self.late) > 1024:
            self.late = set(sorted(self.late)[-512:])
        if flight.cgroup is not None:
            Cgroup(Path(flight.cgroup)).kill()
        if flight.cookie:     # its cookie, started since the request (not an earlier run's leftovers)
            tree.kill_all({p for p in tree.members(None, None, flight.cookie) if tree.started_since(p, flight.sent)})
        flight.outs.close_all()
        self.post_now(SpawnFailed(flight.name, f"herder's keeper did not answer the spawn within "
                                               f"{SPAWN_DEADLINE:g}s; anything it started is killed"))
        self._answered(flight.name, None)

    def _kill_late(self, msg: dict[str, Any]) -> None:
        """A spawn answered after its deadline: the instance's start already failed, so the
        process is not herder's any more (its start time proves it is the one spawned). Its
        group, not its cgroup: a later start of the instance may run there already."""
        pid, st = int(msg["pid"]), msg.get("start_time")
        if st is None or tree.start_time(pid) != st:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, tree.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, tree.SIGKILL)

    def exited(self, rec: dict[str, Any], away: bool = False) -> None:
        """An exit record from the keeper (the instance's last output is already written)."""
        seq = int(rec["seq"])
        if seq in self._seen:
            self.acks.append(seq)
            return
        self._seen.add(seq)
        if len(self._seen) > 8192:
            self._seen = set(sorted(self._seen)[-4096:])
        name, pid = str(rec["name"]), int(rec["pid"])
        if self._by_pid.get(pid) == name:
            for first in self.before_exit:   # a MAINPID= hand-over sent just before this exit
                first()                      # moves the instance's pid instead of ending it
        self._live_dirty = True
        if rec.get("tail"):
            self.logs.err_tail[name] = list(rec["tail"])
        self.logs.release(name, int(rec.get("run", -1)))
        if self._by_pid.get(pid) == name:
            del self._by_pid[pid]
        self._reaped_or_late(name)
        known = bool(rec.get("known", True))
        reason = self.exit_reason(name) if known else UNKNOWN
        ev = Exited(name, pid, rec.get("code"), rec.get("signal"), reason, away)
        self.unstepped[id(ev)] = (seq, rec, ev)     # acknowledged once stepped, not when received
        self.post(ev)

    def stepped(self, ev: Event) -> None:
        """The core stepped `ev`: an exit record it came from can be acknowledged now (the
        keeper keeps it until then, so a decision process killed while the exit waits
        behind a spawn in flight leaves it for the next one)."""
        got = self.unstepped.pop(id(ev), None)
        if got is not None:
            self.acks.append(got[0])

    def unstepped_exits(self) -> list[dict[str, Any]]:
        """Exit records received but not stepped yet (a keeper-lost record carries them)."""
        return [rec for _, rec, _ in self.unstepped.values()]

    def signal(self, name: str, signum: int, scope: Scope) -> None:
        inst, p = self.world.instances.get(name), self.procs.get(name)
        if inst is None or p is None:
            return
        if scope is Scope.TREE and p.cgroup is not None:
            p.cgroup.signal(signum)
        elif scope is Scope.TREE:
            tree.kill_all(tree.members(inst.pid, p.pgid, p.cookie), signum)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if scope is Scope.GROUP and p.pgid is not None:
                    os.killpg(p.pgid, signum)
                elif inst.pid is not None:
                    os.kill(inst.pid, signum)

    def kill(self, name: str, scope: Scope) -> None:
        p = self.procs.get(name)
        self._dying(name)
        if scope is Scope.TREE and p is not None and p.cgroup is not None:
            p.cgroup.kill()
        else:
            self.signal(name, tree.SIGKILL, scope)

    def kill_main(self, name: str) -> None:
        """SIGKILL to the main process of an instance killed by its cgroup, ahead of the
        cgroup's kill (`kill`, which follows): many kills at once go main processes first
        (herder.runtime.effects)."""
        inst, p = self.world.instances.get(name), self.procs.get(name)
        if inst is None or inst.pid is None or p is None or p.cgroup is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(inst.pid, tree.SIGKILL)

    def _dying(self, name: str) -> None:
        """After SIGKILL the exit is certain and on its way: a virtual clock waits for it
        (for at most KILL_WAIT real seconds: a process in uninterruptible sleep)."""
        inst = self.world.instances.get(name)
        if inst is None or inst.pid is None or name in self._killed:
            return
        release = self.clock.busy()
        handle = asyncio.get_running_loop().call_later(KILL_WAIT, self._reaped_or_late, name)
        self._killed[name] = (release, handle)

    def _reaped_or_late(self, name: str) -> None:
        held = self._killed.pop(name, None)
        if held is not None:
            release, handle = held
            handle.cancel()
            release()

    def kill_leftovers(self, name: str) -> None:
        inst, p = self.world.instances.get(name), self.procs.get(name)
        if inst is None or p is None:
            return
        if p.cgroup is not None:
            p.cgroup.kill()
            return
        if p.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pgid, tree.SIGKILL)
        if inst.spec.kill == "tree":
            tree.kill_all(tree.members(None, None, p.cookie))

    def move_pid(self, eff: fx.MovePid) -> None:
        """MAINPID=: signals and stop now go to `new`; the keeper reports its end."""
        self._by_pid.pop(eff.old, None)
        self._by_pid[eff.new] = eff.name
        self._live_dirty = True
        if self.link is not None:
            self.link.send({"t": "move", "name": eff.name, "old": eff.old, "new": eff.new})

    def drop(self, name: str) -> None:
        """A reload removed the (idle) instance."""
        p = self.procs.pop(name, None)
        if p is not None and p.cgroup is not None:
            p.cgroup.remove()

    def watch(self, pid: int, on_exit: Callable[[int], None]) -> None:
        """Route the exit of a helper process this process spawned (an exec probe) to on_exit(code).

        Call it right after the spawn, before the next await: the reaper runs on this loop,
        so it cannot reap the pid first."""
        self._helpers[pid] = on_exit

    def helpers(self) -> int:
        """Helper processes whose exit has not been reaped yet."""
        return len(self._helpers)

    # ---- reaping this process's own children (helpers, an attached keeper) ------------------------

    def reap(self) -> None:
        for pid, code in tree.reaped():
            helper = self._helpers.pop(pid, None)
            if helper is not None:
                helper(code)
            elif self.link is not None and pid == self.link.pid:
                self.keeper_exited(code)
            else:
                self.orphans_reaped += 1
        if self._reaped is not None:
            self._reaped.set()

    def close(self) -> None:
        for name in list(self._killed):
            self._reaped_or_late(name)
        for f in self.lost_flights():
            f.outs.close_all()

    # ---- after the last stop ----------------------------------------------------------------------

    async def sweep(self) -> None:
        """Nothing herder started may outlive it: empty and remove its cgroups."""
        if self.cgroups is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while True:
            busy = [cg for cg in self.cgroups.instances() if cg.procs()]
            if not busy or loop.time() >= deadline:
                break
            for cg in busy:
                cg.kill()
            await asyncio.sleep(0.02)    # cgroup.procs has no event to wait on; bounded
        for cg in self.cgroups.instances():
            cg.remove()
        self.cgroups.remove_root()

    # ---- run.json ----------------------------------------------------------------------------------

    def save_runstate(self) -> None:
        if self.runstate is None or not self._live_dirty:
            return
        self._live_dirty = False
        with contextlib.suppress(RuntimeError):  # no running loop: the final write covers it
            self.runstate.changed()

    def live_records(self) -> dict[str, LiveRecord]:
        live = {}
        for name, inst in self.world.instances.items():
            p = self.procs.get(name)
            if inst.pid is not None and p is not None:
                live[name] = LiveRecord(inst.pid, p.start_time, str(p.cgroup.path) if p.cgroup else None, p.cookie)
        return live

    def adopt(self, name: str, pid: int, cookie: str, start_time: int | None, cgroup: str | None) -> None:
        """An instance's process found alive at start-up (herder.runtime.adopt)."""
        p = self.proc(name)
        p.cookie, p.pgid, p.start_time = cookie or p.cookie, pid, start_time
        cgs = self.cgroups
        if cgroup is not None and cgs is not None and Path(os.path.normpath(cgroup)) == cgs.root / name:
            p.cgroup = Cgroup(cgs.root / name)    # only a cgroup below herder's own subtree
        self._by_pid[pid] = name
        self._live_dirty = True

    # ---- who is who (the notify socket asks) ------------------------------------------------------

    def main_pids(self) -> dict[int, str]:
        return {inst.pid: name for name, inst in self.world.instances.items() if inst.pid is not None}

    def by_cookie(self, cookie: str) -> str | None:
        for name, p in self.procs.items():
            inst = self.world.instances.get(name)
            if p.cookie == cookie and inst is not None and inst.pid is not None:
                return name
        return None

    def by_cgroup(self, v2_path: str) -> str | None:
        for name, p in self.procs.items():
            if p.cgroup is not None and str(p.cgroup.path).endswith(v2_path) and v2_path.rsplit("/", 1)[-1] == name:
                return name
        return None

    def tree_pids(self, name: str) -> set[int]:
        """The instance's processes (its cgroup's members, else the main process's descendants)."""
        inst, p = self.world.instances.get(name), self.procs.get(name)
        pids: set[int] = set(p.cgroup.procs()) if p is not None and p.cgroup is not None else set()
        if inst is not None and inst.pid is not None and not pids:
            pids = tree.descendants(inst.pid)
        return pids

