"""The API's listeners: Unix and TCP sockets, who may connect, and how many at once.

Each listener serves at most MAX_CONNECTIONS at once, and never more than a quarter of
herder's open-file limit, so the rest stays for the services (pipes, logs, spawns); the
next ones get a 503 with the reason and are closed. herder accepts one connection at a
time and only while there is room — asyncio's own server accepts a whole backlog before
serving any, which spent every fd in the audit's flood of 1000 half-sent requests. Beyond
the cap and REFUSALS answers in flight, clients wait in the kernel's listen backlog
(BACKLOG deep; the audit saw 105 of 500 clients refused with asyncio's default of 100),
never in herder's fd table.

Who: over the Unix socket, the peer's uid (SO_PEERCRED) must be herder's own or root, or
a member of the socket_group; over TCP, the bearer token. Failures of the API itself are
`api_error` events, identical ones rate-limited (herder.logs.repeats).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import socket
import sys
from typing import Any

from herder.control.server import WRITE_TIMEOUT, Connection, Late, Peer, Router, refusal
from herder.logs.repeats import Repeats

MAX_CONNECTIONS = 256
REFUSALS = 32          # connections over the cap answered (503) at once; later ones wait in the backlog
BACKLOG = 1024
STREAM_GRACE = 2.0     # seconds a closing listener gives streams to send their end
REFUSAL_LINGER = 5.0   # seconds a refused connection is read (and dropped) after its 503
REFUSAL_DRAIN = 65536  # bytes of it read at most


def peer_groups(peer: Peer) -> set[int]:
    """The peer's primary and supplementary groups (from /proc; the primary one otherwise)."""
    groups = {peer.gid} if peer.gid is not None else set()
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{peer.pid}/status") as f:
        for line in f:
            if line.startswith("Groups:"):
                groups.update(int(g) for g in line.split()[1:])
    return groups


