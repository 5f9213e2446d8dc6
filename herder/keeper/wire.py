"""The keeper's wire: JSON messages over a SOCK_SEQPACKET Unix socket, fds by SCM_RIGHTS.

Why SEQPACKET: every message arrives whole and in order, and the fds sent with it arrive
with it (a stream socket attaches fds to a byte, so framing and fds would have to be
matched by hand). Why JSON: the messages are small records (a spawn, an exit, a line
batch), both ends are Python, and a human can read them in a trace; a payload too big
for one datagram (a World snapshot, a keeper's resume record) travels in a memfd whose
fd rides along, transparently to both ends.

Both ends are non-blocking: the keeper must never wait for a busy decision process, and
the decision process never waits for the keeper on its loop. `Outbox` is the queue of a
sending end, safe to fill from any thread; its owner flushes it when the socket is
writable. No asyncio here: the keeper imports this module too.
"""

from __future__ import annotations

import array
import contextlib
import errno
import json
import os
import socket
import sys
import threading
from collections import deque
from typing import Any

INLINE = 60_000          # larger messages go through a memfd
MAX_FDS = 250            # SCM_MAX_FD is 253
_CMSG = socket.CMSG_SPACE(MAX_FDS * 4 + 4)

Msg = dict[str, Any]


def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    for s in (a, b):
        s.setblocking(False)
    return a, b


def blob_fd(data: bytes) -> int:
    """A sealed-size anonymous file holding `data`, positioned at 0 (close-on-exec)."""
    fd = os.memfd_create("herder", os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def read_blob(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    parts = []
    while chunk := os.read(fd, 1 << 20):
        parts.append(chunk)
    return b"".join(parts)


def encode(msg: Msg, fds: list[int]) -> tuple[bytes, list[int], int | None]:
    """(datagram, fds to attach, memfd to close after sending or None)."""
    data = json.dumps(msg, separators=(",", ":")).encode("utf-8", "surrogateescape")
    if len(data) <= INLINE:
        return data, fds, None
    big = blob_fd(data)
    return b'{"big":1}', [big, *fds], big


def decode(data: bytes, fds: list[int]) -> tuple[Msg, list[int]]:
    msg = json.loads(data.decode("utf-8", "surrogateescape"))
    if msg.get("big") == 1 and fds:
        big, fds = fds[0], fds[1:]
        try:
            msg = json.loads(read_blob(big).decode("utf-8", "surrogateescape"))
        finally:
            os.close(big)
    return msg, fds


def send_now(sock: socket.socket, data: bytes, fds: list[int]) -> None:
    """One datagram; raises BlockingIOError when the socket is full."""
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.send(data)


class Truncated(ValueError):
    """A message cut short (its fds did not fit: the receiver's fd limit): a bad message,
    not the peer's end (a ConnectionError would make the receiver take the peer for dead)."""


def receive(sock: socket.socket) -> tuple[Msg, list[int]] | None:
    """One message and its fds (close-on-exec); None at EOF; BlockingIOError when empty."""
    data, anc, flags, _ = sock.recvmsg(1 << 17, _CMSG, socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(array.array("i", payload[:len(payload) - len(payload) % 4]))
    if not data and not fds:
        return None
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        raise Truncated("keeper wire: a message was truncated (its fds did not fit); dropped")
    return decode(data, fds)


def next_message(sock: socket.socket, who: str) -> tuple[Msg, list[int]] | None:
    """The next whole message and its fds; None at the peer's end (or a failed socket);
    BlockingIOError when none is waiting. A truncated message is not the peer's end: it
    is said on stderr (`who: …`) and skipped."""
    while True:
        try:
            return receive(sock)
        except Truncated as e:
            print(f"{who}: {e}", file=sys.stderr, flush=True)
        except BlockingIOError:
            raise
        except OSError:
            return None


def close_fds(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


class Outbox:
    """Messages waiting to be sent, in order; `put` from any thread, `flush` from the owner.

    `put` returns True when the box was empty (the owner must be woken to flush it).
    Attached fds are owned by the box once put: they are closed after sending (or on
    `discard`). `pending` counts queued bytes, so producers of optional data (log lines
    for a follower) can skip instead of growing the queue without bound."""

    def __init__(self) -> None:
        self._q: deque[tuple[bytes, list[int], int | None, list[int]]] = deque()
        self._lock = threading.Lock()
        self.pending = 0
        self.dropped = 0     # messages dropped because an fd they carried was closed (a bug if ever > 0)

    def put(self, msg: Msg, fds: list[int] | None = None, close_after: bool = True) -> bool:
        data, attach, big = encode(msg, list(fds or ()))
        owned = ([big] if big is not None else []) + (list(fds or ()) if close_after else [])
        with self._lock:
            was_empty = not self._q
            self._q.append((data, attach, big, owned))
            self.pending += len(data)
        return was_empty

    def __len__(self) -> int:
        return len(self._q)

    def flush(self, sock: socket.socket) -> bool:
        """Send what the socket takes; True when everything went."""
        if sock.fileno() < 0:
            raise BrokenPipeError("keeper wire: the socket is closed")
        while True:
            with self._lock:
                if not self._q:
                    return True
                data, attach, _big, owned = self._q[0]
            try:
                send_now(sock, data, attach)
            except BlockingIOError:
                return False
            except OSError as e:    # an attached fd is no longer open: drop this message, never wedge the box
                if e.errno != errno.EBADF:
                    raise
                self.dropped += 1
            with self._lock:
                self._q.popleft()
                self.pending -= len(data)
            close_fds(owned)

    def discard(self) -> None:
        with self._lock:
            items, self._q = list(self._q), deque()
            self.pending = 0
        for _data, _attach, _big, owned in items:
            close_fds(owned)


def self_exe() -> str:
    """The running interpreter's binary, to exec (argv[0] stays sys.executable, so a venv is
    still found): /proc/self/exe where there is one. It is a magic link, so it works when
    sys.executable lies under a folder this user may not search (a venv whose python links
    into /root, run as `nobody`: the exec of sys.executable is refused)."""
    import sys

    return "/proc/self/exe" if os.path.exists("/proc/self/exe") else sys.executable
