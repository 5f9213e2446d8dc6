"""The API's HTTP side: HTTP/1.1 (h11) over the Unix socket, optionally TCP with a token.

Why h11 and not a hand-written parser or aiohttp: h11 is the small, sans-I/O, well-tested
HTTP/1.1 state machine (keep-alive, chunked bodies, malformed input → a clean error) and
costs a few milliseconds to import, where aiohttp would double the supervisor's memory.

Every request is matched against the registry, its parameters and body are checked
against the declared shapes, and the handler runs on the supervisor's loop (no locks: the
loop owns the state). Any failure becomes a 4xx with a message; a bug in a handler becomes
a 500 with the error text and an `api_error` event, never a crash of the supervisor.

Every input is bounded in size, depth and time (architecture.md rule 17), because a
client that holds a connection must never cost supervision its file descriptors (the
audit: 1000 half-sent requests held forever, then a killed service could not be restarted
for want of fds): a request head must be complete within HEAD_TIMEOUT of its first byte
(408), a body within BODY_TIMEOUT of its head (408); an idle keep-alive connection is
closed after IDLE_TIMEOUT; a reply or a streamed line must be taken by the client within
WRITE_TIMEOUT. Heads over 16 KB get a 431 (h11), bodies over MAX_BODY a 413 before they
are read (Content-Length) or as soon as they grow past it (chunked), JSON nested deeper
than MAX_JSON_DEPTH or with NaN/Infinity a 400. How many connections are served at once
is the listeners' business (herder.control.listener).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from herder.control import registry
from herder.control.shapes import ShapeError, check

if TYPE_CHECKING:
    import h11  # imported by the first connection (below): `herder up` spawns before it pays for h11

    from herder.control.listener import Listener

MAX_BODY = 1 << 20
MAX_JSON_DEPTH = 32
HEAD_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
IDLE_TIMEOUT = 60.0
WRITE_TIMEOUT = 30.0
LINGER = 2.0           # seconds to drain a client's unread request after an early error answer


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
            404: b"Not Found", 405: b"Method Not Allowed", 408: b"Request Timeout", 409: b"Conflict",
            413: b"Payload Too Large", 422: b"Unprocessable Entity", 431: b"Request Header Fields Too Large",
            500: b"Internal Server Error", 503: b"Service Unavailable"}


def peer_of(sock: socket.socket) -> Peer:
    if sock.family != socket.AF_UNIX:
        return Peer(None, None, None, "tcp")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(uid, pid, gid, "unix")


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
            body = json.loads(data, parse_constant=_no_constant)
        except RecursionError:
            raise HTTPError(400, f"body is nested too deeply; expected at most {MAX_JSON_DEPTH} levels") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise HTTPError(400, f"body is not valid JSON: {e}") from None
        if _depth_over(body, MAX_JSON_DEPTH):
            raise HTTPError(400, f"body is nested too deeply; expected at most {MAX_JSON_DEPTH} levels")
    try:
        check(cmd.body, body, "body")
    except ShapeError as e:
        raise HTTPError(400, str(e)) from None
    return {k: body.get(k, s.get("default")) for k, s in cmd.body.get("properties", {}).items()}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows; expected a finite number")


def _depth_over(value: Any, limit: int) -> bool:
    """Whether value nests lists/objects deeper than limit (iteratively: no recursion)."""
    todo = [(value, 1)]
    while todo:
        v, depth = todo.pop()
        if isinstance(v, (dict, list)):
            if depth > limit:
                return True
            todo.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
    return False


def refusal(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 answer written without h11 (a connection over the cap)."""
    body = (json.dumps({"error": message}) + "\n").encode()
    return (f"HTTP/1.1 {status} {_REASONS[status].decode()}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


class Late(Exception):
    """A request (or a client reading a reply) ran out of its time."""


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a stream step's outcome as seen (it may end with StopAsyncIteration unobserved)."""
    if not task.cancelled():
        task.exception()


class Connection:
    """One client connection: requests read with their deadlines, answered, until it closes."""

    def __init__(self, lst: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11  # on the first connection: `herder up` spawns before it pays for h11
        self.lst, self.reader, self.writer = lst, reader, writer
        self.h = h11.Connection(h11.SERVER)
        self.peer = peer_of(writer.get_extra_info("socket"))
        self.loop = asyncio.get_running_loop()
        self.begun = False      # a byte of the current request has arrived
        self.refused_early = False   # answered (and closing) before the request was read to its end
        self.streaming = False       # answering with a stream (a closing listener lets it end)

    async def _next(self, deadline: float, head: bool = False) -> Any:
        """The next h11 event, reading as needed until `deadline` (loop time; Late after it).
        `head`: the first byte of a request starts its HEAD_TIMEOUT."""
        import h11  # on the first connection: `herder up` spawns before it pays for h11
        while True:
            ev = self.h.next_event()
            if ev is not h11.NEED_DATA:
                return ev
            left = deadline - self.loop.time()
            if left <= 0:
                raise Late
            try:
                async with asyncio.timeout(left):
                    data = await self.reader.read(65536)
            except TimeoutError:
                raise Late from None
            if head and data:
                deadline, head = min(deadline, self.loop.time() + HEAD_TIMEOUT), False
                self.begun = True
            self.h.receive_data(data)

    async def _send(self, *events: Any) -> None:
        for ev in events:
            data = self.h.send(ev)
            if data:
                self.writer.write(data)
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self.writer.drain()
        except TimeoutError:
            raise Late from None     # the client does not read what it asked for

    async def _late(self, status: int, message: str) -> None:
        """A request that did not arrive in time: a 408 if it had begun, then close."""
        import h11  # on the first connection: `herder up` spawns before it pays for h11
        if self.begun and self.h.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            with contextlib.suppress(Exception):
                await self._reply(Reply(status, {"error": message}), close=True)
        raise Late

    async def run(self) -> None:
        try:
            await self._requests()
        finally:
            if self.refused_early:
                await self._linger()

    async def _linger(self) -> None:
        """After an error answered before the request was read to its end (413, 431, 408):
        stop writing, then read and drop what the client still sends, briefly. Closing at
        once would make the kernel reset the connection, and a reset can destroy the answer
        before the client reads it (a "lingering close", as Apache and nginx do)."""
        with contextlib.suppress(Exception):
            if self.writer.can_write_eof():
                self.writer.write_eof()
            async with asyncio.timeout(LINGER):
                dropped = 0
                while dropped < 4 * MAX_BODY and (data := await self.reader.read(65536)):
                    dropped += len(data)

    async def _requests(self) -> None:
        import h11  # on the first connection: `herder up` spawns before it pays for h11
        while True:
            self.begun = bool(self.h.trailing_data[0])    # bytes of this request already read (pipelined)
            try:
                ev = await self._next(self.loop.time() + IDLE_TIMEOUT, head=True)
            except h11.RemoteProtocolError as e:
                if self.h.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._reply(Reply(e.error_status_hint, {"error": f"bad HTTP request: {e}"}), close=True)
                return
            except Late:
                await self._late(408, f"the request head did not arrive within {HEAD_TIMEOUT:g}s")
            if isinstance(ev, (h11.ConnectionClosed,)) or ev is h11.PAUSED:
                return
            if not isinstance(ev, h11.Request):
                return
            length = dict(ev.headers).get(b"content-length", b"0")
            if length.isdigit() and int(length) > MAX_BODY:   # refused before a byte of it is read
                await self._reply(Reply(413, {"error": f"request body of {int(length)} bytes is over the limit of "
                                              f"{MAX_BODY} bytes"}), close=True)
                return
            body = b""
            too_big = False
            deadline = self.loop.time() + BODY_TIMEOUT
            while True:
                try:
                    part = await self._next(deadline)
                except h11.RemoteProtocolError as e:
                    await self._reply(Reply(400, {"error": f"bad HTTP request: {e}"}), close=True)
                    return
                except Late:
                    await self._late(408, f"the request body did not arrive within {BODY_TIMEOUT:g}s")
                if isinstance(part, h11.Data):
                    if len(body) + len(part.data) > MAX_BODY:
                        too_big = True
                        break          # answered at once; the rest is never read (the connection closes)
                    body += part.data
                elif isinstance(part, h11.EndOfMessage):
                    break
                else:
                    return
            await self._handle(ev, body, too_big)
            if too_big or self.h.our_state is h11.MUST_CLOSE or self.h.their_state is h11.MUST_CLOSE:
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
                raise HTTPError(413, f"request body over the limit of {MAX_BODY} bytes")
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
            self.lst.report(f"herder: api handler failed: {e!r}")
            result = Reply(500, {"error": f"internal error: {e!r}"})
        if isinstance(result, Stream):
            await self._stream(result, request)
        else:
            await self._reply(result, close=too_big)

    async def _reply(self, r: Reply, close: bool = False) -> None:
        import h11  # on the first connection: `herder up` spawns before it pays for h11
        self.refused_early = close and self.h.their_state is not h11.DONE
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
        import h11  # on the first connection: `herder up` spawns before it pays for h11
        self.streaming = True
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
