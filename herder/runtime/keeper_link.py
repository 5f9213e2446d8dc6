"""The decision process's end of the keeper's wire, on the asyncio loop.

Messages go out in order through an outbox; the loop writes what the socket takes and
waits for it to be writable for the rest, so a busy keeper never blocks the loop.
Messages in are handed to `on_message` one at a time, in order. End of file means the
keeper is gone (`on_lost`): herder.runtime.keeper_lost takes it from there.

Who talks through it: the process table (spawns, exits, MAINPID= moves), the log hub
(pipes at spawn, tails, followers, ready.log, herder.log lines), the supervisor (hello,
state records, acknowledgements, upward notifications, the fds it stores with the
keeper). How a keeper is found: `herder up` starts one, which starts this process with
the socket (`--keeper-fd`); a supervisor built without one (tests, the library) starts a
keeper of its own, attached: it ends with this process (`spawn_attached`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from herder.keeper import wire


class KeeperLink:
    def __init__(self, sock: socket.socket, pid: int | None = None) -> None:
        self.sock = sock
        self.pid = pid                  # set when this process started the keeper (attached)
        self.outbox = wire.Outbox()
        self.on_message: Callable[[dict[str, Any], list[int]], None] = lambda m, f: wire.close_fds(f)
        self.on_lost: Callable[[], None] = lambda: None
        # around the messages of one read: what they post is applied once they are all in
        # (the supervisor's `together`: 200 exits of a stop-all are stepped as one batch)
        self.together: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
        self.lost = False
        self.peer_fd = -1               # a pidfd on the keeper that runs this process (from_fd)
        self.peer_pid: int | None = None  # that keeper's pid
        self.ready_fd = -1              # `up -d`'s start-up pipe while this process has not reported on it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writing = False

    def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)
        self._flush()

    def close(self) -> None:
        if self._loop is not None and not self.lost:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.sock.fileno())
            if self._writing:
                with contextlib.suppress(Exception):
                    self._loop.remove_writer(self.sock.fileno())
        self.outbox.discard()
        self.sock.close()

    def send(self, msg: dict[str, Any], fds: list[int] | None = None, close_after: bool = True) -> None:
        """Queue a message (its fds are closed once sent, unless close_after is False)."""
        if self.lost:
            if close_after:
                wire.close_fds(list(fds or ()))
            return
        self.outbox.put(msg, fds, close_after)
        self._flush()

    def flush_blocking(self, timeout: float = 5.0) -> None:
        """Everything queued, now (before this process exits or execs)."""
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_WRITE)
            while not self.lost and len(self.outbox):
                try:
                    if self.outbox.flush(self.sock):
                        return
                except OSError:
                    return
                if not sel.select(timeout):
                    return

    def _flush(self) -> None:
        if self.lost or self._loop is None:
            return
        try:
            done = self.outbox.flush(self.sock)
        except OSError:
            done = True
        if not done and not self._writing:
            self._writing = True
            self._loop.add_writer(self.sock.fileno(), self._writable)
        elif done and self._writing:
            self._writing = False
            self._loop.remove_writer(self.sock.fileno())

    def _writable(self) -> None:
        self._flush()

    def _readable(self) -> None:
        with self.together():
            gone = self._read_some()
        if gone:
            self._gone()

    def _read_some(self) -> bool:
        """Hand what the socket holds to on_message (256 at most: then let the loop breathe,
        the reader fires again); True at the keeper's end of file."""
        for _ in range(256):
            try:
                got = wire.next_message(self.sock, "herder")
            except BlockingIOError:
                return False
            if got is None:
                return True
            msg, fds = got
            self.on_message(msg, fds)
            if self.lost:
                return False
        return False

    def _gone(self) -> None:
        if self.lost:
            return
        self.lost = True
        assert self._loop is not None
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self.sock.fileno())
        if self._writing:
            with contextlib.suppress(Exception):
                self._loop.remove_writer(self.sock.fileno())
            self._writing = False
        self.outbox.discard()
        self.on_lost()

    def peer_dead(self, timeout: float = 2.0) -> bool:
        """Whether the keeper that runs this process is really dead (its pidfd readable
        within `timeout`), not merely gone from the socket: only then may this process
        replace it. Without a pidfd: this process's parent changed."""
        if self.peer_fd < 0:
            return self.peer_pid is not None and os.getppid() != self.peer_pid
        import select

        return bool(select.select([self.peer_fd], [], [], timeout)[0])


def spawn_attached() -> KeeperLink:
    """A keeper of this process's own (the supervisor was built without one): it ends with
    this process, taking every service with it, as an in-process supervisor always did."""
    mine, theirs = wire.pair()
    argv = [sys.executable, "-P", "-m", "herder.keeper", "--attached", str(theirs.fileno())]   # setup says what to show
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen(argv, executable=wire.self_exe(), pass_fds=[theirs.fileno()], close_fds=True, env=env)
    proc.returncode = 0     # our reaper owns it
    theirs.close()
    return KeeperLink(mine, proc.pid)


def from_fd(fd: int, keeper_pid: int = 0) -> KeeperLink:
    """The link of a decision process the keeper started (`keeper_pid`: the keeper, which
    was its parent; one already dead before this process ran is not its parent any more)."""
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    sock.setblocking(False)
    link = KeeperLink(sock)
    link.peer_pid = keeper_pid if keeper_pid > 0 else os.getppid()
    if os.getppid() == link.peer_pid:
        with contextlib.suppress(OSError, AttributeError):
            link.peer_fd = os.pidfd_open(link.peer_pid)
    return link


class HandshakeLost(ConnectionError):
    """The keeper went away during the handshake; `partial` is what it had handed over
    (the welcome, if it came, with the pipes received so far), so that this process can
    take its place from it (herder.runtime.dp)."""

    def __init__(self, why: str, partial: dict[str, Any]) -> None:
        super().__init__(why)
        self.partial = partial


def handshake(link: KeeperLink, timeout: float = 30.0) -> dict[str, Any]:
    """`hello`, then the keeper's `welcome` and its `pipes` messages (blocking: start-up only).

    The welcome's fds: the shared counters, then each stored fd by name; each `pipes`
    message carries copies of the pipes' read ends the keeper reads."""
    import selectors
    import time

    link.send({"t": "hello", "pid": os.getpid()})
    link.flush_blocking(timeout)
    welcome: dict[str, Any] | None = None
    pipes: list[tuple[dict[str, Any], int]] = []
    early: list[tuple[dict[str, Any], list[int]]] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(link.sock, selectors.EVENT_READ)
        while True:
            try:
                got = wire.receive(link.sock)
            except wire.Truncated as e:
                print(f"herder: {e}", file=sys.stderr, flush=True)
                continue
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError("herder's keeper did not answer") from None
                continue
            if got is None:
                partial: dict[str, Any] = dict(welcome or {})
                partial["pipe_list"], partial["early"] = pipes, early
                raise HandshakeLost("herder's keeper closed the connection", partial)
            msg, fds = got
            if msg.get("t") == "welcome":
                welcome = msg
                welcome["counters_fd"] = fds[0]
                welcome["stored_fds"] = dict(zip(msg.get("stored", []), fds[1:], strict=False))
            elif msg.get("t") == "pipes":
                pipes += list(zip(msg["pipes"], fds, strict=False))
                if msg.get("last"):
                    break
            else:       # an exit or an event that came first: handled once the supervisor runs
                early.append((msg, fds))
    assert welcome is not None
    welcome["pipe_list"] = pipes
    welcome["early"] = early
    return welcome
