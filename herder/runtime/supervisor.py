"""The supervisor (the decision process): one loop that owns the World, steps the core, and
runs the effects.

Inputs (the keeper's exit records, timers, signals to herder, the notify socket, check
results, the API) only *post* typed events. `_drain` applies them one at a time with
`herder.core.step.step(world, event, now)`, sends the keeper the record of what the step
changed (herder.core.snapshot), then hands the effects to the effect runner
(herder.runtime.effects). Nothing else changes the World, so there are no locks and no
decision outside the core. The answer to a spawn (Spawned / SpawnFailed) is stepped
before any other event, and nothing else is stepped while a spawn is in flight, so
nothing can come between a spawn and its answer.

The services' parent is the keeper (herder.keeper), which this process talks to over
one socket (herder.runtime.keeper_link): a supervisor started by `herder up` gets the
keeper that started it; one built in-process (tests) starts an attached keeper of its
own. Whatever this process holds that must outlive it (the lock, the API and notify
sockets) it stores with the keeper, and a successor gets it back at its handshake, with
the state record and the keeper's table of live children (herder.runtime.adopt).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from herder.config import Config, to_record
from herder.core import effects as fx
from herder.core import snapshot
from herder.core.events import Command, Down, Event, Force, Interrupt, TimerFired, Verb
from herder.core.instance import Instance
from herder.core.step import step
from herder.core.world import Phase, World
from herder.health.limits import Limits
from herder.health.monitor import Checks
from herder.health.notify import NotifyServer
from herder.keeper import wire
from herder.keeper.counters import KEEPER_SLOT, ORPHANS, Counters
from herder.logs._hub import LogHub
from herder.process.cgroup import Cgroups
from herder.process.rlimits import raise_nofile
from herder.runtime import adopt, batch, container, signals, status, upward
from herder.runtime.calendar import Calendar, local_zone
from herder.runtime.clock import Clock, MonotonicClock
from herder.runtime.effects import EffectRunner
from herder.runtime.events import EventBus
from herder.runtime.hooks import Hooks
from herder.runtime.keeper_link import KeeperLink, handshake, spawn_attached
from herder.runtime.ports import Component
from herder.runtime.processes import Processes
from herder.runtime.timers import Timers
from herder.store import lock, runstate

if TYPE_CHECKING:
    from herder.alerts.component import AlertsComponent

KEEPER_LOST = 70      # this process's exit code when its keeper died and it could not replace it


class Supervisor:
    def __init__(self, config: Config, *, clock: Clock | None = None, rng: random.Random | None = None,
                 keeper: KeeperLink | None = None, welcome: dict[str, Any] | None = None, fresh: bool = False,
                 init: container.Init | None = None) -> None:
        self.clock: Clock = clock or MonotonicClock()
        self.init = init or container.detect()   # PID 1? in a container? (docs/container.md)
        rng = rng or random.Random()
        self.world = World.create(config, self.clock.now(), lambda: rng.uniform(-1.0, 1.0), local_zone())
        self.events = EventBus()
        self.components: list[Component] = []
        self.link: KeeperLink | None = keeper
        self.welcome = welcome
        self.fresh = fresh
        self.stored: dict[str, int] = {}          # fds a previous decision process kept with the keeper
        self.kept_fds: dict[str, int] = {}        # ours, as stored with the keeper
        self.handover = False                     # exiting for an upgrade: the keeper carries on
        self.adopted = False                      # adoption ran: the World, not the welcome, says what runs
        self.flights_lost: list[Any] = []         # spawns in flight when the keeper died (herder.runtime.keeper_lost)
        self.signals_unstepped: dict[int, tuple[Any, str, Event]] = {}   # id(event) -> (keeper's id, what, event)
        self.matched: dict[str, dict[str, Any]] = {}   # the last ready.log match per instance
        self._queue: deque[Event] = deque()
        self._started: list[Callable[[], None]] | None = []   # when_started; None once started
        self._answers: deque[Event] = deque()    # Spawned / SpawnFailed: stepped first
        self._draining = False
        self._held = 0                            # > 0: posts wait for the end of a burst (`together`)
        self._running = False
        self._tickets = 0
        self._finished: asyncio.Event | None = None
        self._sent_world = ""
        self._sent_config: Config | None = None
        self.logs = LogHub(config, self.events)
        self.procs = Processes(self.world, self.logs, self.post, self._answer, self.clock)
        self.timers = Timers(self.clock, lambda key, at: self.post(TimerFired(key, at)), self.together)
        self.checks = Checks(self.world, self.post, self.events, self.procs.watch, self.procs.tree_pids)
        posix = sys.platform != "win32"
        self.limits = Limits(config.state_dir, self.world, self.events) if posix else None
        self.notify = NotifyServer(config.state_dir, self.world, self.procs, self.post, self.events) if posix else None
        if self.notify is not None:
            self.procs.env_for.append(self.notify.env)
            self.notify.take_stored, self.notify.store = self.take_stored, self.store
        if self.limits is not None:
            self.procs.prepare.append(self.limits.prepare)
            self.procs.exit_reason = self.limits.exit_reason
        self.hooks = Hooks(self.world, self.procs, self.logs, self.post, self.clock)
        self.calendar = Calendar(self.clock, config.state_dir)
        self.runner = EffectRunner(self.world, self.procs, self.timers, self.events, self.logs, self.checks,
                                   self.limits, self._finish, self.hooks, self.calendar)
        self.on_keeper_lost: Callable[[], None] | None = None
        upward.attach(self)  # READY/STATUS/WATCHDOG/STOPPING to the manager that runs herder
        self.alerts: AlertsComponent | None = None
        if config.alerts.targets or config.hooks.on_event:   # [alerts], [hooks] on_event
            from herder.alerts.component import AlertsComponent

            self.alerts = AlertsComponent(self, self.procs.watch, self.procs.base_env)
        # extra fields of each status record, asked per request (never on a timer)
        self.status_fields: list[Callable[[Instance], dict[str, Any]]] = [self.logs.status_fields]

    # ---- what components read (herder.runtime.ports.Host) -----------------------------------------

    @property
    def config(self) -> Config:
        return self.world.config

    @property
    def instances(self) -> Mapping[str, Instance]:
        return self.world.instances

    @property
    def shutting_down(self) -> bool:
        """True from the first `down` request (SIGTERM, Ctrl+C, API) on."""
        return self.world.phase is not Phase.UP

    @property
    def exit_code(self) -> int:
        return self.world.exit_code

    @property
    def cgroups(self) -> Cgroups | None:
        return self.procs.cgroups

    @property
    def orphans_reaped(self) -> int:
        """Processes reaped that herder did not start: the keeper's count (its children's
        orphans; every orphan of a container it is the init of), live, and this process's."""
        counters, slot = self.logs.counters, (self.welcome or {}).get("slots", {}).get(KEEPER_SLOT)
        keeper = counters.get(int(slot), ORPHANS) if counters is not None and slot is not None else 0
        return keeper + self.procs.orphans_reaped

    def resolve(self, names: Iterable[str]) -> list[str]:
        """Service or instance names -> instance names; UnknownService names what exists."""
        return self.world.resolve(names)

    def status(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """One record per instance (interface.md `status --json`), with what each of
        `status_fields` adds (the log hub's counters; CPU and memory: herder.process.usage)."""
        return status.records(self.world, self.clock.now(), names, self._status_fields)

    def _status_fields(self, inst: Instance) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for fields in self.status_fields:
            out.update(fields(inst))
        return out

    # ---- fds kept with the keeper ------------------------------------------------------------------

    def take_stored(self, name: str) -> int | None:
        """An fd a previous decision process stored with the keeper (a listening socket …)."""
        return self.stored.pop(name, None)

    def store(self, name: str, fd: int) -> None:
        """Keep a copy of `fd` with the keeper, for the next decision process (and remember
        ours: a keeper that dies is replaced from them, herder.runtime.keeper_lost)."""
        self.kept_fds[name] = fd
        if self.link is not None:
            self.link.send({"t": "store", "name": name}, [os.dup(fd)])

    # ---- posting ---------------------------------------------------------------------------------

    def when_started(self, fn: Callable[[], None]) -> None:
        if self._started is None:
            fn()
        else:
            self._started.append(fn)

    def post(self, event: Event) -> None:
        """An input for the core; applied at once when the loop runs, in order."""
        self._queue.append(event)
        if self._running and not self._draining and not self._held:
            self._drain()

    def _answer(self, event: Event) -> None:
        self._answers.append(event)
        if self._running and not self._draining and not self._held:
            self._drain()

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Events posted meanwhile are applied when it ends, in one drain (the timers that
        fall due in one wake-up, the messages of one read from the keeper), so that they
        can be stepped together (herder.runtime.batch)."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held and self._running and not self._draining and (self._queue or self._answers):
                self._drain()

    def request(self, make: Callable[[int], Event]) -> asyncio.Future[fx.Reply]:
        """Post make(ticket) now; the future gets the core's Reply(ticket)."""
        self._tickets += 1
        ticket = self._tickets
        fut: asyncio.Future[fx.Reply] = asyncio.get_running_loop().create_future()
        self.runner.replies[ticket] = fut
        fut.add_done_callback(lambda _: self.runner.replies.pop(ticket, None))
        self.post(make(ticket))
        return fut

    async def ask(self, make: Callable[[int], Event]) -> fx.Reply:
        """Post make(ticket) and wait for the core's Reply(ticket)."""
        return await self.request(make)

    def start(self, names: Iterable[str]) -> None:
        self.post(Command(Verb.START, tuple(names)))

    def stop(self, names: Iterable[str]) -> None:
        self.post(Command(Verb.STOP, tuple(names)))

    def restart(self, names: Iterable[str]) -> None:
        self.post(Command(Verb.RESTART, tuple(names)))

    def request_down(self) -> None:
        """Stop everything in reverse dependency order, then finish (SIGTERM, first Ctrl+C)."""
        self.post(Down())

    def upgrade_refused(self) -> str:
        """Why `upgrade` cannot be done now ("" when it can)."""
        link = self.link
        if link is None or link.lost:
            return "herder's keeper is being replaced; try again in a moment"
        if link.pid is not None:
            return "this supervisor runs in-process with an attached keeper (a test or the library): nothing to upgrade"
        if self.shutting_down:
            return "herder is stopping"
        if self.handover:
            return "an upgrade is already under way"
        return ""

    def started_by(self) -> tuple[str, int]:
        welcome = self.welcome or {}
        return str(welcome.get("why", "start")), int(welcome.get("gen", 1))

    def upgrade(self) -> None:
        """Replace the keeper and this process with the installed version, services untouched:
        the keeper drains its log writer and re-execs itself with its state and fds (same
        pid: systemd's daemon-reexec shape; herder.keeper.resume), then starts a decision
        process of the new version, which adopts every instance with the state carried over."""
        if self.upgrade_refused() or self.link is None:
            return
        self.events.emit("", "upgrade", f"herder: upgrading in place to the installed version ({sys.executable}); "
                         "services keep running")
        self.link.send({"t": "upgrade", "argv": [sys.executable]})
        self.handover = True
        if self._finished is not None:
            self._finished.set()

    def force(self) -> None:
        """SIGKILL everything left now (second Ctrl+C); the exit code becomes 1."""
        self.post(Force())

    def _drain(self) -> None:
        self._draining = True
        try:
            due_round = False
            while True:
                while self._answers or (self._queue and not self.procs.in_flight):
                    stepped = self.calendar.drifted(self.world)    # the wall clock was stepped: tell the core first
                    if stepped is not None:
                        effects = step(self.world, stepped, self.clock.now())
                        self._record([stepped], effects)
                        self.runner.run(effects)
                    if self._answers:
                        evs = [self._answers.popleft()]
                        effects = step(self.world, evs[0], self.clock.now())
                    else:
                        evs, effects = batch.take(self._queue, lambda ev: step(self.world, ev, self.clock.now()))
                    self._record(evs, effects)
                    for ev in evs:
                        self.procs.stepped(ev)
                        self._signal_stepped(ev)
                    self.runner.run(batch.signals_first(effects) if len(evs) > 1 else effects)
                # timers already due (the 0 s backoff the exit's step armed) are stepped now, not
                # after a wake-up of the loop; once per drain, so that a step that keeps arming
                # due timers (a spawn failing at once, backoff 0) still lets the loop run between
                if due_round or not self.timers.fire_due():
                    break
                due_round = True
        finally:
            self._draining = False
        if self.procs.acks and self.link is not None:
            self.link.send({"t": "ack", "seqs": self.procs.acks})
            self.procs.acks = []
        self.procs.save_runstate()

    def _record(self, evs: list[Event], effects: list[fx.Effect]) -> None:
        """What the steps changed, to the keeper, before any of their effects is carried out."""
        link = self.link
        if link is None or link.lost:
            return
        world = self.world
        names = {getattr(ev, "name", "") for ev in evs} | batch.touched(effects)
        names.discard("")
        inst = {n: (self.inst_record(n) if n in world.instances else None)
                for n in names if not n.startswith("#")}
        msg: dict[str, Any] = {"t": "state", "inst": inst}
        if world.config is not self._sent_config:
            self._sent_config = world.config
            link.send({"t": "config", "text": json.dumps(to_record(world.config)), "tiers": self.stop_tiers()})
        w = snapshot.world(world, to_record)
        text = json.dumps(w, sort_keys=True)
        if text != self._sent_world:
            self._sent_world = text
            msg["world"] = w
        if inst or "world" in msg:
            link.send(msg)

    def _record_all(self) -> None:
        """The whole World, once (a fresh start, or one that restored a record)."""
        if self.link is None:
            return
        self._sent_config = self.world.config
        self.link.send({"t": "config", "text": json.dumps(to_record(self.world.config)), "tiers": self.stop_tiers()})
        w = snapshot.world(self.world, to_record)
        self._sent_world = json.dumps(w, sort_keys=True)
        self.link.send({"t": "state", "world": w,
                        "inst": {n: self.inst_record(n) for n in self.world.instances}})

    def stop_tiers(self) -> list[list[str]]:
        """Instances in stop order, tier by tier (reverse dependency order): what the keeper
        follows if it must stop them without a decision process (herder.keeper.stopper)."""
        from herder.core import graph

        return [[n for svc in level for n in self.world.by_service.get(svc, [])]
                for level in reversed(graph.levels(self.world.deps))]

    def inst_record(self, name: str) -> dict[str, Any]:
        """An instance's state record, with the cookie its processes carry: a successor
        looks for a process a killed keeper started by it (herder.runtime.adopt), and
        spawns again with the same one."""
        d = snapshot.instance(self.world.instances[name])
        p = self.procs.procs.get(name)
        if p is not None:
            d["cookie"] = p.cookie
        return d

    def finish_now(self) -> None:
        """End the run as it is (no stop): the keeper carries the services on."""
        if self._finished is not None:
            self._finished.set()

    def _finish(self, exit_code: int) -> None:
        if self._finished is not None:
            self._finished.set()

    # ---- the keeper ----------------------------------------------------------------------------

    def _keeper_message(self, msg: dict[str, Any], fds: list[int]) -> None:
        t = msg.get("t")
        if t == "exit":
            self.procs.exited(msg)
        elif t in ("spawned", "spawn_failed"):
            self.procs.answered(msg)
        elif t == "matched":
            from herder.core.events import LogMatched

            self.matched[str(msg["name"])] = msg      # a keeper that dies now has it carried (keeper_lost)
            self.post(LogMatched(str(msg["name"]), int(msg["run"]), str(msg["line"])))
        elif t == "signal":
            self._forwarded(str(msg.get("what")), msg.get("id"))
        elif not self.logs.on_message(msg):
            pass
        wire.close_fds(fds)

    def _forwarded(self, what: str, sid: Any) -> None:
        """A signal the keeper caught (SIGTERM …), forwarded. The keeper keeps it until it
        is acknowledged, after the step that took it (a new decision process gets it again)."""
        if what == "reload":
            os.kill(os.getpid(), signal.SIGHUP)   # the control component's SIGHUP handler reloads
            if sid is not None and self.link is not None:
                self.link.send({"t": "signal_ack", "id": sid})
            return
        if what not in ("down", "interrupt"):
            return
        ev: Event = Down() if what == "down" else Interrupt()
        self.signals_unstepped[id(ev)] = (sid, what, ev)
        self.post(ev)

    def _signal_stepped(self, ev: Event) -> None:
        got = self.signals_unstepped.pop(id(ev), None)
        if got is not None and got[0] is not None and self.link is not None:
            self.link.send({"t": "signal_ack", "id": got[0]})

    def _keeper_gone(self) -> None:
        """The keeper died (this process did not end it): replace it (herder.runtime.keeper_lost)."""
        if self._finished is not None and self._finished.is_set():
            return
        flights = self.procs.lost_flights()
        if self.on_keeper_lost is not None:
            self.flights_lost = flights      # their pipes and cookies go into the record
            self.on_keeper_lost()
            return
        for f in flights:
            f.outs.close_all()
        self.events.emit("", "keeper_lost", "herder: the keeper process died; stopping (attached keeper)")
        self.world.exit_code = KEEPER_LOST
        if self._finished is not None:
            self._finished.set()

    def _attach(self, link: KeeperLink, welcome: dict[str, Any]) -> None:
        self.link = link
        self.procs.link = link
        counters = Counters(welcome["counters_fd"], writable=False)
        self.logs.attach(link, counters)
        self.stored = dict(welcome.get("stored_fds") or {})
        for rec, fd in welcome.get("pipe_list", []):
            name = str(rec["name"])
            got = self.logs.pipes.get(name)
            if got is None:
                self.logs.pipes[name] = (int(rec["run"]), [fd], [rec.get("spec") or {}])
            else:       # the second stream: its spec too, or a keeper-lost record skips the pair
                got[1].append(fd)
                got[2].append(rec.get("spec") or {})
        link.on_message = self._keeper_message
        link.on_lost = self._keeper_gone
        link.together = self.together
        self.procs.keeper_exited = lambda code: None
        names = list(self.world.instances)
        link.send({"t": "setup", "state_dir": str(self.config.state_dir),
                   "herder_log": str(self.config.state_dir / "herder.log"),
                   "names": names if self.logs.console != "off" else None, "console": self.logs.console})
        self.logs.set_up()
        for note in welcome.get("notes") or []:
            self.logs.on_message(note)
        lost = welcome.get("lost") or {}
        if lost:
            total = sum(int(v) for v in lost.values())
            self.events.emit("", "log_lost", f"herder: its keeper was killed holding {total} byte(s) of output "
                             "it had read but not written; they may be missing from the logs of "
                             f"{', '.join(sorted(lost))}", {"lost": lost})

    # ---- lifetime --------------------------------------------------------------------------------

    async def run(self, only: Iterable[str] | None = None, *, install_signals: bool = True,
                  ready: Callable[[], None] | None = None) -> int:
        """Start (or adopt), supervise until `down`, stop everything, return the exit code."""
        loop = asyncio.get_running_loop()
        self._finished = asyncio.Event()
        config = self.config
        link = self.link
        attached = link is None
        lock_fd: int | None = None
        gid = lock.group_id(config.herder.socket_group)
        if attached:
            lock_fd = lock.acquire(config.state_dir, group_gid=gid)
            link = spawn_attached()
            try:
                self.welcome = handshake(link)
            except (OSError, TimeoutError):
                link.close()
                os.close(lock_fd)
                raise
        assert link is not None and self.welcome is not None
        welcome = self.welcome
        self._attach(link, welcome)
        lock_fd = lock_fd if lock_fd is not None else self.take_stored("lock")
        if lock_fd is None:     # the first decision process of a keeper: the keeper's pid is herder's
            lock_fd = lock.acquire(config.state_dir, group_gid=gid, pid=int(welcome.get("pid") or os.getpid()))
        self.store("lock", lock_fd)
        raise_nofile()   # herder's own fds never run out before its services' (herder.process.rlimits)
        link.open()
        self.procs.runstate = runstate.RunStateWriter(config.state_dir / "run.json", self.procs.live_records)
        undo = [signals.install_reaper(loop, self.procs.reap)]
        if install_signals:
            undo += [signals.install(loop, signal.SIGTERM, self.request_down),
                     signals.install(loop, signal.SIGINT, lambda: self.post(Interrupt())),
                     signals.install(loop, signal.SIGUSR1, self.logs.reopen)]
            pwr = getattr(signal, "SIGPWR", None)
            if self.init.pid1 and pwr is not None:   # LXC and Incus halt a container's init with SIGPWR
                undo.append(signals.install(loop, pwr, self.request_down))
        try:
            if config.herder.cgroups:
                self.procs.cgroups = Cgroups.detect(config.state_dir)
            if self.limits is not None:
                self.limits.cgroups = self.procs.cgroups
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(self.logs)
                for own in (self.notify, self.limits, self.checks, self.alerts):
                    if own is not None:
                        await stack.enter_async_context(own)
                for comp in self.components:
                    await stack.enter_async_context(comp)
                where = f", {self.init.describe()}" if self.init.container_init else ""   # the keeper's place
                self.events.emit("", "supervisor", f"herder: supervising {len(self.instances)} instance(s) "
                                 f"(pid {os.getpid()}, keeper pid {welcome.get('pid')}{where}, "
                                 f"tracking by {'cgroup' if self.cgroups else 'process group'})")
                self.timers.open()
                self._running = True
                self.post(self.calendar.first(self.world))     # schedules: the wall clock, the last runs
                adopt.start(self, welcome, only, self.fresh)
                self.adopted = True
                self._record_all()
                for msg, fds in welcome.get("early") or []:
                    self._keeper_message(msg, fds)
                for item in welcome.get("pending") or []:     # [id, what] (a bare name: no acknowledgement)
                    sid, what = (item[0], item[1]) if isinstance(item, list) else (None, item)
                    self._forwarded(str(what), sid)
                link.send({"t": "up"})     # past start-up: from now on a failure is restarted
                started, self._started = self._started or [], None
                for fn in started:
                    fn()
                if ready is not None:
                    ready()
                await self._finished.wait()
                self._running = False
                self.timers.close()
                if not self.handover:
                    await self.procs.sweep()
        finally:
            self._running = False
            self.timers.close()
            for fut in self.runner.replies.values():
                if not fut.done():
                    fut.set_result(fx.Reply(0, False, "herder stopped"))
            for restore in undo:
                restore()
            self.procs.close()
            if self.procs.runstate is not None:
                await self.procs.runstate.close(final=not self.handover)
            if not link.lost:
                link.send({"t": "bye", "code": self.exit_code, "handover": self.handover})
                link.flush_blocking()
            link.close()      # its EOF is what ends an attached keeper (after `bye`)
            if attached and link.pid is not None:
                await _wait_keeper(link)
            os.close(lock_fd)
        return self.exit_code


async def _wait_keeper(link: KeeperLink, timeout: float = 30.0) -> None:
    """An attached keeper exits once its pipes are written out: wait for it (bounded), on
    its pidfd (readable when it ends), then reap it."""
    assert link.pid is not None
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(link.pid)
    except OSError:
        return
    gone = asyncio.Event()
    loop.add_reader(fd, gone.set)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await gone.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(link.pid, os.WNOHANG)
