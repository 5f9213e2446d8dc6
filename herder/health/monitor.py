"""The health component: readiness checks, liveness probes, the watchdog, memory watch,
limits, sd_notify messages and `bind`, for every instance of one supervisor.

It is a Supervisor component (entered before the first service starts, left after the
last stopped) and talks to the supervisor only through its seams: `hooks` (environment,
launch, exits), the event bus (to follow spawns, readiness and exits) and `post()` (to
feed READY, HEALTH, FAIL, RELOADING, EXTEND into the core's table). Decisions live in
the pure core (herder.core.machine, herder.core.probe); this module runs the checks and
timers. Every task belongs to one TaskGroup; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from herder.core.machine import Ev, Instance, State
from herder.core.probe import (
    Act,
    ArmWatchdog,
    PEv,
    ProbeEffect,
    Schedule,
    Tracker,
    Verdict,
)
from herder.core.sdnotify import Message
from herder.health import probes
from herder.health.cgroup_limits import LimitCgroups, Placement
from herder.health.notify import NotifyServer, _ppid
from herder.process import spawn as spawner
from herder.runtime.events import Event

if TYPE_CHECKING:
    from herder.runtime.supervisor import Supervisor

_WATCHDOG_ENV = ("WATCHDOG_USEC", "WATCHDOG_PID")


class Health:
    """Install with `Health.install(supervisor)` (adds itself to components and hooks)."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.notify = NotifyServer(sup, self.notified)
        self.trackers: dict[str, Tracker] = {}
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.watchdogs: dict[str, asyncio.TimerHandle] = {}
        self.placements: dict[str, Placement] = {}
        self.oom_base: dict[str, int] = {}
        self.logwatch: dict[str, probes.LogWatch] = {}
        self.pidfds: dict[int, int] = {}
        self.limits: LimitCgroups | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._unsubscribe: Any = None
        self._warned: set[tuple[str, str]] = set()

    @classmethod
    def install(cls, sup: Supervisor) -> Health:
        h = cls(sup)
        sup.components.append(h)
        sup.hooks.env.append(h.env)
        sup.hooks.launch.append(h.launch)
        sup.hooks.exited.append(h.exited)
        return h

    # ---- lifetime -------------------------------------------------------------------------

    async def __aenter__(self) -> Health:
        self.notify.open()
        self.limits = LimitCgroups(self.sup.config.state_dir)
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._unsubscribe = self.sup.events.subscribe(self._on_event)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._unsubscribe()
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()
        for handle in self.watchdogs.values():
            handle.cancel()
        loop = asyncio.get_running_loop()
        for fd in self.pidfds.values():
            loop.remove_reader(fd)
            os.close(fd)
        self.pidfds.clear()
        assert self._tg is not None
        async with asyncio.timeout(10.0):
            await self._tg.__aexit__(None, None, None)
        self.notify.close()
        if self.limits is not None:
            self.limits.remove()

    def _spawn_task(self, name: str, kind: str, coro: Coroutine[Any, Any, None]) -> None:
        old = self.tasks.pop((name, kind), None)
        if old is not None:
            old.cancel()
        assert self._tg is not None
        task = self._tg.create_task(self._guard(name, kind, coro))
        self.tasks[(name, kind)] = task
        task.add_done_callback(lambda t: self.tasks.get((name, kind)) is t and self.tasks.pop((name, kind)))

    async def _guard(self, name: str, kind: str, coro: Coroutine[Any, Any, None]) -> None:
        """A bug in a check must never cancel the TaskGroup, and so the supervisor."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            self.sup.events.emit(name, "bug", f"herder bug in the {kind} check of {name}: {e!r}")

    def _cancel(self, name: str, *kinds: str) -> None:
        for kind in kinds:
            task = self.tasks.pop((name, kind), None)
            if task is not None:
                task.cancel()

    # ---- hooks ----------------------------------------------------------------------------

    def env(self, inst: Instance) -> dict[str, str]:
        out = {"NOTIFY_SOCKET": self.notify.address}
        if inst.spec.health.watchdog:
            out["WATCHDOG_USEC"] = str(int(inst.spec.health.watchdog * 1_000_000))
        return out

    def launch(self, inst: Instance, launch: spawner.Launch) -> spawner.Launch:
        if not inst.spec.health.watchdog:
            for key in _WATCHDOG_ENV:   # herder's own (from its systemd unit) must not leak
                launch.env.pop(key, None)
        launch.env.pop("WATCHDOG_PID", None)
        spec = inst.spec
        if spec.ready.log is not None:
            self.logwatch[inst.name] = probes.LogWatch(self._output_files(inst), spec.ready.log)
        if spec.limits.memory is None and spec.limits.cpu is None:
            return launch
        assert self.limits is not None
        v2 = None
        if self.sup.cgroups is not None and spec.kill == "tree":
            v2 = self.sup.cgroups.for_instance(inst.name).path
        place = self.limits.place(inst.name, spec.limits, v2)
        self.placements[inst.name] = place
        self.oom_base[inst.name] = place.oom_kills()
        for what in place.missing:
            if (inst.name, what) not in self._warned:
                self._warned.add((inst.name, what))
                self.sup.events.emit(inst.name, "limit_warning",
                                     f"{inst.name}: limits.{what} is NOT enforced: no usable {what} cgroup controller "
                                     "(needs root and cgroup v2 with the controller, or a v1 hierarchy)",
                                     {"limit": what})
        return dataclasses.replace(launch, cgroup_files=tuple(place.join))

    def _output_files(self, inst: Instance) -> list[Path]:
        logs, log_dir = inst.spec.logs, self.sup.config.log_dir
        files = [log_dir / f"{inst.name}.log" if logs.stdout == "auto" else Path(logs.stdout)]
        if logs.stderr == "auto":
            files.append(log_dir / f"{inst.name}.err.log")
        elif logs.stderr not in ("merge", "inherit", "null"):
            files.append(Path(logs.stderr))
        return files

    def exited(self, inst: Instance, pid: int) -> dict[str, Any] | None:
        place = self.placements.get(inst.name)
        if place is None or place.memory_dir is None:
            return None
        kills = place.oom_kills()
        if kills > self.oom_base.get(inst.name, 0):
            self.oom_base[inst.name] = kills
            return {"reason": "oom"}
        return None

    # ---- following the supervisor ------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        """Follow spawns, readiness and exits; a bug here must not unsubscribe the component."""
        try:
            self._follow(ev)
        except Exception as e:  # noqa: BLE001
            self.sup.events.emit(ev.instance, "bug", f"herder bug in the health component: {e!r}")

    def _follow(self, ev: Event) -> None:
        name = ev.instance
        inst = self.sup.instances.get(name)
        if inst is None:
            return
        if ev.kind == "spawn":
            self._spawned(inst)
        elif ev.kind == "exit":
            self._exited(inst)
        elif ev.kind == "state" and ev.data.get("from") == "starting":
            self._cancel(name, "ready")
            self.logwatch.pop(name, None)
            if ev.data.get("to") == "running":
                self._feed(name, PEv.READY)

    def _spawned(self, inst: Instance) -> None:
        spec, name = inst.spec, inst.name
        if spec.health.kind is not None or spec.health.watchdog:
            tracker = self.trackers.setdefault(name, Tracker(spec.health))
            self._apply(name, tracker.handle(PEv.SPAWNED))   # READY follows with the state event
        if spec.ready.kind not in (None, "notify"):
            self._spawn_task(name, "ready", self._readiness(inst))
        if spec.limits.max_memory_restart is not None:
            self._spawn_task(name, "memory", self._memory(inst))

    def _exited(self, inst: Instance) -> None:
        name = inst.name
        self._cancel(name, "ready", "probe", "memory")
        self.logwatch.pop(name, None)
        handle = self.watchdogs.pop(name, None)
        if handle is not None:
            handle.cancel()
        tracker = self.trackers.get(name)
        if tracker is not None:
            self._apply(name, tracker.handle(PEv.EXITED))
        self._bind(inst)

    def _bind(self, dep: Instance) -> None:
        """bind = true: a dependent restarts whenever a dependency's process ends (it then
        waits for the dependency's condition again, like any start)."""
        for svc, deps in self.sup.deps.items():
            cond = deps.get(dep.service)
            if cond is None or cond == "completed" or not self.sup.config.services[svc].bind:
                continue
            for n in self.sup.by_service[svc]:
                if self.sup.instances[n].state in (State.STARTING, State.RUNNING, State.RELOADING):
                    self.sup.events.emit(n, "bind", f"{n}: restarting with its dependency {dep.name} (bind = true)",
                                         {"dependency": dep.name})
                    self.sup.restart([n])

    # ---- liveness: the pure tracker's effects ------------------------------------------------

    def _feed(self, name: str, ev: PEv, **data: Any) -> None:
        tracker = self.trackers.get(name)
        if tracker is not None:
            self._apply(name, tracker.handle(ev, **data))

    def _apply(self, name: str, effects: list[ProbeEffect]) -> None:
        for eff in effects:
            if isinstance(eff, Schedule):
                self._spawn_task(name, "probe", self._probe_after(name, eff.delay))
            elif isinstance(eff, ArmWatchdog):
                old = self.watchdogs.pop(name, None)
                if old is not None:
                    old.cancel()
                self.watchdogs[name] = asyncio.get_running_loop().call_later(eff.delay, self._watchdog_expired, name)
            elif isinstance(eff, Verdict):
                self.sup.post(name, Ev.HEALTH, healthy=eff.healthy, reason=eff.reason, message=eff.message)
            elif isinstance(eff, Act):
                self.sup.post(name, Ev.FAIL, reason=eff.reason, message=f"{name}: {eff.message}; restarting")

    def _watchdog_expired(self, name: str) -> None:
        self.watchdogs.pop(name, None)
        self._feed(name, PEv.EXPIRE)

    async def _probe_after(self, name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        inst = self.sup.instances[name]
        ok, why = await self._check(inst, inst.spec.health.kind or "", inst.spec.health.timeout)
        if self.tasks.get((name, "probe")) is asyncio.current_task():
            self.tasks.pop((name, "probe"))
        self._feed(name, PEv.PASS if ok else PEv.FAIL, why=why)

    async def _check(self, inst: Instance, kind: str, timeout: float, ready: bool = False) -> probes.Result:
        conf = inst.spec.ready if ready else inst.spec.health
        if kind == "http":
            body = None if ready else inst.spec.health.body
            return await probes.http_check(conf.http or "", timeout, body)
        if kind == "tcp":
            return await probes.tcp_check(conf.tcp or "", timeout)
        if kind == "exec":
            return await probes.exec_check(self._exec_launch(inst, conf.exec or ()), timeout, self.sup.watch_pid)
        if kind == "log":
            watch = self.logwatch.get(inst.name)
            return watch.check() if watch else (False, "no output file to watch")
        return False, f"unknown check {kind!r}"

    def _exec_launch(self, inst: Instance, argv: tuple[str, ...]) -> spawner.Launch:
        spec = dataclasses.replace(inst.spec, command=argv)
        launch = spawner.plan(f"{inst.name}-probe", inst.replica, spec, "probe")
        launch.env.pop("HERDER_INSTANCE_ID", None)
        for key in _WATCHDOG_ENV + ("NOTIFY_SOCKET",):
            launch.env.pop(key, None)
        return dataclasses.replace(launch, rlimits=())

    # ---- readiness -----------------------------------------------------------------------------

    async def _readiness(self, inst: Instance) -> None:
        """Attempt every ready.interval until one passes; the core owns the ready.timeout
        (a failed start), and cancels this task by leaving `starting`."""
        conf, name = inst.spec.ready, inst.name
        kind = conf.kind or ""
        async with asyncio.timeout(conf.timeout + conf.attempt_timeout + 1.0 if conf.timeout else None):
            while True:
                ok, why = await self._check(inst, kind, conf.attempt_timeout, ready=True)
                if ok:
                    if inst.state is State.STARTING:
                        self.sup.events.emit(name, "ready_check", f"{name}: ready ({kind}: {why})", {"check": kind})
                        self.sup.post(name, Ev.READY)
                    return
                await asyncio.sleep(conf.interval)

    # ---- memory ----------------------------------------------------------------------------------

    async def _memory(self, inst: Instance) -> None:
        """Sample the RSS of the whole tree every memory_check_interval; over the limit →
        FAIL(memory), once per run. Reads /proc directly (cgroup.procs, task/*/children,
        statm): tens of µs per sample, where psutil's children() scans all of /proc."""
        limit = inst.spec.limits.max_memory_restart or 0
        name = inst.name
        while True:
            await asyncio.sleep(inst.spec.limits.memory_check_interval)
            rss = self.tree_rss(name)
            if rss > limit:
                mb = 1024 * 1024
                self.sup.post(name, Ev.FAIL, reason="memory",
                              message=f"{name}: RSS of its process tree is {rss / mb:.1f} MB, over "
                                      f"limits.max_memory_restart = {limit / mb:.1f} MB; restarting gracefully")
                return

    def tree_rss(self, name: str) -> int:
        inst, p = self.sup.instances[name], self.sup.procs[name]
        pids: set[int] = set(p.cgroup.procs()) if p.cgroup is not None else set()
        if inst.pid is not None and not pids:
            pids = descendants(inst.pid)
        return sum(rss(pid) for pid in pids)

    # ---- sd_notify --------------------------------------------------------------------------------

    def notified(self, name: str, sender: int, messages: list[Message]) -> None:
        inst = self.sup.instances[name]
        # READY=1 last: "READY=1\nSTATUS=…" / "READY=1\nMAINPID=…" are ready with that status/pid
        for msg in sorted(messages, key=lambda m: m.key == "READY"):
            key, value = msg.key, msg.value
            if key == "READY" and value == "1":
                if (inst.state is State.STARTING and inst.spec.ready.kind == "notify") or inst.state is State.RELOADING:
                    self.sup.post(name, Ev.READY)
            elif key == "STATUS":
                inst.status = value
                self.sup.events.emit(name, "status", f"{name}: {value}", {"status": value})
            elif key == "MAINPID":
                self._mainpid(inst, int(value))
            elif key == "RELOADING" and value == "1":
                if inst.state is State.RUNNING:
                    self.sup.post(name, Ev.RELOADING)
            elif key == "STOPPING" and value == "1":
                self.sup.events.emit(name, "notify_stopping", f"{name}: the program reports it is stopping", {})
            elif key == "WATCHDOG" and value == "1":
                self._feed(name, PEv.PING)
            elif key == "WATCHDOG" and value == "trigger":
                self._feed(name, PEv.EXPIRE, why="the program asked for a watchdog restart (WATCHDOG=trigger)")
            elif key == "EXTEND_TIMEOUT_USEC":
                if inst.state in (State.STARTING, State.STOPPING):
                    self.sup.post(name, Ev.EXTEND, seconds=int(value) / 1_000_000)
            elif key == "ERRNO":
                err = int(value)
                self.sup.events.emit(name, "errno", f"{name}: the program reports errno {err} ({os.strerror(err)})",
                                     {"errno": err})

    def _mainpid(self, inst: Instance, pid: int) -> None:
        name = inst.name
        if inst.pid is None or pid == inst.pid:
            return
        if pid <= 1 or self.notify.owner(pid) != name:
            self.sup.events.emit(name, "notify_warning", f"{name}: MAINPID={pid} ignored: not a process of this "
                                 "instance (it must be the main process or one of its descendants)", {"pid": pid})
            return
        self.sup.move_main_pid(name, pid)
        if _ppid(pid) != os.getpid():
            self._watch_foreign(pid)

    def _watch_foreign(self, pid: int) -> None:
        """A new main pid whose parent is still alive: that parent will reap it, so herder
        learns of its end from a pidfd (readable at exit) instead of from waitpid."""
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return
        self.pidfds[pid] = fd
        loop = asyncio.get_running_loop()

        def gone() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self.pidfds.pop(pid, None)
            if _ppid(pid) != os.getpid():   # our own (re-parented) zombie is left to the reaper
                self.sup.on_foreign_exit(pid)

        loop.add_reader(fd, gone)


_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss(pid: int) -> int:
    """Resident set size of one process in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def descendants(pid: int, limit: int = 10_000) -> set[int]:
    """pid and its descendants, from /proc/PID/task/*/children (no scan of all of /proc)."""
    found, todo = {pid}, [pid]
    while todo and len(found) < limit:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(c) for c in f.read().split()]
            except (OSError, ValueError):
                continue
            for k in kids:
                if k not in found:
                    found.add(k)
                    todo.append(k)
    return found


def install(sup: Supervisor) -> Health:
    return Health.install(sup)

