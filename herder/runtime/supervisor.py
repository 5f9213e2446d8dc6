"""The supervisor: one asyncio task that owns every instance and carries out the core's effects.

Inputs (SIGCHLD exits, timers, signals to herder, operator commands) only *post* events;
`_drain` applies them one at a time through the core's table, runs the effects, then
reconciles dependencies and shutdown order. Nothing else mutates an Instance, so there are
no locks. Exits come from one SIGCHLD handler that calls waitpid(-1) until empty: herder
is a child subreaper, so it also reaps orphans of its children — no thread per child, no
polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from herder.config import Config, ServiceSpec
from herder.core import graph
from herder.core.machine import (
    ALIVE,
    READY_STATES,
    UP,
    ArmTimer,
    CancelTimer,
    Effect,
    Ev,
    Instance,
    KillLeftovers,
    Machine,
    Publish,
    Signal,
    Spawn,
    State,
)
from herder.core.probe import counts_healthy
from herder.errors import SpawnError, TransitionError, UnknownService
from herder.process import spawn as spawner
from herder.process import tree
from herder.process.cgroup import Cgroup, Cgroups
from herder.runtime.clock import Clock, MonotonicClock
from herder.runtime.events import EventBus
from herder.store import runstate
from herder.units import stamp_ms

IDLE = frozenset({State.STOPPED, State.EXITED, State.FAILED})
_PR_SET_CHILD_SUBREAPER = 36


class Component(Protocol):
    """Something that lives as long as the supervisor: the API server, the notify socket,
    the log writer. Entered in order before any service starts, exited in reverse after
    the last one stopped. Hooks it does not need can be omitted (see `Hooks`)."""

    async def __aenter__(self) -> Any: ...
    async def __aexit__(self, *exc: object) -> Any: ...


@dataclass
class Hooks:
    """Spawn-time seams for components. Each list is called in order, on the loop.

    env:     extra environment for an instance (NOTIFY_SOCKET, WATCHDOG_USEC …)
    launch:  may return a changed Launch (cgroups to join before exec …)
    outputs: (stdout, stderr, files_to_close, after_spawn) for an instance; the first that
             returns non-None wins; the default writes files directly (spawner.open_outputs)
    spawned: told (instance, pid) after each spawn
    exited:  told (instance, pid) after each reaped exit of a main process; may return a
             dict merged into the EXIT event (e.g. {"reason": "oom"})
    event_data: extra data merged into an instance's published event (instance, kind)
             (the log writer adds the last stderr lines to `exit` events)
    status:  extra fields merged into an instance's status record (log counters …)
    removed: told (instance) when a reload drops an instance for good
    """

    env: list[Callable[[Instance], dict[str, str]]] = field(default_factory=list)
    launch: list[Callable[[Instance, spawner.Launch], spawner.Launch]] = field(default_factory=list)
    outputs: list[Callable[[Instance], Any]] = field(default_factory=list)
    spawned: list[Callable[[Instance, int], None]] = field(default_factory=list)
    exited: list[Callable[[Instance, int], dict[str, Any] | None]] = field(default_factory=list)
    event_data: list[Callable[[Instance, str], dict[str, Any]]] = field(default_factory=list)
    status: list[Callable[[Instance], dict[str, Any]]] = field(default_factory=list)
    removed: list[Callable[[Instance], None]] = field(default_factory=list)


@dataclass
class _Proc:
    """The runtime side of an instance: what the core need not know."""

    cookie: str
    cgroup: Cgroup | None = None
    popen: subprocess.Popen[bytes] | None = None
    pgid: int | None = None
    start_time: int | None = None
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)


def instance_names(service: str, replicas: int) -> list[tuple[str, int | None]]:
    if replicas == 1:
        return [(service, None)]
    return [(f"{service}.{i}", i) for i in range(replicas)]


class Supervisor:
    def __init__(self, config: Config, *, clock: Clock | None = None, rng: random.Random | None = None) -> None:
        self.config = config
        self.clock = clock or MonotonicClock()
        rng = rng or random.Random()
        self.machine = Machine(spread=lambda: rng.uniform(-1.0, 1.0))
        self.events = EventBus()
        self.instances: dict[str, Instance] = {}
        self.procs: dict[str, _Proc] = {}
        self.by_service: dict[str, list[str]] = {}
        self.deps: dict[str, dict[str, str]] = {}
        self._by_pid: dict[int, str] = {}
        self._retired: dict[int, str] = {}     # former main pids after MAINPID= (reaped quietly)
        self._watched: dict[int, Callable[[int], None]] = {}   # helper processes (exec probes)
        self._queue: deque[tuple[str, Ev, dict[str, Any]]] = deque()
        self._draining = False
        self._down = False
        self._forced = False
        self._finished: asyncio.Event | None = None
        self._reaped: asyncio.Event | None = None
        self._lock_fd: int | None = None
        self.cgroups: Cgroups | None = None
        self.orphans_reaped = 0
        self.exit_code = 0
        self._runstate: runstate.RunStateWriter | None = None
        self._live_dirty = False
        self.components: list[Component] = []
        self.base_env = spawner.base_environment()   # children's environment: herder's, taken once
        self.hooks = Hooks()
        self.held: set[str] = set()   # instances an operator stopped by hand: not started by `up`
        self._load_services(config)
        from herder.runtime import upward
        upward.attach(self)  # READY/STATUS/WATCHDOG/STOPPING to systemd when it runs herder

    # ---- setup ---------------------------------------------------------------------

    def _load_services(self, config: Config) -> None:
        for svc, spec in config.services.items():
            self.add_service(svc, spec)

    def add_service(self, svc: str, spec: ServiceSpec, replicas: Iterable[int] | None = None) -> list[str]:
        """Create the (idle) instances of a service, or the given replicas of it; their names."""
        self.deps[svc] = dict(spec.depends_on)
        names = self.by_service.setdefault(svc, [])
        added = []
        for name, replica in instance_names(svc, spec.replicas):
            if name in self.instances or (replicas is not None and replica not in replicas):
                continue
            self.instances[name] = Instance(name, svc, replica, spec, since=self.clock.now())
            self.procs[name] = _Proc(cookie=runstate.new_cookie(self.config.state_dir))
            names.append(name)
            added.append(name)
        return added

    def drop_instance(self, name: str) -> None:
        """Forget an idle instance (reload removed it): timers, cgroup, indexes."""
        inst = self.instances.pop(name)
        p = self.procs.pop(name)
        for h in p.timers.values():
            h.cancel()
        if p.cgroup is not None:
            p.cgroup.remove()
        names = self.by_service.get(inst.service, [])
        if name in names:
            names.remove(name)
        if not names:
            self.by_service.pop(inst.service, None)
            self.deps.pop(inst.service, None)
        for removed in self.hooks.removed:
            removed(inst)

    def _acquire_lock(self) -> None:
        from herder.store import lock

        self._lock_fd = lock.acquire(self.config.state_dir, group_gid=lock.group_id(self.config.herder.socket_group))

    def _stop_previous(self) -> None:
        """Instances a previous herder left alive must not run twice: stop them first.

        Only processes proven herder's are stopped (herder.store.runstate.leftovers: start
        time and cookie, herder's own cgroups, never a path or pid the file alone names)."""
        found = Cgroups.root_for(self.config.state_dir)
        left = runstate.leftovers(self.config.state_dir, found[1] if found else None)
        for problem in left.problems:
            self.events.emit("", "state_problem", f"herder: {problem}", {"file": "run.json"})
        if left.ignored:
            self.events.emit("", "supervisor", "herder: run.json names processes that are not herder's; left alone: "
                             + ", ".join(left.ignored))
        if not left.pids:
            return
        self.events.emit("", "supervisor", f"herder: {len(left.pids)} instance(s) left running by a previous herder "
                         f"(pid {left.old_pid}): {', '.join(sorted(left.pids))}; stopping them before starting")
        timeout = max((s.stop_timeout for s in self.config.services.values()), default=10.0)
        tree.stop_all(left.all_pids(), timeout)

    # ---- lifetime ------------------------------------------------------------------

    async def run(self, only: Iterable[str] | None = None, *, install_signals: bool = True,
                  ready: Callable[[], None] | None = None) -> int:
        """Start, supervise until `down`, stop everything, return the exit code."""
        loop = asyncio.get_running_loop()
        self._finished = asyncio.Event()
        self._reaped = asyncio.Event()
        self._acquire_lock()
        spawner.raise_nofile()   # herder's own fds never run out before its services' (process.rlimits)
        self._runstate = runstate.RunStateWriter(self.config.state_dir / "run.json", self._live_records)
        self._set_subreaper(True)
        from herder.runtime import signals

        restore = [signals.install_reaper(loop, self._reap)]
        if install_signals:
            restore += [signals.install(loop, signal.SIGTERM, self.request_down),
                        signals.install(loop, signal.SIGINT, self._on_sigint)]
        try:
            self._stop_previous()
            if self.config.herder.cgroups:
                self.cgroups = Cgroups.detect(self.config.state_dir)
            async with AsyncExitStack() as stack:
                for comp in self.components:
                    await stack.enter_async_context(comp)
                wanted = [n for n in self._initial(only) if only or n not in self.held]
                self.events.emit("", "supervisor", f"herder: supervising {len(self.instances)} instance(s) "
                                 f"(pid {os.getpid()}, tracking by {'cgroup' if self.cgroups else 'process group'})")
                self._queue.extend((name, Ev.START, {}) for name in wanted)
                self._kick()
                if ready is not None:
                    ready()
                await self._finished.wait()
                await self._sweep()
        finally:
            for undo in restore:
                undo()
            for p in self.procs.values():
                for h in p.timers.values():
                    h.cancel()
            if self._runstate is not None:
                await self._runstate.close()
            self._set_subreaper(False)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
        return self.exit_code

    def _initial(self, only: Iterable[str] | None) -> list[str]:
        if only:
            services = graph.closure(self.deps, only)
        else:
            services = {s for s, spec in self.config.services.items() if spec.autostart}
        return [n for s in graph.levels(self.deps) for svc in s if svc in services for n in self.by_service[svc]]

    @staticmethod
    def _set_subreaper(on: bool) -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)

    @property
    def shutting_down(self) -> bool:
        """True from the first `down` request (SIGTERM, Ctrl+C, API) on."""
        return self._down

    def request_down(self) -> None:
        """Stop everything in reverse dependency order, then finish (SIGTERM, first Ctrl+C)."""
        if self._down:
            return
        self._down = True
        self.events.emit("", "supervisor", "herder: stopping all services")
        loop = asyncio.get_running_loop()
        loop.call_later(self.config.herder.shutdown_timeout, self._shutdown_timeout)
        self._kick()

    def force(self) -> None:
        """SIGKILL everything left now (second Ctrl+C); the exit code becomes 1."""
        self._down = self._forced = True
        self.exit_code = 1
        self.events.emit("", "supervisor", "herder: forced stop: SIGKILL to everything left")
        for name, inst in self.instances.items():
            self._post(name, Ev.KILL)

    def _on_sigint(self) -> None:
        if self._down:
            self.force()
        else:
            self.request_down()

    def _shutdown_timeout(self) -> None:
        if not self._finished or self._finished.is_set() or self._forced:
            return
        self.events.emit("", "supervisor", f"herder: shutdown_timeout ({self.config.herder.shutdown_timeout:g}s) "
                         "reached; killing what is left")
        self.force()

    async def _sweep(self) -> None:
        """After the last stop: nothing herder started may outlive it."""
        if self.cgroups is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        assert self._reaped is not None
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

    # ---- operator commands (the control API calls these) -----------------------------

    def start(self, names: Iterable[str]) -> None:
        for n in names:
            self._post(n, Ev.START)

    def stop(self, names: Iterable[str]) -> None:
        for n in names:
            self._post(n, Ev.STOP)

    def restart(self, names: Iterable[str]) -> None:
        for n in names:
            self._post(n, Ev.RESTART)

    def send_signal(self, names: Iterable[str], sig: str, tree_: bool = False) -> list[str]:
        """Send `sig` ("SIGHUP") to each live instance's main process (or tree); the names reached."""
        sent = []
        for n in names:
            inst = self.instances[n]
            if inst.pid is not None and inst.state in ALIVE:
                self._signal(inst, self.procs[n], sig, "tree" if tree_ else "main")
                sent.append(n)
        return sent

    # ---- the event pump --------------------------------------------------------------

    def post(self, name: str, ev: Ev, **data: Any) -> None:
        """For components: an input event (READY from the notify socket, FAIL from a probe)."""
        self._post(name, ev, **data)

    def watch_pid(self, pid: int, on_exit: Callable[[int], None]) -> None:
        """Route the exit of a helper process herder spawned (an exec probe) to on_exit(code).

        Call it right after the spawn, before the next await: the reaper runs on this loop,
        so it cannot reap the pid first."""
        self._watched[pid] = on_exit

    def move_main_pid(self, name: str, pid: int) -> None:
        """MAINPID=: signals and stop now go to pid; its exit is the instance's exit.

        The old main pid is reaped quietly. The new one must be in the instance's tree
        (the caller checks): as a subreaper herder reaps it once its parent is gone; while
        its parent lives, the parent reaps it and `on_foreign_exit` reports the exit."""
        inst = self.instances[name]
        if inst.pid is None or inst.pid == pid:
            return
        old = inst.pid
        self._by_pid.pop(old, None)
        self._retired[old] = name   # also when it is being reaped right now (see _reap)
        self._by_pid[pid] = name
        self._live_dirty = True
        self._post(name, Ev.MAINPID, pid=pid)

    def on_foreign_exit(self, pid: int) -> None:
        """A main pid that is not herder's child ended (seen by a pidfd): status unknown."""
        name = self._by_pid.pop(pid, None)
        if name is not None:
            self._post(name, Ev.EXIT, code=None, signal=None, reason="exited (status unknown: not herder's child)")

    def _post(self, name: str, ev: Ev, **data: Any) -> None:
        self._queue.append((name, ev, data))
        self._kick()

    def _kick(self) -> None:
        if not self._draining:
            self._drain()

    def _drain(self) -> None:
        """Apply queued events one by one; reconcile whenever the queue runs dry."""
        self._draining = True
        try:
            while True:
                if not self._queue:
                    self._reconcile()
                    if not self._queue:
                        break
                name, ev, data = self._queue.popleft()
                inst = self.instances.get(name)
                if inst is None:
                    continue
                try:
                    effects = self.machine.handle(inst, ev, self.clock.now(), **data)
                except TransitionError as e:  # a bug in herder; never let it stop supervision
                    self.events.emit(name, "bug", f"herder bug: {e}")
                    continue
                for eff in effects:
                    self._do(inst, eff)
        finally:
            self._draining = False
        self._save_runstate()

    def _do(self, inst: Instance, eff: Effect) -> None:
        p = self.procs[inst.name]
        if isinstance(eff, Spawn):
            self._spawn(inst, p)
        elif isinstance(eff, Signal):
            self._signal(inst, p, eff.signal, eff.scope)
        elif isinstance(eff, KillLeftovers):
            self._kill_leftovers(inst, p)
        elif isinstance(eff, ArmTimer):
            old = p.timers.pop(eff.kind, None)
            if old:
                old.cancel()
            p.timers[eff.kind] = asyncio.get_running_loop().call_later(eff.delay, self._timer, inst.name, eff.kind)
        elif isinstance(eff, CancelTimer):
            old = p.timers.pop(eff.kind, None)
            if old:
                old.cancel()
        elif isinstance(eff, Publish):
            data = {"state": inst.state.value, **eff.data}
            for extra in self.hooks.event_data:
                data.update(extra(inst, eff.kind))
            self.events.emit(inst.name, eff.kind, eff.message, data)

    def _timer(self, name: str, kind: str) -> None:
        self.procs[name].timers.pop(kind, None)
        self._post(name, {"backoff": Ev.BACKOFF_DONE, "ready": Ev.READY_TIMEOUT}.get(kind, Ev.STOP_TIMEOUT))

    # ---- effects -----------------------------------------------------------------------

    def _spawn(self, inst: Instance, p: _Proc) -> None:
        after: Callable[[int], None] | None = None
        try:
            launch = spawner.plan(inst.name, inst.replica, inst.spec, p.cookie, self.base_env)
            for hook in self.hooks.env:
                launch.env.update(hook(inst))
            for change in self.hooks.launch:
                launch = change(inst, launch)
            for hook in self.hooks.outputs:
                got = hook(inst)
                if got is not None:
                    stdout, stderr, opened, after = got
                    break
            else:
                stdout, stderr, opened = spawner.open_outputs(inst.spec, inst.name, self.config.log_dir,
                                                              self.config.herder.log_dir_mode)
        except (OSError, KeyError) as e:
            self._queue.append((inst.name, Ev.SPAWN_FAILED, {"error": f"cannot prepare: {e}"}))
            return
        try:
            popen = spawner.spawn(launch, stdout, stderr)
            if self.cgroups is not None and inst.spec.kill == "tree":
                if p.cgroup is None:
                    p.cgroup = self.cgroups.for_instance(inst.name)
                self.cgroups.adopt(p.cgroup, popen.pid)
        except SpawnError as e:
            self._queue.append((inst.name, Ev.SPAWN_FAILED, {"error": str(e)}))
            return
        finally:
            for f in opened:
                f.close()
        p.popen, p.pgid, p.start_time = popen, popen.pid, tree.start_time(popen.pid)
        self._by_pid[popen.pid] = inst.name
        self._live_dirty = True
        if after is not None:
            after(popen.pid)
        for spawned in self.hooks.spawned:
            spawned(inst, popen.pid)
        self._queue.append((inst.name, Ev.SPAWNED, {"pid": popen.pid, "await_ready": inst.spec.ready.kind is not None}))

    def _signal(self, inst: Instance, p: _Proc, sig: str, scope: str) -> None:
        signum = signal.Signals[sig]
        if scope == "tree" and p.cgroup is not None:
            if signum == signal.SIGKILL:
                p.cgroup.kill()
            else:
                p.cgroup.signal(signum)
            return
        if scope == "tree":
            tree.kill_all(tree.members(inst.pid, p.pgid, p.cookie), signum)
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if scope == "group" and p.pgid is not None:
                os.killpg(p.pgid, signum)
            elif inst.pid is not None:
                os.kill(inst.pid, signum)

    def _kill_leftovers(self, inst: Instance, p: _Proc) -> None:
        if p.cgroup is not None:
            p.cgroup.kill()
            return
        if p.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pgid, signal.SIGKILL)
        if inst.spec.kill == "tree":
            tree.kill_all(tree.members(None, None, p.cookie))

    def _reap(self) -> None:
        """SIGCHLD: collect every exited child, ours or re-parented orphans."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            name = self._by_pid.pop(pid, None)
            code = os.waitstatus_to_exitcode(status)
            self._live_dirty = True
            helper = self._watched.pop(pid, None)
            if helper is not None:
                helper(code)
                continue
            if name is None:
                retired = self._retired.pop(pid, None)
                if retired is not None:
                    self._mark_reaped(self.procs[retired], pid, code)
                    continue
                self.orphans_reaped += 1
                continue
            p = self.procs[name]
            extra: dict[str, Any] = {}
            for exited in self.hooks.exited:
                extra.update(exited(self.instances[name], pid) or {})
            if self._retired.pop(pid, None) is not None:   # it handed over (MAINPID=) just before it exited
                self._mark_reaped(p, pid, code)
                continue
            self._mark_reaped(p, pid, code)
            if code >= 0:
                self._post(name, Ev.EXIT, code=code, signal=None, **extra)
            else:
                self._post(name, Ev.EXIT, code=None, signal=signal.Signals(-code).name, **extra)
        if self._reaped is not None:
            self._reaped.set()

    @staticmethod
    def _mark_reaped(p: _Proc, pid: int, code: int) -> None:
        if p.popen is not None and p.popen.pid == pid:
            p.popen.returncode = code  # tell Popen it is reaped; it must never waitpid itself
            p.popen = None

    # ---- reconcile: dependencies and shutdown order ----------------------------------

    def facts(self, name: str) -> graph.Facts:
        inst = self.instances[name]
        started = inst.state in UP and inst.pid is not None
        ready = inst.state in READY_STATES
        hopeless = inst.state is State.FAILED or (inst.state is State.EXITED and not inst.completed) \
            or (inst.state is State.STOPPED and not inst.want_up)
        return graph.Facts(inst.state.value, started, ready, ready and counts_healthy(inst.spec.health, inst.healthy),
                           inst.completed, hopeless)

    def _reconcile(self) -> None:
        if self._down:
            self._reconcile_down()
            return
        for name, inst in self.instances.items():
            if inst.state is not State.WAITING:
                continue
            reasons = []
            for dep, cond in self.deps[inst.service].items():
                facts = [self.facts(n) for n in self.by_service.get(dep, [])]
                if not graph.condition_met(cond, facts):
                    reasons.append(graph.waiting_reason(dep, cond, facts))
            if not reasons:
                self._queue.append((name, Ev.DEPS_MET, {}))
            elif inst.reason != "; ".join(reasons):
                inst.reason = "; ".join(reasons)
                self.events.emit(name, "waiting", f"{name}: {inst.reason}", {"state": inst.state.value})

    def _dependents_alive(self, service: str) -> bool:
        for svc, deps in self.deps.items():
            if service in deps:
                for n in self.by_service[svc]:
                    if self.instances[n].state in ALIVE:
                        return True
        return False

    def _reconcile_down(self) -> None:
        for name, inst in self.instances.items():
            if inst.state in IDLE or inst.state is State.STOPPING:
                continue
            if inst.state in UP and self._dependents_alive(inst.service):
                continue
            self._queue.append((name, Ev.STOP, {}))
        if all(i.state in IDLE for i in self.instances.values()) and not self._queue:
            assert self._finished is not None
            self._finished.set()

    # ---- status and run state ------------------------------------------------------------

    def _save_runstate(self) -> None:
        if self._runstate is None or not self._live_dirty:
            return
        self._live_dirty = False
        with contextlib.suppress(RuntimeError):  # no running loop: the final write in run() covers it
            self._runstate.changed()

    def _live_records(self) -> dict[str, runstate.LiveRecord]:
        live = {}
        for name, inst in self.instances.items():
            if inst.pid is not None:
                p = self.procs[name]
                live[name] = runstate.LiveRecord(inst.pid, p.start_time, str(p.cgroup.path) if p.cgroup else None,
                                                 p.cookie)
        return live

    # ---- queries (the control API and the console use these) ------------------------------

    def resolve(self, names: Iterable[str]) -> list[str]:
        """Service or instance names -> instance names; UnknownService names what exists."""
        out: list[str] = []
        unknown = []
        for n in names:
            if n in self.by_service:
                out.extend(self.by_service[n])
            elif n in self.instances:
                out.append(n)
            else:
                unknown.append(n)
        if unknown:
            raise UnknownService(unknown, sorted(self.by_service))
        return list(dict.fromkeys(out))

    def status(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """One record per instance (interface.md `status --json`)."""
        import time as _time

        now, wall = self.clock.now(), _time.time()
        out = []
        for name in (self.resolve(names) if names else self.instances):
            inst = self.instances[name]
            since = wall - (now - inst.since)
            out.append({
                "name": name, "service": inst.service, "state": inst.state.value, "pid": inst.pid,
                "since": stamp_ms(since) + "Z",
                "uptime": round(now - inst.started_at, 3) if inst.started_at is not None else None,
                "min_uptime": inst.spec.min_uptime,
                "restarts": inst.restarts,
                "exit": (inst.last_exit.signal or inst.last_exit.code) if inst.last_exit else None,
                "health": {True: "healthy", False: "unhealthy"}.get(inst.healthy)  # type: ignore[arg-type]
                if inst.healthy is not None else ("unknown" if inst.spec.health.kind and inst.pid else None),
                "status": inst.status, "reason": inst.reason, "want": "up" if inst.want_up else "down",
            })
            for extra in self.hooks.status:
                out[-1].update(extra(inst))
        return out