def _cap() -> int:
    """Connections one listener serves at once: MAX_CONNECTIONS, and never more than a quarter
    of herder's open-file limit, so the other three quarters stay for services (pipes, logs)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return MAX_CONNECTIONS
    if soft == getattr(resource, "RLIM_INFINITY", -1):
        return MAX_CONNECTIONS
    return max(8, min(MAX_CONNECTIONS, soft // 4))


class Listener:
    """One listening socket (Unix or TCP) serving the registry through `control`."""

    def __init__(self, control: Any, router: Router, *, token: str | None = None,
                 allow_uids: set[int] | None = None, allow_gid: int | None = None) -> None:
        self.control = control
        self.router = router
        self.token = token
        self.allow_uids = allow_uids if allow_uids is not None else {0, os.geteuid()}
        self.allow_gid = allow_gid
        self._conns: set[asyncio.Task[None]] = set()
        self._serving: dict[asyncio.Task[None], Connection] = {}
        self._socks: list[socket.socket] = []
        self._acceptors: set[asyncio.Task[None]] = set()
        self._freed = asyncio.Event()      # a connection ended: there may be room to accept again
        self._refusing = 0
        self._lingering: dict[asyncio.Task[None], bool] = {}   # refused, answered; True: sent part of a head
        self._refusals: set[asyncio.Task[None]] = set()
        self.max_connections = _cap()
        self.refused = 0          # connections over the cap (answered 503)
        self.timed_out = 0        # requests that did not arrive in time (408 or closed)
        self._repeats = Repeats()

    def report(self, message: str) -> None:
        """A failure of the API itself (a bug): an `api_error` event, identical ones rate-limited;
        on stderr when there is no supervisor to tell."""
        allowed, held = self._repeats.allow(message, asyncio.get_running_loop().time())
        if held:
            message = f"{message} (and {held} more like it before, held back)"
        if not allowed:
            return
        events = getattr(getattr(self.control, "sup", None), "events", None)
        if events is not None:
            events.emit("", "api_error", message, {})
        else:
            print(message, file=sys.stderr)

    async def open_unix(self, path: str, mode: int, gid: int | None, kept: int | None = None) -> socket.socket:
        """Listen on `path` (or on `kept`, the same listening socket a previous decision
        process left with the keeper: clients that connected meanwhile wait in its backlog)."""
        if kept is not None:
            sock = socket.socket(fileno=kept)
            self._listen(sock)
            return sock
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)          # no window where the socket is wider than 0600
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        if gid is not None:
            os.chown(path, -1, gid)
        os.chmod(path, mode)
        self._listen(sock)
        return sock

    async def open_tcp(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
            except OSError:
                sock.close()
                raise
            self._listen(sock)

    def _listen(self, sock: socket.socket) -> None:
        sock.listen(BACKLOG)
        sock.setblocking(False)
        self._socks.append(sock)
        task = asyncio.get_running_loop().create_task(self._accept(sock))
        self._acceptors.add(task)

    async def _accept(self, sock: socket.socket) -> None:
        """Accept one connection at a time, only while there is room: over the cap, a few more
        (REFUSALS at once) get their 503; beyond that, clients wait in the kernel's backlog
        instead of taking herder's fds (asyncio's own server accepts a whole backlog in one go)."""
        loop = asyncio.get_running_loop()
        while True:
            if len(self._conns) + self._refusing >= self.max_connections + REFUSALS:
                slow = next((t for t, partial in self._lingering.items() if partial), None)
                if slow is not None:      # answered already, and its client is mid-send: make room
                    del self._lingering[slow]
                    slow.cancel()
                self._freed.clear()
                await self._freed.wait()
                continue
            try:
                conn, _ = await loop.sock_accept(sock)
            except (ConnectionAbortedError, InterruptedError):
                continue
            except OSError as e:          # out of fds or memory: say so, wait for a connection to end
                self.report(f"herder: api: cannot accept a connection: {e.strerror or e}")
                self._freed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._freed.wait()
                continue
            conn.setblocking(False)
            if len(self._conns) >= self.max_connections:
                self._refusing += 1
                refusal_task = loop.create_task(self._refuse(conn))
                self._refusals.add(refusal_task)
                refusal_task.add_done_callback(self._refusals.discard)
            else:
                task = loop.create_task(self._serve_sock(conn))
                self._conns.add(task)

    async def _refuse(self, conn: socket.socket) -> None:
        """The 503, then a lingering close (as HTTP servers do): the request is read and dropped
        until its head has arrived, the client ends, or REFUSAL_LINGER. Closed at once, a client
        that had not sent its request yet got EPIPE on the send instead of the answer (CI, load).
        A lingering client that sent part of a head and stalls (slowloris) is closed as soon as
        its room is needed for the next refusal: it has its answer."""
        self.refused += 1
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        try:
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await loop.sock_sendall(conn, refusal(
                        503, f"herder is serving {self.max_connections} connections already (its limit); "
                        "try again shortly"))
                conn.shutdown(socket.SHUT_WR)
                if task is not None:
                    self._lingering[task] = False
                async with asyncio.timeout(REFUSAL_LINGER):
                    seen = b""
                    while b"\r\n\r\n" not in seen and len(seen) < REFUSAL_DRAIN:
                        got = await loop.sock_recv(conn, 4096)
                        if not got:
                            break
                        seen += got
                        if task in self._lingering:
                            self._lingering[task] = True
                            self._freed.set()      # an acceptor waiting for room may take this one's
        finally:
            if task is not None:
                self._lingering.pop(task, None)
            conn.close()
            self._refusing -= 1
            self._freed.set()

    async def _serve_sock(self, conn: socket.socket) -> None:
        try:
            if conn.family == socket.AF_UNIX:
                reader, writer = await asyncio.open_unix_connection(sock=conn)
            else:
                reader, writer = await asyncio.open_connection(sock=conn)
        except OSError:
            conn.close()
            task = asyncio.current_task()
            if task is not None:
                self._conns.discard(task)
            self._freed.set()
            return
        await self._serve(reader, writer)

    async def close(self) -> None:
        """Stop accepting; let streams that are ending finish their last lines and their final
        chunk (STREAM_GRACE at most: `herder down` reads a clean end as "every service stopped"),
        then cancel whatever is left."""
        for t in list(self._acceptors):
            t.cancel()
        for sock in self._socks:
            sock.close()
        streaming = [t for t, c in self._serving.items() if c.streaming]
        if streaming:
            await asyncio.wait(streaming, timeout=STREAM_GRACE)
        for t in list(self._conns) + list(self._acceptors):
            t.cancel()
        for t in list(self._conns) + list(self._acceptors):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def _authorised(self, peer: Peer, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        if peer.via == "tcp":
            got = headers.get(b"authorization", b"").decode("latin-1")
            if not self.token or not got.startswith("Bearer ") or \
                    not hmac.compare_digest(got[7:].strip().encode(), self.token.encode()):
                return 401, "a bearer token is required (Authorization: Bearer …)"
            return None
        if peer.uid in self.allow_uids:
            return None
        if self.allow_gid is not None and self.allow_gid in peer_groups(peer):
            return None
        return 403, f"uid {peer.uid} may not use this herder (owner uid {os.geteuid()}); see --socket-group"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            conn = self._serving[task] = Connection(self, reader, writer)
            await conn.run()
        except Late:
            self.timed_out += 1
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception as e:  # noqa: BLE001 - never let a connection take the supervisor down
            self.report(f"herder: api connection failed: {e!r}")
        finally:
            self._conns.discard(task)
            self._serving.pop(task, None)
            self._freed.set()
            writer.close()
            try:
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await writer.wait_closed()
            except TimeoutError:
                writer.transport.abort()      # a client that never reads the rest
            except Exception:  # noqa: BLE001 - the peer is gone; nothing is left to tell it
                pass
