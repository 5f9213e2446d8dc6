"""The processes behind the instances: spawning, signalling, reaping. I/O only, no decisions.

Each instance has a record here (its cookie, cgroup, process group, start time) that the
core need not know; pids are routed back to instances by one index. Exits come from one
SIGCHLD handler that calls waitpid(-1) until empty: herder is a child subreaper, so it
also reaps orphans of its children, with no thread per child and no polling. A main
process's exit is posted once its last output is in the ring (the log hub drains its
pipes off the loop; EXIT_DRAIN_WAIT bounds the wait), so the exit event carries it and
the loop never waits. The exits of helper processes (exec probes) go to whoever spawned
them (`watch`); the former main pids after MAINPID= are reaped quietly.

A main process's exit is handled after what is queued on the notify socket
(`before_exit`), as systemd orders them: a daemon that hands over with MAINPID= and exits
at once is then followed to its new main process instead of being taken for ended.

A main process that is not herder's child (MAINPID= naming a process whose parent is
alive) is followed through a pidfd: readable when it exits, status unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from herder.core import effects as fx
from herder.core.effects import Scope
from herder.core.events import Event, Exited, LogMatched, Spawned, SpawnFailed
from herder.core.world import World
from herder.errors import SpawnError
from herder.logs._hub import EXIT_DRAIN_WAIT, LogHub
from herder.logs._taps import LineWatch
from herder.process import spawn as spawner
from herder.process import tree
from herder.process.cgroup import Cgroup, Cgroups
from herder.runtime.clock import Clock
from herder.store import runstate
from herder.store.runstate import LiveRecord

Post = Callable[[Event], None]
EnvFor = Callable[[str], dict[str, str]]
Prepare = Callable[[str, spawner.Launch], spawner.Launch]
ExitReason = Callable[[str], str]
_FOREIGN = "exited (status unknown: not herder's child)"
KILL_WAIT = 1.0   # real seconds a virtual clock waits for a SIGKILLed main process to be reaped


@dataclass
class Proc:
    """The runtime side of an instance."""

    cookie: str
    cgroup: Cgroup | None = None
    popen: subprocess.Popen[bytes] | None = None
    pgid: int | None = None
    start_time: int | None = None


class Processes:
    def __init__(self, world: World, logs: LogHub, post: Post, post_now: Post, clock: Clock) -> None:
        self.world = world
        self.clock = clock
        self.logs = logs
        self.post = post              # an event for the queue
        self.post_now = post_now      # the answer to a spawn: stepped before anything else
        self.procs: dict[str, Proc] = {}
        self.cgroups: Cgroups | None = None
        self.base_env = spawner.base_environment()   # children's environment: herder's, taken once
        self.env_for: list[EnvFor] = []              # extra environment (NOTIFY_SOCKET …)
        self.prepare: list[Prepare] = []             # launch changes (cgroup limits …)
        self.exit_reason: ExitReason = lambda name: ""   # a cause herder saw (oom)
        self.before_exit: list[Callable[[], None]] = []  # run before a main exit is handled (notify socket)
        self.orphans_reaped = 0
        self._by_pid: dict[int, str] = {}
        self._retired: dict[int, str] = {}         # former main pids after MAINPID= (reaped quietly)
        self._helpers: dict[int, Callable[[int], None]] = {}   # helper processes (exec probes)
        self._pidfds: dict[int, int] = {}
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
        watch = None
        if eff.watch_log is not None:
            name, run = eff.name, eff.run
            watch = LineWatch(eff.watch_log, lambda line: self.post(LogMatched(name, run, line)))
        try:
            launch = spawner.plan(inst.name, inst.replica, inst.spec, p.cookie, self.base_env)
            for env in self.env_for:
                launch.env.update(env(inst.name))
            for change in self.prepare:
                launch = change(inst.name, launch)
            outs = self.logs.outputs(inst, watch)
        except (OSError, KeyError) as e:
            self.post_now(SpawnFailed(inst.name, f"cannot prepare: {e}"))
            return
        try:
            popen = spawner.spawn(launch, outs.stdout, outs.stderr)
            if self.cgroups is not None and inst.spec.kill == "tree":
                if p.cgroup is None:
                    p.cgroup = self.cgroups.for_instance(inst.name)
                self.cgroups.adopt(p.cgroup, popen.pid)
        except SpawnError as e:
            self.post_now(SpawnFailed(inst.name, str(e)))
            return
        finally:
            outs.close_all()
        p.popen, p.pgid, p.start_time = popen, popen.pid, tree.start_time(popen.pid)
        self._by_pid[popen.pid] = inst.name
        self._live_dirty = True
        self.post_now(Spawned(inst.name, popen.pid))

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
        """MAINPID=: signals and stop now go to `new`; its exit is the instance's exit."""
        if self._by_pid.pop(eff.old, None) is not None:
            self._retired[eff.old] = eff.name
        self._by_pid[eff.new] = eff.name
        self._live_dirty = True
        if eff.watch:
            self._watch_foreign(eff.name, eff.new)

    def drop(self, name: str) -> None:
        """A reload removed the (idle) instance."""
        p = self.procs.pop(name, None)
        if p is not None and p.cgroup is not None:
            p.cgroup.remove()

    def watch(self, pid: int, on_exit: Callable[[int], None]) -> None:
        """Route the exit of a helper process herder spawned (an exec probe) to on_exit(code).

        Call it right after the spawn, before the next await: the reaper runs on this loop,
        so it cannot reap the pid first."""
        self._helpers[pid] = on_exit

    def helpers(self) -> int:
        """Helper processes whose exit has not been reaped yet."""
        return len(self._helpers)

    # ---- reaping -----------------------------------------------------------------------------------

    def reap(self) -> None:
        """SIGCHLD: collect every exited child, ours or re-parented orphans."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            code = os.waitstatus_to_exitcode(status)
            self._live_dirty = True
            helper = self._helpers.pop(pid, None)
            if helper is not None:
                helper(code)
                continue
            if pid in self._by_pid:
                for first in self.before_exit:   # a MAINPID= hand-over sent just before this exit
                    first()                      # retires the pid (move_pid) instead of ending the instance
            name = self._by_pid.pop(pid, None)
            if name is None:
                retired = self._retired.pop(pid, None)
                if retired is None:
                    self.orphans_reaped += 1
                elif retired in self.procs:
                    _mark_reaped(self.procs[retired], pid, code)
                continue
            if name in self.procs:
                _mark_reaped(self.procs[name], pid, code)
            self._main_exited(name, pid, code)
        if self._reaped is not None:
            self._reaped.set()

    def _main_exited(self, name: str, pid: int, code: int) -> None:
        """Post the exit once the instance's last output is in (bounded by EXIT_DRAIN_WAIT)."""
        sig = signal.Signals(-code).name if code < 0 else None
        ev = Exited(name, pid, code if code >= 0 else None, sig, self.exit_reason(name))
        handle: asyncio.TimerHandle | None = None
        sent = False
        settled = self.clock.busy()
        self._reaped_or_late(name)

        def send() -> None:
            nonlocal sent
            if not sent:
                sent = True
                if handle is not None:
                    handle.cancel()
                settled()
                self.post(ev)

        handle = asyncio.get_running_loop().call_later(EXIT_DRAIN_WAIT, send)
        self.logs.drain(name, send)

    def _watch_foreign(self, name: str, pid: int) -> None:
        """A new main pid whose parent is still alive: that parent will reap it, so herder
        learns of its end from a pidfd (readable at exit) instead of from waitpid."""
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            return
        self._pidfds[pid] = fd
        loop = asyncio.get_running_loop()

        def gone() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self._pidfds.pop(pid, None)
            if tree.ppid(pid) != os.getpid() and self._by_pid.get(pid) == name:   # our own zombie: the reaper's
                del self._by_pid[pid]
                self.post(Exited(name, pid, None, None, _FOREIGN))

        loop.add_reader(fd, gone)

    def close(self) -> None:
        for name in list(self._killed):
            self._reaped_or_late(name)
        loop = asyncio.get_running_loop()
        for fd in self._pidfds.values():
            loop.remove_reader(fd)
            os.close(fd)
        self._pidfds.clear()

    # ---- after the last stop ----------------------------------------------------------------------

    async def sweep(self) -> None:
        """Nothing herder started may outlive it: empty and remove its cgroups."""
        if self.cgroups is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        self._reaped = asyncio.Event()
        while True:
            busy = [cg for cg in self.cgroups.instances() if cg.procs()]
            if not busy or loop.time() >= deadline:
                break
            for cg in busy:
                cg.kill()
            self._reaped.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await self._reaped.wait()
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


def _mark_reaped(p: Proc, pid: int, code: int) -> None:
    if p.popen is not None and p.popen.pid == pid:
        p.popen.returncode = code  # tell Popen it is reaped; it must never waitpid itself
        p.popen = None

