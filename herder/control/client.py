"""The API client: HTTP/1.1 over the supervisor's Unix socket, driven by the command registry.

Deliberately tiny and import-light (no asyncio, no server modules, no http.client):
`herder status` must start, ask and print in well under 100 ms, and http.client alone
costs ~20 ms of imports (it pulls in the email parser). The server is herder's own (h11),
so an answer has either a Content-Length or a chunked body; that is all this reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

from herder.control import registry
from herder.errors import HerderError, NotRunning

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class ApiError(HerderError):
    """The supervisor answered with an error status."""

    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body = status, body
        msg = body.get("error") if isinstance(body, dict) else str(body)
        super().__init__(msg or f"HTTP {status}")
        self.exit_code = 2 if status in (400, 404, 405, 422) else 1


def _quote(text: str) -> str:
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in text.encode())


def urlencode(query: dict[str, Any]) -> str:
    return "&".join(f"{_quote(str(k))}={_quote(str(v))}" for k, v in query.items())


class Response:
    """Status, headers and a body read lazily (Content-Length, chunked, or until close)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._f = sock.makefile("rb")
        line = self._f.readline(65537)
        parts = line.split(None, 2)
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
        self._left = int(length) if length is not None and not self._chunked else None
        self._buf = b""
        self._eof = False

    def getheader(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def _more(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        if self._eof:
            return b""
        if self._chunked:
            size_line = self._f.readline(65537)
            size = int(size_line.split(b";")[0].strip() or b"0", 16) if size_line else 0
            if size == 0:
                while self._f.readline(65537) not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                self._eof = True
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
            self._sock.shutdown(socket.SHUT_RDWR)


class Client:
    def __init__(self, socket_path: str, timeout: float | None = 600.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _open(self, method: str, url: str, body: Any, timeout: float | None) -> Response:
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {url} HTTP/1.1\r\nHost: herder\r\nConnection: close\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        elif method in ("POST", "PUT"):
            head += "Content-Length: 0\r\n"
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(timeout)
        try:
            conn.connect(self.socket_path)
            conn.sendall((head + "\r\n").encode("latin-1") + data)
            return Response(conn)
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
            from herder.control.discovery import not_running

            raise not_running(self.socket_path) from None
        except PermissionError:
            conn.close()
            raise HerderError(f"permission denied on {self.socket_path}: the socket belongs to another "
                              "user (see socket_group)") from None
        except (ConnectionError, OSError) as e:
            conn.close()
            raise NotRunning(f"herder on {self.socket_path} did not answer: {e}") from None

    def _url(self, command: str, path: dict[str, str], query: dict[str, Any] | None) -> tuple[str, str]:
        cmd = registry.by_name(command)
        url = cmd.url(**path)
        q = {k: ("1" if v is True else "0" if v is False else v) for k, v in (query or {}).items() if v is not None}
        return cmd.method, url + ("?" + urlencode(q) if q else "")

    def call(self, command: str, *, path: dict[str, str] | None = None, query: dict[str, Any] | None = None,
             body: Any = None) -> Any:
        """The decoded JSON (or text) answer; ApiError for a 4xx/5xx answer."""
        method, url = self._url(command, path or {}, query)
        resp = self._open(method, url, body, self.timeout)
        try:
            raw = resp.read()
        finally:
            resp.close()
        ctype = resp.getheader("content-type", "")
        value: Any = raw.decode("utf-8", "replace")
        if "json" in ctype:
            with contextlib.suppress(ValueError):
                value = json.loads(raw)
        if resp.status >= 400:
            raise ApiError(resp.status, value)
        return value

    def stream(self, command: str, *, path: dict[str, str] | None = None,
               query: dict[str, Any] | None = None, timeout: float | None = None) -> Iterator[dict[str, Any]]:
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
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            raise ApiError(resp.status, body)
        return resp


def lines_of(resp: Response) -> Iterator[dict[str, Any]]:
    try:
        while True:
            try:
                line = resp.readline()
            except (ConnectionError, ValueError):
                return
            if not line:
                return
            if line.strip():
                yield json.loads(line)
    finally:
        resp.close()


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
    import tomllib

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
        with open(path, encoding="utf-8") as f:
            raw = tomllib.loads(f.read())
    except FileNotFoundError:
        raise UsageError(f"no config at {path}: pass -c FILE or --socket PATH (or set $HERDER_SOCKET)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
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
