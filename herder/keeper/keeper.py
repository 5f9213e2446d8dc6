"""The keeper: the small process that outlives the decision process (architecture.md rule 16).

`herder up` becomes the keeper, and the keeper runs the decision process (asyncio,
config, API, the core) as its child. The keeper is the services' real parent and
subreaper, holds every pipe's read end and writes every log file (herder.keeper.capture),
holds the fds the decision process stores with it (the API and notify sockets, the
state_dir lock), keeps the decision process's state snapshot, and relays herder's own
sd_notify messages to its service manager. It makes no decision about an instance: it
starts what it is told to, reports what ended, and restarts the decision process when it
dies (at once, then with a backoff; after repeated failures without the snapshot; it
never stops a service because its decision process fails). The one decision it takes
alone: a stop asked (SIGTERM …) that no decision process can carry out, because none
comes up, is carried out by the keeper itself (herder.keeper.stopper), which then exits 1.

Why this split (docs/supervisor.md has the whole argument): a kill -9 of a process that
owns the pipes or the log writer kills every service that writes to stdout (SIGPIPE) and
loses the bytes between a read and a write; s6 keeps exactly one instance per service
because s6-supervise, not the decision maker, is the parent, and systemd keeps its fds
across a re-exec. The keeper is both, for all services at once: one process, no asyncio,
no config parsing, no third-party imports, so it changes rarely and costs little.

The module holds the loop, the signals, the children's ends and herder's own manager;
herder.keeper.dproc runs the decision process (start, restart, backoff, upgrade),
herder.keeper.messages answers what it asks.

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
import os
import selectors
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from herder.keeper import resume, trampoline, upgrade, wire
from herder.keeper.capture import Capture
from herder.keeper.children import Child, Children, exit_words
from herder.keeper.counters import KEEPER_SLOT, ORPHANS, Counters
from herder.keeper.dproc import DP, DecisionProcesses
from herder.keeper.messages import Messages
from herder.keeper.stopper import ALONE_AFTER, STOP_KINDS, AloneStop
from herder.process import tree

EXIT_DRAIN_WAIT = 0.25      # longest an exit record waits for the instance's last output
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


class Keeper:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.outbox = wire.Outbox()
        self.counters = Counters()
        self.capture = Capture(self._emit, self.counters, lambda: self.outbox.pending)
        self.children = Children()
        self.sel = selectors.DefaultSelector()
        self.dp: DP | None = None
        self.dps = DecisionProcesses(self)
        self.msgs = Messages(self)
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
        self.upgrade_due = False              # the old decision process is gone: exec at the loop's top
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
        self.forwarded: dict[int, str] = {}    # signals sent to the decision process, not acknowledged yet
        self.sig_ids = itertools.count(1)
        self.tiers: list[list[str]] = []       # stop order, as the decision process last said (herder.keeper.stopper)
        self.alone: AloneStop | None = None    # stopping the services without a decision process

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
        if _SIGPWR is not None:     # blocked across an upgrade's exec too; the services inherit this mask
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {_SIGPWR})
        if self.opts.resume_fd >= 0:
            raw = resume.read(self.opts.resume_fd)
            try:
                resume.load(self, raw)
            except Exception as e:  # noqa: BLE001 - a record this version cannot read must not kill a service
                self.capture.pump.stop(close_channels=False)
                trampoline.hold(raw, f"upgrade: this keeper cannot resume the record ({e!r})")
            self.ever_up = True        # a successor: what ran before was up
            # herder's main process for its manager (a decision process that became the keeper
            # after a kill of the old one: systemd with ExitType=cgroup kept the unit; an upgrade's
            # exec keeps the pid, and saying so again is harmless)
            self._manager(f"MAINPID={os.getpid()}")
            self.reap()                # exits while the signals were blocked across the exec
        # the keeper's own slot exists before the welcome names the slots
        self.counters.set(self.counters.slot(KEEPER_SLOT), ORPHANS, self.children.orphans_reaped)
        if self.opts.attached:
            sock = socket.socket(fileno=self.opts.dp_fd)
            sock.setblocking(False)
            self.dps.connect(DP(sock, None, 1, time.monotonic()))
        else:
            self.dps.spawn()
        if self.watchdog:
            self._ping_manager()
        global RUNNING
        RUNNING = True      # the trampoline's fallback no longer applies (its record's fds are ours now)
        while self.code is None or self.dp is not None:
            if self.upgrade_due:      # never from inside a reap or message batch (herder.keeper.upgrade)
                self.upgrade_due = False
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
                self.dps.read()
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
            if dp is not None and dp.hello is not None and not leaving:     # else: for the next one
                sid = next(self.sig_ids)      # kept until acknowledged: a new decision process gets it again
                self.forwarded[sid] = what
                self._emit({"t": "signal", "what": what, "id": sid})
            elif self.opts.attached:
                pass
            else:
                self.pending.append(what)
                if what in STOP_KINDS and self.dp is None and not self.children.by_pid:
                    self.code = 0 if what == "down" else 130
            if what in STOP_KINDS and not self.opts.attached and not (self.dp is not None and self.dp.up):
                why = (f"a stop was asked ({signal.Signals(signum).name}) and no decision process came up "
                       f"within {ALONE_AFTER:g}s")
                self.later(ALONE_AFTER, lambda: self.check_alone(why))

    # ---- stopping without a decision process (herder.keeper.stopper) ----------------------------

    def stop_pending(self) -> bool:
        """A stop was asked that no decision process has carried out: a signal pending or
        not acknowledged, or a state record whose phase is past `up`."""
        if any(w in STOP_KINDS for w in [*self.pending, *self.forwarded.values()]):
            return True
        return isinstance(self.snap_world, dict) and self.snap_world.get("phase") not in (None, "up")

    def check_alone(self, why: str) -> None:
        if self.alone is None and self.stop_pending() and not (self.dp is not None and self.dp.up):
            self.start_alone(why)

    def start_alone(self, why: str) -> None:
        if self.alone is not None or self.opts.attached:
            return
        self.alone = AloneStop(self, self.tiers, why, self._alone_done)
        if self.dp is not None and self.dp.pid is not None:     # one starting up: it would fight the stop
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.dp.pid, signal.SIGKILL)
        self.alone.start()

    def _alone_done(self) -> None:
        self.code = 1

    def manager(self, text: str) -> None:
        self._manager(text)

    def _unacked(self) -> list[dict[str, Any]]:
        with self._exit_lock:
            both = {**self._unsent, **self.exits}
            return [both[s] for s in sorted(both)]

    def take_signals(self) -> None:
        """Handle the signals caught so far (before an exec: none may be left behind)."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        while self._signals:
            self._on_signal(self._signals.popleft())

    def _upgrade_now(self) -> None:
        argv, self.upgrade = self.upgrade or [], None
        why = upgrade.exec_keeper(self, argv)      # only returns when the exec did not happen
        if self.code is not None:
            return
        self.why = "upgrade_failed"
        self.notes.append({"t": "event", "instance": "", "kind": "upgrade_failed",
                           "message": f"herder: upgrade failed: {why}; the running version carries on",
                           "data": {"reason": why}})
        self.dps.spawn()

    def _unregister_pidfd(self, child: Child) -> None:
        if child.pidfd >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(child.pidfd)

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
                self.dps.maybe_done(self.dp)

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
        if self.alone is not None:
            self.alone.progress()

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
