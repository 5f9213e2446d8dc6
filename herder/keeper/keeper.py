"""The keeper: the small process that outlives the decision process (architecture.md rule 16).

`herder up` becomes the keeper, and the keeper runs the decision process (asyncio,
config, API, the core) as its child. The keeper is the services' real parent and
subreaper, holds every pipe's read end and writes every log file (herder.keeper.capture),
holds the fds the decision process stores with it (the API and notify sockets, the
state_dir lock), keeps the decision process's state snapshot, and relays herder's own
sd_notify messages to its service manager. It makes no decision about an instance: it
starts what it is told to, reports what ended, and restarts the decision process when it
dies (at once, then with a backoff; after repeated failures without the snapshot; past a
limit it stops every service and exits 1, saying why).

Why this split (docs/supervisor.md has the whole argument): a kill -9 of a process that
owns the pipes or the log writer kills every service that writes to stdout (SIGPIPE) and
loses the bytes between a read and a write; s6 keeps exactly one instance per service
because s6-supervise, not the decision maker, is the parent, and systemd keeps its fds
across a re-exec. The keeper is both, for all services at once: one process, no asyncio,
no config parsing, no third-party imports, so it changes rarely and costs little.

One thread runs this loop (a selector over the decision process's socket, the signal
wake-up pipe, the outbox wake-up pipe and watched pidfds, with a small timer heap); the
capture runs its reader and writer threads. Everything for the decision process goes
through one outbox, so messages from the threads (a matched line, an exit after its
drain) keep their order.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from herder.errors import SpawnError
from herder.keeper import resume, trampoline, upgrade, wire
from herder.keeper.capture import Capture, ChannelSpec
from herder.keeper.children import Child, Children, exit_words
from herder.keeper.counters import KEEPER_SLOT, ORPHANS, Counters
from herder.process import tree
from herder.process.spawn import Launch

EXIT_DRAIN_WAIT = 0.25      # longest an exit record waits for the instance's last output
RESTART_WINDOW = 60.0       # failures of the decision process counted over this window
FRESH_AFTER = 3             # this many start-up failures in the window: start it without the snapshot
GIVE_UP_AFTER = 6           # this many: say loudly that the services run unsupervised (and keep trying)
_PR_SET_CHILD_SUBREAPER = 36
RUNNING = False             # a keeper of this process runs its loop (herder.keeper.trampoline reads it)

_HANDLED = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1}
_FORWARDED = {signal.SIGTERM: "down", signal.SIGINT: "interrupt", signal.SIGHUP: "reload"}
_SIGPWR = getattr(signal, "SIGPWR", None)     # LXC and Incus halt a container's init with it


@dataclass
class Options:
    dp_args: list[str] = field(default_factory=list)    # the decision process's arguments (herder.runtime.dp)
    attached: bool = False      # started by a decision process (tests): end with it, never restart it
    dp_fd: int = -1             # attached: the socket to it
    ready_fd: int = -1          # `up -d`: the pipe the first decision process reports start-up on
    resume_fd: int = -1         # a record of a previous keeper (exec: upgrade; or a decision process)
    console: str = "off"        # what goes to stdout: "view" (a terminal's `name | line`), "text" / "json"
                                # (every line on stdout/stderr: a container's logs), "off"


@dataclass
class DP:
    """The decision process the keeper runs (or, attached, the one that runs it)."""

    sock: socket.socket
    pid: int | None
    gen: int
    started: float
    hello: float | None = None
    up: bool = False            # it said it is supervising (its start-up did not fail)
    bye: int | None = None
    handover: bool = False      # it exits for an upgrade, not by failure
    last_ping: float = 0.0
    eof: bool = False
    reaped: bool = False
    status: int | None = None


class Keeper:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.outbox = wire.Outbox()
        self.counters = Counters()
        self.capture = Capture(self._emit, self.counters, lambda: self.outbox.pending)
        self.children = Children()
        self.sel = selectors.DefaultSelector()
        self.dp: DP | None = None
        self.gen = 0
        self.snap_world: Any = None
        self.snap_inst: dict[str, Any] = {}
        self.config_text: str | None = None
        self.stored: dict[str, int] = {}
        self.exits: dict[int, dict[str, Any]] = {}       # exit records not yet acknowledged
        self._acked: set[int] = set()
        self._exit_lock = threading.Lock()
        self._seq = itertools.count(1)
        self.state_dir: str | None = None
        self.pending: list[str] = []          # signals for a decision process that is not there
        self.failures: deque[float] = deque()
        self.code: int | None = None          # set: finish with this exit code
        self.upgrade: list[str] | None = None  # set: exec this argv once the decision process is gone
        self._upgrade_due = False             # the old decision process is gone: exec at the loop's top
        self._unsent: dict[int, dict[str, Any]] = {}   # exit records waiting for their last output
        self.notes: list[dict[str, Any]] = []  # events for the next decision process
        self.lost: dict[str, int] = {}
        self.why = "start"
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._tick = itertools.count()
        self._signals: deque[int] = deque()
        self.notify_addr = os.environ.get("NOTIFY_SOCKET") or None
        self.watchdog = _watchdog_interval()
        self.console: Any = None      # the tap that writes to stdout (opts.console), once there are names
        self.init: dict[str, Any] | None = None   # what herder.runtime.container says of this process
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._kick_r, self._kick_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._ready_hold = -1
        self.ever_up = False      # a decision process got past its start-up once

    # ---- outbox ------------------------------------------------------------------------------

    def _emit(self, msg: dict[str, Any], fds: list[int] | None = None, close_after: bool = True) -> None:
        """A message for the decision process, from any thread, in order. With none
        connected, events wait for the next one (bounded) and the rest is dropped: exits
        and spawn answers are kept elsewhere until acknowledged."""
        dp = self.dp
        if dp is None or dp.hello is None:
            if msg.get("t") == "event" and len(self.notes) < 1000:
                self.notes.append(msg)
            if close_after:
                wire.close_fds(list(fds or ()))
            return
        if self.outbox.put(msg, fds, close_after):
            with contextlib.suppress(BlockingIOError):
                os.write(self._kick_w, b"!")

    def _flush(self) -> None:
        dp = self.dp
        if dp is None:
            return
        try:
            done = self.outbox.flush(dp.sock)
        except OSError:
            return      # the decision process is gone: its EOF is handled on the read side
        events = selectors.EVENT_READ | (0 if done else selectors.EVENT_WRITE)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(dp.sock, events, "dp")

    # ---- timers ------------------------------------------------------------------------------

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._tick), fn))

    def _run_timers(self) -> float | None:
        while self._timers and self._timers[0][0] <= time.monotonic():
            _, _, fn = heapq.heappop(self._timers)
            fn()
        return max(0.0, self._timers[0][0] - time.monotonic()) if self._timers else None

    # ---- lifetime ----------------------------------------------------------------------------

    def run(self) -> int:
        with contextlib.suppress(OSError, AttributeError):
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        from herder.process.rlimits import raise_nofile

        raise_nofile()      # the pipes of every service are the keeper's fds; the services get the soft limit it had
        self._install_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)   # blocked across an exec of the keeper
        self.sel.register(self._wake_r, selectors.EVENT_READ, "signal")
        self.sel.register(self._kick_r, selectors.EVENT_READ, "kick")
        self.capture.start()
        if not self.opts.attached:      # the keeper is herder's pid: a container's init, if any, is this process
            from herder.runtime import container

            init = container.detect()
            self.init = {"pid1": init.pid1, "engine": init.engine, "under": init.under}
            if init.pid1 and _SIGPWR is not None:
                signal.signal(_SIGPWR, lambda signum, frame: self._signals.append(signum))
        if self.opts.resume_fd >= 0:
            raw = resume.read(self.opts.resume_fd)
            try:
                resume.load(self, raw)
            except Exception as e:  # noqa: BLE001 - a record this version cannot read must not kill a service
                self.capture.pump.stop(close_channels=False)
                trampoline.hold(raw, f"upgrade: this keeper cannot resume the record ({e!r})")
            self.ever_up = True        # a successor: what ran before was up
            self.reap()                # exits while the signals were blocked across the exec
        # the keeper's own slot exists before the welcome names the slots
        self.counters.set(self.counters.slot(KEEPER_SLOT), ORPHANS, self.children.orphans_reaped)
        if self.opts.attached:
            sock = socket.socket(fileno=self.opts.dp_fd)
            sock.setblocking(False)
            self._connect(DP(sock, None, 1, time.monotonic()))
        else:
            self._spawn_dp()
        if self.watchdog:
            self._ping_manager()
        global RUNNING
        RUNNING = True      # the trampoline's fallback no longer applies (its record's fds are ours now)
        while self.code is None or self.dp is not None:
            if self._upgrade_due:      # never from inside a reap or message batch (docs: upgrade)
                self._upgrade_due = False
                self._upgrade_now()
                continue
            timeout = self._run_timers()
            for key, mask in self.sel.select(timeout):
                self._ready(key, mask)
            if self.code is not None and self.dp is None:
                break
        return self._finish()

    def _ready(self, key: selectors.SelectorKey, mask: int) -> None:
        what = key.data
        if what == "signal":
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
            while self._signals:
                self._on_signal(self._signals.popleft())
        elif what == "kick":
            with contextlib.suppress(BlockingIOError):
                os.read(self._kick_r, 4096)
            self._flush()
        elif what == "dp":
            if mask & selectors.EVENT_WRITE:
                self._flush()
            if mask & selectors.EVENT_READ:
                self._read_dp()
        elif isinstance(what, tuple) and what[0] == "pidfd":
            self._foreign_gone(what[1])

    def _finish(self) -> int:
        if self.children.by_pid:      # nothing herder started may outlive it
            self.children.signal_all(signal.SIGKILL)
        self.capture.close()
        if self.console is not None and hasattr(self.console, "close"):   # the terminal view's thread
            self.console.close()
        self._manager("STOPPING=1")
        return self.code if self.code is not None else 1

    # ---- signals -----------------------------------------------------------------------------

    def _install_signals(self) -> None:
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

        def note(signum: int, frame: object) -> None:
            self._signals.append(signum)

        for sig in _HANDLED:
            signal.signal(sig, note)
            signal.siginterrupt(sig, False)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            self._reap()
        elif signum == signal.SIGUSR1:
            self.capture.reopen()
        elif signum in _FORWARDED or signum == _SIGPWR:
            what = _FORWARDED.get(signal.Signals(signum), "down")
            dp = self.dp
            leaving = dp is not None and (dp.eof or dp.handover or dp.bye is not None)
            if dp is not None and dp.hello is not None and not leaving:
                self._emit({"t": "signal", "what": what})
            elif self.opts.attached:
                pass
            else:
                self.pending.append(what)
                if what in ("down", "interrupt") and self.dp is None and not self.children.by_pid:
                    self.code = 0 if what == "down" else 130

    # ---- the decision process ------------------------------------------------------------------

    def _spawn_dp(self) -> None:
        import subprocess

        self.gen += 1
        mine, theirs = wire.pair()
        argv = [sys.executable, "-m", "herder.runtime.dp", "--keeper-fd", str(theirs.fileno()),
                "--generation", str(self.gen), *self.opts.dp_args]
        if len(self.failures) >= FRESH_AFTER:
            argv.append("--fresh")
        keep = [theirs.fileno()]
        ready = self.opts.ready_fd if self.opts.ready_fd >= 0 else self._ready_hold
        if ready >= 0:      # until one decision process is up, each one gets `up -d`'s pipe
            argv += ["--ready-fd", str(ready)]
            keep.append(ready)
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        if self.notify_addr:
            env["HERDER_UPWARD"] = "keeper"      # report READY/STATUS/WATCHDOG through the keeper
            if self.watchdog:
                env["HERDER_UPWARD_WATCHDOG"] = str(self.watchdog)
        try:
            proc = subprocess.Popen(argv, executable=wire.self_exe(), pass_fds=keep, close_fds=True, env=env,
                                    process_group=0)
        except OSError as e:
            print(f"herder keeper: cannot start the decision process: {e}", file=sys.stderr, flush=True)
            mine.close()
            theirs.close()
            self._dp_failed(None, 1, started=False)
            return
        finally:
            theirs.close()
        proc.returncode = 0       # reaped by the keeper's reaper
        if self.opts.ready_fd >= 0:
            # only the first decision process reports start-up; the keeper holds the pipe until
            # that one is up, so a failed start-up's EOF tells `up -d` the keeper is gone too
            self._ready_hold, self.opts.ready_fd = self.opts.ready_fd, -1
        self._connect(DP(mine, proc.pid, self.gen, time.monotonic()))

    def _connect(self, dp: DP) -> None:
        self.dp = dp
        self.sel.register(dp.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, "dp")

    def _read_dp(self) -> None:
        dp = self.dp
        while dp is not None and self.dp is dp:
            try:
                got = wire.receive(dp.sock)
            except BlockingIOError:
                return
            except OSError:
                got = None
            if got is None:
                self._dp_gone()
                return
            msg, fds = got
            try:
                self._handle(msg, fds)
            except Exception as e:  # noqa: BLE001 - a bad message must never take the keeper down
                wire.close_fds(fds)
                print(f"herder keeper: message {msg.get('t')!r} failed: {e!r}", file=sys.stderr, flush=True)

    def _dp_gone(self) -> None:
        """The decision process closed its end (it exited, or is about to)."""
        dp = self.dp
        if dp is None or dp.eof:
            return
        dp.eof = True
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(dp.sock)
        dp.sock.close()
        self._dp_maybe_done(dp)

    def _dp_maybe_done(self, dp: DP) -> None:
        """Both its socket closed and (when it is our child) its exit reaped: what next."""
        if self.dp is not dp or not dp.eof or (dp.pid is not None and not dp.reaped):
            return
        self.dp = None
        self.capture.unfollow_all()
        self.outbox.discard()
        if self.opts.attached:
            if dp.bye is None:        # the test process went away without `down`: take everything with it
                self.children.signal_all(signal.SIGKILL)
            self.code = dp.bye if dp.bye is not None else 1
            return
        self._after_dp(dp, dp.status)

    def _after_dp(self, dp: DP, status: int | None) -> None:
        if dp.bye is not None and not dp.handover:
            self.code = dp.bye
            return
        if dp.handover and self.upgrade is not None:
            self._upgrade_due = True
            return
        if dp.handover:
            self._spawn_dp()
            return
        if not self.ever_up and not self.children.by_pid and status is not None and status > 0:
            self.code = status      # start-up failed with a reason (config …; said on `up -d`'s pipe)
            return
        self._dp_failed(dp, status, started=True)

    def _upgrade_now(self) -> None:
        argv, self.upgrade = self.upgrade or [], None
        why = upgrade.exec_keeper(self, argv)      # only returns when the exec did not happen
        if self.code is not None:
            return
        self.why = "upgrade_failed"
        self.notes.append({"t": "event", "instance": "", "kind": "upgrade_failed",
                           "message": f"herder: upgrade failed: {why}; the running version carries on",
                           "data": {"reason": why}})
        self._spawn_dp()

    def take_signals(self) -> None:
        """Handle the signals caught so far (before an exec: none may be left behind)."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        while self._signals:
            self._on_signal(self._signals.popleft())

    def _dp_failed(self, dp: DP | None, status: int | None, started: bool) -> None:
        """Restart the decision process: at once when it had been up (a kill -9, a crash
        while supervising), with a backoff when it keeps failing before it is up. The
        services are never stopped for it: while none runs, the keeper still reaps, records
        exits and writes every log; what is missing (restarts, probes, the API) is said."""
        now = time.monotonic()
        if dp is None or not dp.up:
            self.failures.append(now)
        while self.failures and now - self.failures[0] > RESTART_WINDOW:
            self.failures.popleft()
        n = len(self.failures)
        how = "exited" if status is None or status >= 0 else f"was killed by {_signame(-status)}"
        if status is not None and status > 0:
            how = f"exited with code {status}"
        delay = 0.0 if n <= 1 else min(10.0, 0.25 * 2 ** (n - 2))
        if n >= GIVE_UP_AFTER:
            msg = (f"herder: the decision process failed {n} times at start-up within {RESTART_WINDOW:g}s "
                   f"(last: it {how}); the services keep running under the keeper (pid {os.getpid()}), "
                   f"unsupervised: no restarts, probes or API until it starts. Retrying in {delay:g}s; "
                   "see herder.log")
            print(msg, file=sys.stderr, flush=True)
            self._manager(f"STATUS={msg}")
        note = {"t": "event", "instance": "", "kind": "supervisor_restart",
                "message": f"herder: the decision process (pid {dp.pid if dp else '?'}) {how}; "
                           f"restarted{f' after {delay:g}s' if delay else ''} by the keeper (pid {os.getpid()}); "
                           "services kept running", "data": {"pid": dp.pid if dp else None, "status": status}}
        self.notes.append(note)
        self.why = "restart"
        self.later(delay, self._spawn_dp)

    # ---- messages from the decision process ----------------------------------------------------

    def _handle(self, msg: dict[str, Any], fds: list[int]) -> None:
        t = msg.get("t")
        handler = getattr(self, f"_m_{t}", None)
        if handler is None:
            wire.close_fds(fds)
            raise ValueError(f"unknown message {t!r}")
        handler(msg, fds)

    def _m_hello(self, msg: dict[str, Any], fds: list[int]) -> None:
        dp = self.dp
        assert dp is not None
        dp.hello = dp.last_ping = time.monotonic()
        with self._exit_lock:    # an exit reported meanwhile comes after the welcome (or in it)
            welcome: dict[str, Any] = {
                "t": "welcome", "pid": os.getpid(), "gen": dp.gen, "why": self.why,
                "snapshot": {"world": self.snap_world, "instances": self.snap_inst} if self.snap_world is not None
                else None,
                "config": self.config_text, "stored": list(self.stored), "children": self.children.records(),
                "exits": [self.exits[s] for s in sorted(self.exits)], "pending": self.pending, "notes": self.notes,
                "lost": self.lost, "slots": self.counters.slots, "orphans_reaped": self.children.orphans_reaped,
                "init": self.init, "matched": self.capture.matches(),
            }
            self.pending, self.notes, self.lost = [], [], {}
            self._emit(welcome, [self.counters.fd, *self.stored.values()], close_after=False)
        wanted = {id(ch) for chans in self.capture.current.values() for ch in chans}

        def send_pipes(open_: list[tuple[Any, int]]) -> None:     # reader thread: copies of live fds
            pipes: list[dict[str, Any]] = []
            pipe_fds: list[int] = []
            for ch, fd in open_:
                if id(ch) not in wanted:
                    os.close(fd)
                    continue
                pipes.append({"name": ch.instance, "run": ch.run, "stream": ch.stream, "spec": ch.spec.as_dict()})
                pipe_fds.append(fd)
                if len(pipe_fds) == wire.MAX_FDS - 2:
                    self._emit({"t": "pipes", "pipes": pipes}, pipe_fds)
                    pipes, pipe_fds = [], []
            self._emit({"t": "pipes", "pipes": pipes, "last": 1}, pipe_fds)
        self.capture.pump.dup_open(send_pipes)
        self.why = "restart"

    def _unacked(self) -> list[dict[str, Any]]:
        with self._exit_lock:
            both = {**self._unsent, **self.exits}
            return [both[s] for s in sorted(both)]

    def _m_setup(self, msg: dict[str, Any], fds: list[int]) -> None:
        """The decision process's settings, once its config is known (after the welcome)."""
        if msg.get("state_dir") and self.state_dir != str(msg["state_dir"]):
            self.state_dir = str(msg["state_dir"])
        if msg.get("herder_log"):
            from pathlib import Path

            self.capture.open_own(Path(msg["herder_log"]))
        if msg.get("console") is not None:
            self.opts.console = str(msg["console"])
        if msg.get("names"):
            self._console(list(msg["names"]))

    def _console(self, names: list[str]) -> None:
        """The tap that writes to stdout, as opts.console says (made once; later only renamed)."""
        if self.console is not None:
            if hasattr(self.console, "set_names"):
                self.console.set_names(names)
            return
        if self.opts.console == "view":
            from herder.logs._console import ConsoleTap

            self.console = ConsoleTap(names)
        elif self.opts.console in ("text", "json"):
            from herder.logs._stdio import StdioTap

            self.console = StdioTap(names, self.opts.console)
        else:
            return
        self.capture.add_tap(self.console)

    def _m_herder_line(self, msg: dict[str, Any], fds: list[int]) -> None:
        """One of herder's own events among the services' lines on stderr (a container's logs),
        written by the writer thread like theirs, so that no line cuts another."""
        tap = self.console
        if tap is None or not hasattr(tap, "herder_line"):
            return
        data = tap.herder_line(float(msg.get("ts", 0.0)), str(msg.get("instance", "")), str(msg.get("kind", "")),
                               str(msg.get("message", "")))
        self.capture.pump.in_writer(lambda: tap.raw("stderr", data))

    def _m_store(self, msg: dict[str, Any], fds: list[int]) -> None:
        name = str(msg["name"])
        old = self.stored.pop(name, None)
        if old is not None:
            os.close(old)
        if fds:
            self.stored[name] = fds[0]
            wire.close_fds(fds[1:])

    def _m_state(self, msg: dict[str, Any], fds: list[int]) -> None:
        if "world" in msg:
            self.snap_world = msg["world"]
        for name, blob in (msg.get("inst") or {}).items():
            if blob is None:
                self.snap_inst.pop(name, None)
            else:
                self.snap_inst[name] = blob

    def _m_config(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.config_text = str(msg["text"])

    def _m_spawn(self, msg: dict[str, Any], fds: list[int]) -> None:
        name, run, rid = str(msg["name"]), int(msg["run"]), msg.get("id")
        streams: list[Any] = []
        specs: list[ChannelSpec] = []
        reads: list[int] = []
        close: list[int] = []
        pos = 0
        import subprocess

        for mode in (msg["out"], msg["err"]):
            if isinstance(mode, dict):
                r, w = fds[pos], fds[pos + 1]
                pos += 2
                specs.append(ChannelSpec.of(mode))
                reads.append(r)
                streams.append(w)
                close.append(w)
            elif mode == "null":
                streams.append(subprocess.DEVNULL)
            else:
                streams.append(None)
        try:
            launch = Launch.from_wire(msg["launch"])
            child = self.children.spawn(name, run, launch, streams[0], streams[1], msg.get("cgroup"),
                                        str(msg.get("cookie", "")), int(msg.get("stop_signal", signal.SIGTERM)),
                                        float(msg.get("stop_timeout", 10.0)))
        except (SpawnError, OSError, KeyError, ValueError, TypeError) as e:
            wire.close_fds(fds)
            self._emit({"t": "spawn_failed", "id": rid, "name": name, "run": run, "error": str(e)})
            return
        wire.close_fds(close)
        self.capture.add(name, run, specs, reads, watch=msg.get("watch"))
        info = self.capture.stats(name)
        self._emit({"t": "spawned", "id": rid, "name": name, "run": run, "pid": child.pid,
                    "start_time": child.start_time, "cgroup": child.cgroup, **info})

    def _m_move(self, msg: dict[str, Any], fds: list[int]) -> None:
        old = self.children.by_pid.get(int(msg["old"]))
        if old is not None:
            self._unregister_pidfd(old)
        child = self.children.move(str(msg["name"]), int(msg["old"]), int(msg["new"]))
        if child is None or child.own:
            return
        if child.pidfd >= 0:
            self.sel.register(child.pidfd, selectors.EVENT_READ, ("pidfd", child.pid))
        else:        # it ended already (or no pidfd here): its end is reported now, status unknown
            pid = child.pid
            self.later(0.0, lambda: self._foreign_gone(pid))

    def _unregister_pidfd(self, child: Child) -> None:
        if child.pidfd >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(child.pidfd)

    def _m_adopt(self, msg: dict[str, Any], fds: list[int]) -> None:
        """Processes the decision process found alive that the keeper did not fork (left by a
        keeper that was killed): follow them by pidfd, and read the pipes it reopened."""
        for raw in msg.get("children", []):
            child = Child.of(raw)
            if child.pid not in self.children.by_pid:
                self.follow_foreign(child)
        pos = 0
        for ch in msg.get("pipes", []):
            specs = [ChannelSpec.of(s) for s in ch["specs"]]
            mine = fds[pos:pos + len(specs)]
            pos += len(specs)
            self.capture.add(ch["name"], int(ch["run"]), specs, mine)

    def _m_unwatch(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.capture.unwatch(str(msg["name"]))

    def _m_follow(self, msg: dict[str, Any], fds: list[int]) -> None:
        names = msg.get("names")
        self.capture.follow(int(msg["id"]), list(names) if names is not None else None, int(msg.get("tail", 0)),
                            int(msg.get("after", -1)))

    def _m_unfollow(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.capture.unfollow(int(msg["id"]))

    def _m_tail(self, msg: dict[str, Any], fds: list[int]) -> None:
        from herder.keeper.capture import pack

        names, n, rid = msg.get("names"), int(msg.get("n", 10)), msg["id"]

        def answer() -> None:
            recs = self.capture.tail(list(names) if names is not None else None, n)
            self._emit({"t": "tailed", "id": rid, "r": [pack(r) for r in recs]})
        self.capture.pump.in_writer(answer)

    def _m_reopen(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.capture.reopen()

    def _m_own(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.capture.write_own([str(x).encode("utf-8", "surrogateescape") for x in msg.get("lines", [])])

    def _m_ack(self, msg: dict[str, Any], fds: list[int]) -> None:
        with self._exit_lock:
            for seq in msg.get("seqs", []):
                self.exits.pop(int(seq), None)
                self._acked.add(int(seq))
            if len(self._acked) > 4096:     # late timers only ever look at recent ones
                self._acked = set(sorted(self._acked)[-1024:])

    def _m_notify(self, msg: dict[str, Any], fds: list[int]) -> None:
        text = str(msg.get("text", ""))
        if self.dp is not None and "WATCHDOG=1" in text.split("\n"):
            self.dp.last_ping = time.monotonic()
            if self.watchdog:
                return      # the keeper pings its manager itself (see _ping_manager)
        self._manager(text)

    def _m_console(self, msg: dict[str, Any], fds: list[int]) -> None:
        self._console(list(msg.get("names", [])))

    def _m_upgrade(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.upgrade = [str(x) for x in msg.get("argv", [])]
        if self.dp is not None:
            self.dp.handover = True

    def _m_up(self, msg: dict[str, Any], fds: list[int]) -> None:
        if self.dp is not None:
            self.dp.up = True
        self.failures.clear()      # start-up failures are counted in a row
        self.ever_up = True
        if self._ready_hold >= 0:
            os.close(self._ready_hold)
            self._ready_hold = -1

    def _m_bye(self, msg: dict[str, Any], fds: list[int]) -> None:
        if self.dp is not None:
            self.dp.bye = int(msg.get("code", 0))
            self.dp.handover = bool(msg.get("handover", False))

    # ---- children ----------------------------------------------------------------------------

    def reap(self) -> None:
        self._reap()

    def _reap(self) -> None:
        for known in self.children.by_pid.values():     # a pidfd the reaper closes leaves the selector first
            if known.pidfd >= 0 and tree.ppid(known.pid) == os.getpid():
                self._unregister_pidfd(known)
        for pid, code, child in self.children.reap():
            if child is None:      # `herder health` reads the count live (a container's init reaps for all)
                self.counters.set(self.counters.slot(KEEPER_SLOT), ORPHANS, self.children.orphans_reaped)
            if child is not None:
                self._child_exit(child, code)
            elif self.dp is not None and pid == self.dp.pid:
                self.dp.reaped, self.dp.status = True, code
                self._dp_maybe_done(self.dp)

    def _child_exit(self, child: Child, code: int | None) -> None:
        """Record the exit once the instance's last output is written (bounded), then report it.

        The record is kept until a decision process acknowledges it (`ack`), so an exit
        that happens while none is connected, or in the instant one dies, is never lost."""
        code_, sig = exit_words(code)
        seq = next(self._seq)
        record: dict[str, Any] = {"t": "exit", "seq": seq, "name": child.name, "run": child.run, "pid": child.pid,
                                  "code": code_, "signal": sig, "known": code is not None, "tail": []}

        def send(tail: list[str] | None = None) -> None:   # writer thread, or the timer: once
            with self._exit_lock:
                if seq in self.exits or seq in self._acked or seq not in self._unsent:
                    return
                del self._unsent[seq]
                if tail:
                    record["tail"] = tail
                self.exits[seq] = record
            self._emit(record)

        with self._exit_lock:      # kept meanwhile: an exec or a hand-over carries it (`_unacked`)
            self._unsent[seq] = record

        self.capture.drain(child.name, send)
        self.later(EXIT_DRAIN_WAIT, send)

    def _foreign_gone(self, pid: int) -> None:
        child = self.children.by_pid.get(pid)
        if child is not None and child.pidfd >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(child.pidfd)
        gone = self.children.gone(pid)
        if gone is not None:
            self._child_exit(gone, None)

    def follow_foreign(self, child: Child) -> None:
        """A process the keeper cannot reap: follow it by pidfd (its end: status unknown)."""
        fd = self.children.watch(child)
        if fd >= 0:
            self.sel.register(fd, selectors.EVENT_READ, ("pidfd", child.pid))
        else:
            self.later(0.0, lambda: self._foreign_gone(child.pid))

    def bump_seq(self, at_least: int) -> None:
        self._seq = itertools.count(max(at_least + 1, next(self._seq)))

    def restart_capture(self, state: dict[str, Any], fds: list[int]) -> None:
        """After a failed exec: a fresh pump on the same pipes, from the quiesced state."""
        old = self.capture
        self.capture = Capture(self._emit, self.counters, lambda: self.outbox.pending)
        self.capture.own = old.own
        self.capture.sinks = old.sinks
        self.capture.matched = old.matched
        self.capture.start()
        self.capture.restore(state, fds)
        if self.console is not None:
            self.capture.add_tap(self.console)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    # ---- herder's own manager -------------------------------------------------------------------

    def _manager(self, text: str) -> None:
        """One sd_notify datagram to the manager that runs herder (systemd), if any."""
        if not self.notify_addr:
            return
        addr = self.notify_addr
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        # never blocks: a busy manager with a full queue loses this datagram, not the keeper's loop
        kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, kind) as s:
            s.sendto(text.encode(), addr)

    def _ping_manager(self) -> None:
        """WATCHDOG=1 from the keeper's own loop; a decision process silent past the interval
        (its loop is stuck) is killed and restarted, which the services do not notice."""
        self._manager("WATCHDOG=1")
        dp = self.dp
        if dp is not None and dp.hello is not None and dp.pid is not None and \
                time.monotonic() - dp.last_ping > self.watchdog:
            with contextlib.suppress(ProcessLookupError):
                os.kill(dp.pid, signal.SIGKILL)
        self.later(self.watchdog / 2, self._ping_manager)


def _watchdog_interval() -> float:
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return 0.0
    return int(usec) / 1_000_000


def _signame(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))
