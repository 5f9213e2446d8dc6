"""The API's HTTP side: HTTP/1.1 (h11) over the Unix socket, optionally TCP with a token.

Why h11 and not a hand-written parser or aiohttp: h11 is the small, sans-I/O, well-tested
HTTP/1.1 state machine (keep-alive, chunked bodies, malformed input → a clean error) and
costs a few milliseconds to import, where aiohttp would double the supervisor's memory.

Every request is matched against the registry, its parameters and body are checked
against the declared shapes, and the handler runs on the supervisor's loop (no locks: the
loop owns the state). Any failure becomes a 4xx with a message; a bug in a handler becomes
a 500 with the error text and a line on stderr, never a crash of the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import importlib
import json
import os
import socket
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

if TYPE_CHECKING:
    import h11  # imported by the first connection: `herder up` spawns before it pays for h11

from herder.control import registry
from herder.control.shapes import ShapeError, check

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Peer:
    uid: int | None      # None over TCP (authenticated by token instead)
    pid: int | None
    gid: int | None
    via: str             # "unix" | "tcp"


@dataclass
class Request:
    command: registry.Command
    params: dict[str, Any]
    body: dict[str, Any]
    peer: Peer
    control: Any                      # herder.control.component.Control
    closed: asyncio.Event = field(default_factory=asyncio.Event)   # the client went away


@dataclass
class Reply:
    status: int
    body: Any
    media: str = registry.JSON


@dataclass
class Stream:
    """JSON lines over a chunked response; ends when the iterator does or the client leaves."""

    lines: AsyncIterator[dict[str, Any]]


class HTTPError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.extra = status, extra


Handler = Callable[[Request], Awaitable[Reply | Stream]]
_REASONS = {200: b"OK", 202: b"Accepted", 400: b"Bad Request", 401: b"Unauthorized", 403: b"Forbidden",
            404: b"Not Found", 405: b"Method Not Allowed", 409: b"Conflict", 413: b"Payload Too Large",
            422: b"Unprocessable Entity", 500: b"Internal Server Error", 503: b"Service Unavailable"}


def peer_of(sock: socket.socket) -> Peer:
    if sock.family != socket.AF_UNIX:
        return Peer(None, None, None, "tcp")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(uid, pid, gid, "unix")


def peer_groups(peer: Peer) -> set[int]:
    """The peer's primary and supplementary groups (from /proc; the primary one otherwise)."""
    groups = {peer.gid} if peer.gid is not None else set()
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{peer.pid}/status") as f:
        for line in f:
            if line.startswith("Groups:"):
                groups.update(int(g) for g in line.split()[1:])
    return groups


class Router:
    """Registry → (compiled pattern, command, handler); handlers imported once, lazily."""

    def __init__(self, commands: list[registry.Command]) -> None:
        self._routes = [(c.pattern(), c) for c in commands]
        self._handlers: dict[str, Handler] = {}

    def match(self, method: str, path: str) -> tuple[registry.Command, dict[str, str]]:
        allowed = []
        for pat, cmd in self._routes:
            m = pat.match(path)
            if m:
                if cmd.method == method:
                    return cmd, {k: unquote(v) for k, v in m.groupdict().items()}
                allowed.append(cmd.method)
        if allowed:
            raise HTTPError(405, f"{method} is not allowed on {path}; use {', '.join(sorted(set(allowed)))}",
                            allow=sorted(set(allowed)))
        raise HTTPError(404, f"no endpoint {path}; see /openapi.json")

    def handler(self, cmd: registry.Command) -> Handler:
        h = self._handlers.get(cmd.name)
        if h is None:
            mod, _, fn = cmd.handler.partition(":")
            h = self._handlers[cmd.name] = getattr(importlib.import_module(mod), fn)
        return h


