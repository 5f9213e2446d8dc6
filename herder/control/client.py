"""The API client: HTTP/1.1 over the supervisor's Unix socket, driven by the command registry.

Deliberately tiny and import-light (no asyncio, no server modules, no http.client):
`herder status` must start, ask and print in well under 100 ms, and http.client alone
costs ~20 ms of imports (it pulls in the email parser). The server is herder's own (h11),
so an answer has either a Content-Length or a chunked body; that is all this reads.

An answer cut short (the supervisor died, or the connection dropped, after the request
went out) is never taken for a result: it raises Dropped (exit 1, "the outcome is
unknown"), distinct from NotRunning (exit 3, nobody answered the connect). A stream
knows whether it ended cleanly (`LineStream.complete`), which `herder down` uses to tell
"every service stopped" from "herder died on the way".
"""

from __future__ import annotations

import _socket  # the C module: socket.py (selectors, its enums) costs `herder status` ~2 ms to import
import io
import os

from herder.control import jsonload, registry
from herder.errors import HerderError, NotRunning

TYPE_CHECKING = False   # not `from typing import …`: typing costs `herder status` ~3 ms; mypy reads this block
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, TypeVar

    T = TypeVar("T")

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class Dropped(HerderError):
    """The connection ended before the supervisor's answer did: the outcome is unknown."""


class ApiError(HerderError):
    """The supervisor answered with an error status."""

    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body = status, body
        msg = body.get("error") if isinstance(body, dict) else str(body)
        super().__init__(msg or f"HTTP {status}")
        self.exit_code = 2 if status in (400, 404, 405, 422) else 1


def _dumps(body: Any) -> bytes:
    """A request body; `json` only here: `herder status` sends none (herder.control.jsonload)."""
    import json

    return json.dumps(body).encode()


def _quote(text: str) -> str:
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in text.encode())


def urlencode(query: dict[str, Any]) -> str:
    return "&".join(f"{_quote(str(k))}={_quote(str(v))}" for k, v in query.items())


