"""The keeper's decision process: started as its child, restarted when it dies.

At once when it had been up (a kill -9, a crash while supervising), with a backoff while
it keeps failing before it is up, without the state snapshot after FRESH_AFTER failures,
loudly after GIVE_UP_AFTER. The services are never stopped for it. A hand-over
(`herder upgrade`) execs the installed keeper instead (herder.keeper.upgrade). Runs on
the keeper's loop thread (herder.keeper.keeper).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from herder.keeper import wire

if TYPE_CHECKING:
    from herder.keeper.keeper import Keeper

RESTART_WINDOW = 60.0       # failures of the decision process counted over this window
FRESH_AFTER = 3             # this many start-up failures in the window: start it without the snapshot
GIVE_UP_AFTER = 6           # this many: say loudly that the services run unsupervised (and keep trying)


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


class DecisionProcesses:
    def __init__(self, keeper: Keeper) -> None:
        self.k = keeper

    def spawn(self) -> None:
        if self.k.alone is not None:       # the keeper stops the services itself (herder.keeper.stopper)
            return
        import subprocess

        self.k.gen += 1
        mine, theirs = wire.pair()
        argv = [sys.executable, "-P", "-m", "herder.runtime.dp", "--keeper-fd", str(theirs.fileno()),
                "--keeper-pid", str(os.getpid()), "--generation", str(self.k.gen), *self.k.opts.dp_args]
        if len(self.k.failures) >= FRESH_AFTER:
            argv.append("--fresh")
        keep = [theirs.fileno()]
        ready = self.k.opts.ready_fd if self.k.opts.ready_fd >= 0 else self.k._ready_hold
        if ready >= 0:      # until one decision process is up, each one gets `up -d`'s pipe
            argv += ["--ready-fd", str(ready)]
            keep.append(ready)
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        if self.k.notify_addr:
            env["HERDER_UPWARD"] = "keeper"      # report READY/STATUS/WATCHDOG through the keeper
            env["HERDER_MANAGER_NOTIFY"] = self.k.notify_addr   # kept for when it must become the keeper
            if self.k.watchdog:
                env["HERDER_UPWARD_WATCHDOG"] = str(self.k.watchdog)
        try:
            proc = subprocess.Popen(argv, executable=wire.self_exe(), pass_fds=keep, close_fds=True, env=env,
                                    process_group=0)
        except OSError as e:
            print(f"herder keeper: cannot start the decision process: {e}", file=sys.stderr, flush=True)
            mine.close()
            theirs.close()
            self.failed(None, 1, started=False)
            return
        finally:
            theirs.close()
        proc.returncode = 0       # reaped by the keeper's reaper
        if self.k.opts.ready_fd >= 0:
            # only the first decision process reports start-up; the keeper holds the pipe until
            # that one is up, so a failed start-up's EOF tells `up -d` the keeper is gone too
            self.k._ready_hold, self.k.opts.ready_fd = self.k.opts.ready_fd, -1
        self.connect(DP(mine, proc.pid, self.k.gen, time.monotonic()))

    def connect(self, dp: DP) -> None:
        self.k.dp = dp
        self.k.sel.register(dp.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, "dp")

    def read(self) -> None:
        dp = self.k.dp
        while dp is not None and self.k.dp is dp:
            try:
                got = wire.next_message(dp.sock, "herder keeper")
            except BlockingIOError:
                return
            if got is None:
                self.gone()
                return
            msg, fds = got
            self.k.msgs.handle(msg, fds)      # never raises: a failure is answered and said

    def gone(self) -> None:
        """The decision process closed its end (it exited, or is about to)."""
        dp = self.k.dp
        if dp is None or dp.eof:
            return
        dp.eof = True
        with contextlib.suppress(KeyError, ValueError):
            self.k.sel.unregister(dp.sock)
        dp.sock.close()
        self.maybe_done(dp)

    def maybe_done(self, dp: DP) -> None:
        """Both its socket closed and (when it is our child) its exit reaped: what next."""
        if self.k.dp is not dp or not dp.eof or (dp.pid is not None and not dp.reaped):
            return
        self.k.dp = None
        self.k.capture.unfollow_all()
        self.k.outbox.discard()
        if self.k.forwarded:      # not acknowledged: the next decision process gets them in its welcome
            self.k.pending = [self.k.forwarded[i] for i in sorted(self.k.forwarded)] + self.k.pending
            self.k.forwarded.clear()
        if self.k.opts.attached:
            if dp.bye is None:        # the test process went away without `down`: take everything with it
                self.k.children.signal_all(signal.SIGKILL)
            self.k.code = dp.bye if dp.bye is not None else 1
            return
        self._after(dp, dp.status)

    def _after(self, dp: DP, status: int | None) -> None:
        if self.k.alone is not None:      # stopping the services itself: no decision process any more
            return
        if dp.bye is not None and not dp.handover:
            self.k.code = dp.bye
            return
        if dp.handover and self.k.upgrade is not None:
            self.k.upgrade_due = True      # exec'd from the top of the keeper's loop (herder.keeper.upgrade)
            return
        if dp.handover:
            self.spawn()
            return
        if not self.k.ever_up and not self.k.children.by_pid and status is not None and status > 0:
            self.k.code = status      # start-up failed with a reason (config …; said on `up -d`'s pipe)
            return
        self.failed(dp, status, started=True)

    def failed(self, dp: DP | None, status: int | None, started: bool) -> None:
        """Restart the decision process: at once when it had been up (a kill -9, a crash
        while supervising), with a backoff when it keeps failing before it is up. The
        services are never stopped for it: while none runs, the keeper still reaps, records
        exits and writes every log; what is missing (restarts, probes, the API) is said."""
        now = time.monotonic()
        if (dp is None or not dp.up) and self.k.stop_pending():
            self.k.start_alone(f"a stop was asked and the decision process failed at start-up "
                               f"(pid {dp.pid if dp else '?'}, status {status})")
            return
        if dp is None or not dp.up:
            self.k.failures.append(now)
        while self.k.failures and now - self.k.failures[0] > RESTART_WINDOW:
            self.k.failures.popleft()
        n = len(self.k.failures)
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
            self.k._manager(f"STATUS={msg}")
        note = {"t": "event", "instance": "", "kind": "supervisor_restart",
                "message": f"herder: the decision process (pid {dp.pid if dp else '?'}) {how}; "
                           f"restarted{f' after {delay:g}s' if delay else ''} by the keeper (pid {os.getpid()}); "
                           "services kept running", "data": {"pid": dp.pid if dp else None, "status": status}}
        self.k.notes.append(note)
        self.k.why = "restart"
        self.k.later(delay, self.spawn)


def _signame(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"