def parse_params(cmd: registry.Command, path_args: dict[str, str], query: str) -> dict[str, Any]:
    raw = dict(path_args)
    for k, v in parse_qsl(query, keep_blank_values=True):
        raw[k] = v
    out: dict[str, Any] = {}
    for p in cmd.params:
        if p.name not in raw:
            out[p.name] = p.default
            continue
        v = raw[p.name]
        try:
            if p.type == "boolean":
                if v.lower() not in ("1", "true", "yes", "0", "false", "no", ""):
                    raise ValueError("expected true or false")
                out[p.name] = v.lower() in ("1", "true", "yes")
            elif p.type == "integer":
                out[p.name] = int(v)
            elif p.type == "number":
                out[p.name] = float(v)
            else:
                out[p.name] = v
        except ValueError:
            raise HTTPError(400, f"parameter {p.name}: expected {p.type}; got {v!r}") from None
        if p.type == "string" and p.where == "path" and not v:
            raise HTTPError(400, f"parameter {p.name}: must not be empty")
        if isinstance(out[p.name], int) and not isinstance(out[p.name], bool):
            if p.minimum is not None and out[p.name] < p.minimum:
                raise HTTPError(400, f"parameter {p.name}: {v} is below the minimum {p.minimum}")
            if p.maximum is not None and out[p.name] > p.maximum:
                raise HTTPError(400, f"parameter {p.name}: {v} is above the maximum {p.maximum}")
    return out


def parse_body(cmd: registry.Command, data: bytes, content_type: str) -> dict[str, Any]:
    if cmd.body is None:
        return {}
    if not data.strip():
        body: Any = {}
    else:
        if content_type and "json" not in content_type:
            raise HTTPError(400, f"expected a JSON body (Content-Type: application/json); "
                            f"got {content_type}")
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise HTTPError(400, f"body is not valid JSON: {e}") from None
    try:
        check(cmd.body, body, "body")
    except ShapeError as e:
        raise HTTPError(400, str(e)) from None
    return {k: body.get(k, s.get("default")) for k, s in cmd.body.get("properties", {}).items()}


class Listener:
    """One listening socket (Unix or TCP) serving the registry through `control`."""

    def __init__(self, control: Any, router: Router, *, token: str | None = None,
                 allow_uids: set[int] | None = None, allow_gid: int | None = None) -> None:
        self.control = control
        self.router = router
        self.token = token
        self.allow_uids = allow_uids if allow_uids is not None else {0, os.geteuid()}
        self.allow_gid = allow_gid
        self.server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def open_unix(self, path: str, mode: int, gid: int | None) -> None:
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
        self.server = await asyncio.start_unix_server(self._serve, sock=sock)

    async def open_tcp(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._serve, host, port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for t in list(self._conns):
            t.cancel()
        for t in list(self._conns):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)

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
        self._conns.add(task)
        try:
            await _Conn(self, reader, writer).run()
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception as e:  # noqa: BLE001 - never let a connection take the supervisor down
            print(f"herder: api connection failed: {e!r}", file=sys.stderr)
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a stream step's outcome as seen (it may end with StopAsyncIteration unobserved)."""
    if not task.cancelled():
        task.exception()