class _SocketReader(io.RawIOBase):
    """What socket.makefile("rb") gives, on the C socket: reads block up to its timeout
    (TimeoutError), EINTR is retried by the interpreter."""

    def __init__(self, sock: _socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self._sock.recv_into(b)

    def fileno(self) -> int:
        return self._sock.fileno()


class Response:
    """Status, headers and a body read lazily (Content-Length, chunked, or until close)."""

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock
        self._f = io.BufferedReader(_SocketReader(sock))
        line = self._f.readline(65537)
        parts = line.split(None, 2)
        if not line:
            raise ConnectionError("no answer")
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ConnectionError(f"not an HTTP answer: {line[:80]!r}")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        while True:
            h = self._f.readline(65537)
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        self._left = int(length) if length is not None and length.isdigit() and not self._chunked else None
        self._buf = b""
        self._eof = False
        self.complete = False     # the body ended as HTTP says it ends (not with the connection)

    def getheader(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def _more(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        if self._eof:
            return b""
        if self._chunked:
            size_line = self._f.readline(65537)
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:       # the connection ended (b"") or garbage: not the last chunk
                self._eof = True
                return b""
            if size == 0:
                while self._f.readline(65537) not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                self._eof = self.complete = True
                return b""
            data = self._f.read(size)
            self._f.readline(65537)  # the CRLF after the chunk
            if len(data) < size:
                self._eof = True
            return data
        want = 65536 if self._left is None else min(self._left, 65536)
        data = self._f.read1(want) if want else b""
        if self._left is not None:
            self._left -= len(data)
        if not data or self._left == 0:
            self._eof = True
            self.complete = self._left == 0 or (self._left is None and "close" in self.getheader("connection"))
        return data

    def read(self) -> bytes:
        out, self._buf = [self._buf], b""
        while piece := self._more():
            out.append(piece)
        return b"".join(out)

    def readline(self) -> bytes:
        while b"\n" not in self._buf:
            piece = self._more()
            if not piece:
                line, self._buf = self._buf, b""
                return line
            self._buf += piece
        line, _, self._buf = self._buf.partition(b"\n")
        return line + b"\n"

    def close(self) -> None:
        self._f.close()
        self._sock.close()

    def abort(self) -> None:
        """End the answer from another thread: a reader blocked on it sees its end."""
        import contextlib

        with contextlib.suppress(OSError):
            self._sock.shutdown(_socket.SHUT_RDWR)


class Pending:
    """A request on its way (Client.begin): `result()` reads its answer once; `close()`
    drops it unread."""

    def __init__(self, client: Client, method: str, url: str, conn: _socket.socket) -> None:
        self._client, self._method, self._url = client, method, url
        self._conn: _socket.socket | None = conn

    def result(self) -> Any:
        conn, self._conn = self._conn, None
        if conn is None:
            raise RuntimeError("the answer was already read")
        return self._client._result(conn, self._method, self._url)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Client:
    def __init__(self, socket_path: str, timeout: float | None = 600.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _open(self, method: str, url: str, body: Any, timeout: float | None) -> Response:
        return self._answer(self._send(method, url, body, timeout), method, url)

    def _send(self, method: str, url: str, body: Any, timeout: float | None) -> _socket.socket:
        """A connection with the request sent on it."""
        data = b"" if body is None else _dumps(body)
        head = f"{method} {url} HTTP/1.1\r\nHost: herder\r\nConnection: close\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        elif method in ("POST", "PUT"):
            head += "Content-Length: 0\r\n"
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        conn.settimeout(timeout)
        try:
            conn.connect(self.socket_path)
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
            from herder.control.discovery import not_running

            raise not_running(self.socket_path) from None
        except PermissionError:
            conn.close()
            raise HerderError(f"permission denied on {self.socket_path}: the socket belongs to another "
                              "user (see socket_group)") from None
        except OSError as e:
            conn.close()
            raise NotRunning(f"herder on {self.socket_path} did not answer: {e}") from None
        self._on(conn, method, url, lambda: conn.sendall((head + "\r\n").encode("latin-1") + data))
        return conn

    def _answer(self, conn: _socket.socket, method: str, url: str) -> Response:
        """The answer's status and headers, read from a connection the request went out on."""
        return self._on(conn, method, url, lambda: Response(conn))

    def _on(self, conn: _socket.socket, method: str, url: str, step: Callable[[], T]) -> T:
        """step() on the connection: a timeout goes up as it is; a connection that breaks is
        closed and the outcome is unknown (Dropped)."""
        try:
            return step()
        except TimeoutError:
            conn.close()
            raise
        except (ConnectionError, OSError) as e:
            conn.close()
            raise Dropped(f"the supervisor on {self.socket_path} closed the connection before answering "
                          f"{method} {url} ({e}); did it exit? the outcome is unknown: see `herder status`") from None

    def _url(self, command: str, path: dict[str, str], query: dict[str, Any] | None) -> tuple[str, str]:
        cmd = registry.by_name(command)
        url = cmd.url(**path)
        q = {k: ("1" if v is True else "0" if v is False else v) for k, v in (query or {}).items() if v is not None}
        return cmd.method, url + ("?" + urlencode(q) if q else "")

    def call(self, command: str, *, path: dict[str, str] | None = None, query: dict[str, Any] | None = None,
             body: Any = None) -> Any:
        """The decoded JSON (or text) answer; ApiError for a 4xx/5xx answer."""
        return self.begin(command, path=path, query=query, body=body).result()

    def begin(self, command: str, *, path: dict[str, str] | None = None, query: dict[str, Any] | None = None,
              body: Any = None) -> Pending:
        """Send the request now, read its answer later (`result()`, as `call` returns it):
        requests sent together are answered in one wake-up of the supervisor (`herder
        status` asks for the list and for herder's health at once)."""
        method, url = self._url(command, path or {}, query)
        return Pending(self, method, url, self._send(method, url, body, self.timeout))

    def _result(self, conn: _socket.socket, method: str, url: str) -> Any:
        resp = self._answer(conn, method, url)
        try:
            raw = resp.read()
        except (ConnectionError, OSError) as e:
            raise Dropped(f"the connection to the supervisor broke during its answer to {method} {url} ({e}); "
                          "the outcome is unknown: see `herder status`") from None
        finally:
            resp.close()
        if not resp.complete:
            raise Dropped(f"the supervisor's answer to {method} {url} was cut short (did herder exit?); "
                          "the outcome is unknown: see `herder status`")
        ctype = resp.getheader("content-type", "")
        value: Any = raw.decode("utf-8", "replace")
        if "json" in ctype:
            try:
                value = jsonload.loads(raw)
            except ValueError:
                raise Dropped(f"the supervisor's answer to {method} {url} is not JSON; the outcome is unknown: "
                              "see `herder status`") from None
        if resp.status >= 400:
            raise ApiError(resp.status, value)
        return value

    def stream(self, command: str, *, path: dict[str, str] | None = None,
               query: dict[str, Any] | None = None, timeout: float | None = None) -> LineStream:
        """Each JSON line of a streaming answer as it arrives; ends when the server ends it.

        The request is sent and its status checked before this returns, so a caller can
        subscribe first and act second without missing what its action causes. `timeout`
        bounds each wait for a line (TimeoutError)."""
        return lines_of(self.open_stream(command, path=path, query=query, timeout=timeout))

    def open_stream(self, command: str, *, path: dict[str, str] | None = None,
                    query: dict[str, Any] | None = None, timeout: float | None = None) -> Response:
        """`stream`'s answer itself (status checked), for a caller that must be able to
        `abort()` it from another thread; read it with `lines_of`."""
        method, url = self._url(command, path or {}, query)
        resp = self._open(method, url, None, timeout)
        if resp.status >= 400:
            raw = resp.read()
            resp.close()
            try:
                body = jsonload.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            raise ApiError(resp.status, body)
        return resp


def lines_of(resp: Response) -> LineStream:
    """The JSON lines of a streaming answer, as an iterator that knows whether the stream
    ended cleanly (`complete`)."""
    return LineStream(resp)


class LineStream:
    """The JSON lines of a streaming answer; `complete` once it ended as HTTP says (the final
    chunk), False while it runs or when the connection ended first."""

    def __init__(self, resp: Response) -> None:
        self._resp = resp

    @property
    def complete(self) -> bool:
        return self._resp.complete

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        while True:
            try:
                line = self._resp.readline()
            except (ConnectionError, ValueError, OSError) as e:
                if isinstance(e, TimeoutError):
                    raise
                self.close()
                raise StopIteration from None
            if not line:
                self.close()
                raise StopIteration
            if line.strip():
                try:
                    value: dict[str, Any] = jsonload.loads(line)
                except ValueError:     # a line cut by the end of the connection
                    continue
                return value

    def close(self) -> None:
        self._resp.close()

    def __del__(self) -> None:   # a caller that stops reading early: the connection closes with it
        self._resp.close()


def _is_herder_header(line: str) -> bool:
    """`[herder]` on a line of its own, spaces or tabs around, a comment after."""
    rest = line.lstrip(" \t")
    for token in ("[", "herder", "]"):
        if not rest.startswith(token):
            return False
        rest = rest[len(token):].lstrip(" \t")
    return not rest or rest.startswith("#")


def _plain_state_dir(line: str) -> str | None:
    """The value of `state_dir = "…"` (or '…') on a line of its own: a string without escapes
    or line breaks, spaces or tabs around, a comment after; None for any other line."""
    rest = line.lstrip(" \t")
    if not rest.startswith("state_dir"):
        return None
    rest = rest[len("state_dir"):].lstrip(" \t")
    if not rest.startswith("="):
        return None
    rest = rest[1:].lstrip(" \t")
    quote = rest[:1]
    if quote not in ('"', "'"):
        return None
    close = rest.find(quote, 1)
    value = rest[1:close]
    if close < 0 or (quote == '"' and "\\" in value):
        return None
    after = rest[close + 1:].lstrip(" \t")
    return value if not after or after.startswith("#") else None


def _herder_table(text: str) -> dict[str, Any]:
    """The parsed config, or only its `[herder]` table when that alone can hold state_dir: a
    config of 200 services takes tomllib ~5-10 ms to parse, `[herder]` alone ~0.1 ms. Only
    when every `state_dir` in the text lies inside the `[herder]` table (no dotted key, no
    inline table, no string elsewhere naming it) and that table parses on its own; otherwise
    the whole file is parsed, as before. And when the table says `state_dir = "…"` on one
    line of its own (a plain string, no escapes, no multi-line string anywhere in the table),
    that line is read without tomllib at all (its import is ~3 ms of `herder status`). Lines
    are read with str methods, not `re` (~6 ms of imports with enum, functools, collections)."""
    lines = text.split("\n")
    at = 0
    for i, line in enumerate(lines):
        if _is_herder_header(line):
            rows = [line]   # the table: up to the next line that opens one ([x] or [[x]])
            for row in lines[i + 1:]:
                if row.lstrip(" \t").startswith("["):
                    break
                rows.append(row)
            table = text[at:at + sum(len(row) + 1 for row in rows)]
            if text.count("state_dir") == table.count("state_dir"):
                if '"""' not in table and "'''" not in table:
                    found = [v for v in map(_plain_state_dir, rows) if v is not None]
                    if len(found) == table.count("state_dir") == 1:
                        return {"herder": {"state_dir": found[0]}}
                import tomllib

                try:
                    return tomllib.loads(table)
                except tomllib.TOMLDecodeError:
                    pass   # e.g. a multi-line string that the cut split: read the whole file
            break
        at += len(line) + 1
    import tomllib

    return tomllib.loads(text)


def _config_text(path: str) -> str:
    """The file as open(path, encoding="utf-8-sig") reads it (a byte order mark is allowed, as
    `herder check` does; \\r\\n and \\r read as \\n), without that codec's import."""
    with open(path, "rb") as f:
        data = f.read()
    text = data[3 if data.startswith(b"\xef\xbb\xbf") else 0:].decode("utf-8")
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def discover_socket(explicit: str | None, config: str | None) -> str:
    """--socket, else $HERDER_SOCKET, else {state_dir}/herder.sock of the config.

    Reads only [herder].state_dir with tomllib (no full validation): a config being edited
    must not stop `herder status` from finding the running supervisor.
    """
    if explicit:
        return explicit
    env = os.environ.get("HERDER_SOCKET")
    if env and not config:
        return env
    from herder.errors import UsageError

    # interface.md: -c FILE, else ./herder.toml, else $HERDER_CONFIG (herder.config.find_config,
    # restated here because importing herder.config costs the whole schema)
    if config:
        path = config
    elif os.path.exists("herder.toml") or not os.environ.get("HERDER_CONFIG"):
        path = "herder.toml"
    else:
        path = os.environ["HERDER_CONFIG"]
    try:
        raw = _herder_table(_config_text(path))
    except FileNotFoundError:
        raise UsageError(f"no config at {path}: pass -c FILE or --socket PATH (or set $HERDER_SOCKET)") from None
    except (OSError, ValueError) as e:   # UnicodeDecodeError, tomllib.TOMLDecodeError
        raise UsageError(f"{path}: cannot read state_dir from it ({e}); pass --socket PATH") from None
    section = raw.get("herder")
    herder: dict[str, Any] = section if isinstance(section, dict) else {}
    state_dir = herder.get("state_dir")
    if state_dir is not None and not isinstance(state_dir, str):
        raise UsageError(f"{path}: herder.state_dir: expected a string")
    here = os.path.dirname(os.path.realpath(path))
    if state_dir is None and os.environ.get("HERDER_STATE_DIR"):
        state_dir = os.environ["HERDER_STATE_DIR"]   # as herder.config does (a system install sets it)
    if state_dir is None:
        default = os.path.join(here, ".herder", "herder.sock")
        if os.path.exists(default):
            return default
        # started with HERDER_STATE_DIR from another shell, or installed: ask the index, then the record
        from herder.control import discovery

        real = os.path.realpath(path)
        installed = None if (elsewhere := discovery.indexed_socket(real)) else discovery.installed_state_dir(real)
        return elsewhere or (os.path.join(installed, "herder.sock") if installed else default)
    sd = os.path.expanduser(state_dir)
    if not os.path.isabs(sd):
        sd = os.path.join(here, sd)
    return os.path.join(sd, "herder.sock")