class _Conn:
    def __init__(self, lst: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11
        self.lst, self.reader, self.writer = lst, reader, writer
        self.h = h11.Connection(h11.SERVER)
        self.peer = peer_of(writer.get_extra_info("socket"))

    async def _next(self) -> Any:
        import h11
        while True:
            ev = self.h.next_event()
            if ev is h11.NEED_DATA:
                data = await asyncio.wait_for(self.reader.read(65536), 300)
                self.h.receive_data(data)
                continue
            return ev

    async def _send(self, *events: Any) -> None:
        for ev in events:
            data = self.h.send(ev)
            if data:
                self.writer.write(data)
        await self.writer.drain()

    async def run(self) -> None:
        import h11
        while True:
            try:
                ev = await self._next()
            except h11.RemoteProtocolError as e:
                if self.h.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._reply(Reply(e.error_status_hint, {"error": f"bad HTTP request: {e}"}), close=True)
                return
            if isinstance(ev, (h11.ConnectionClosed,)) or ev is h11.PAUSED:
                return
            if not isinstance(ev, h11.Request):
                return
            body = b""
            too_big = False
            while True:
                try:
                    part = await self._next()
                except h11.RemoteProtocolError as e:
                    await self._reply(Reply(400, {"error": f"bad HTTP request: {e}"}), close=True)
                    return
                if isinstance(part, h11.Data):
                    if len(body) + len(part.data) > MAX_BODY:
                        too_big = True
                    else:
                        body += part.data
                elif isinstance(part, h11.EndOfMessage):
                    break
                else:
                    return
            await self._handle(ev, body, too_big)
            if self.h.our_state is h11.MUST_CLOSE or self.h.their_state is h11.MUST_CLOSE:
                return
            try:
                self.h.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _handle(self, req: h11.Request, body: bytes, too_big: bool) -> None:
        headers = {k.lower(): v for k, v in req.headers}
        try:
            denied = self.lst._authorised(self.peer, headers)
            if denied:
                raise HTTPError(*denied)
            if too_big:
                raise HTTPError(413, f"request body over {MAX_BODY} bytes")
            target = req.target.decode("latin-1")
            url = urlsplit(target)
            method = req.method.decode("latin-1")
            cmd, path_args = self.lst.router.match(method, url.path)
            params = parse_params(cmd, path_args, url.query)
            data = parse_body(cmd, body, headers.get(b"content-type", b"").decode("latin-1"))
            request = Request(cmd, params, data, self.peer, self.lst.control)
            result = await self.lst.router.handler(cmd)(request)
        except HTTPError as e:
            result = Reply(e.status, {"error": str(e), **e.extra})
        except Exception as e:  # noqa: BLE001 - a handler bug answers 500 and is reported, never fatal
            print(f"herder: api handler failed: {e!r}", file=sys.stderr)
            result = Reply(500, {"error": f"internal error: {e!r}"})
        if isinstance(result, Stream):
            await self._stream(result, request)
        else:
            await self._reply(result)

    async def _reply(self, r: Reply, close: bool = False) -> None:
        import h11
        if r.media == registry.JSON:
            payload = (json.dumps(r.body) + "\n").encode()
        elif isinstance(r.body, bytes):
            payload = r.body
        else:
            payload = str(r.body).encode()
        headers = [(b"content-type", r.media.encode()), (b"content-length", str(len(payload)).encode())]
        if close:
            headers.append((b"connection", b"close"))
        if r.status == 405 and isinstance(r.body, dict) and r.body.get("allow"):
            headers.append((b"allow", ", ".join(r.body["allow"]).encode()))
        await self._send(h11.Response(status_code=r.status, headers=headers, reason=_REASONS.get(r.status, b"")),
                         h11.Data(data=payload), h11.EndOfMessage())

    async def _stream(self, s: Stream, req: Request) -> None:
        import h11
        await self._send(h11.Response(status_code=200, headers=[(b"content-type", registry.NDJSON.encode()),
                                                                 (b"cache-control", b"no-store")]))
        watcher = asyncio.ensure_future(self._watch_eof(req))
        closed = asyncio.ensure_future(req.closed.wait())
        it = s.lines.__aiter__()
        try:
            while True:
                nxt = asyncio.ensure_future(it.__anext__())
                nxt.add_done_callback(_retrieve)
                done, _ = await asyncio.wait({nxt, closed}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await nxt
                    break
                try:
                    line = nxt.result()
                except StopAsyncIteration:
                    break
                await self._send(h11.Data(data=(json.dumps(line) + "\n").encode()))
            if not req.closed.is_set():
                await self._send(h11.EndOfMessage())
        finally:
            for t in (watcher, closed):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            aclose = getattr(s.lines, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if req.closed.is_set():
            raise ConnectionResetError("client left the stream")

    async def _watch_eof(self, req: Request) -> None:
        """A streaming client says nothing more; EOF (or anything) means it went away."""
        with contextlib.suppress(Exception):
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
        req.closed.set()
