"""The API client: stdlib http.client over AF_UNIX, driven by the command registry.

Deliberately tiny and import-light (no asyncio, no server modules): `herder status`
must start, ask and print in well under 100 ms.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from herder.control import registry

if "ssl" not in sys.modules:
    # http.client imports ssl for HTTPS, which a Unix socket never needs: ~30% of its import
    # time. Hide ssl while http.client loads, then make it importable again.
    sys.modules["ssl"] = None  # type: ignore[assignment]
    try:
        import http.client
    finally:
        del sys.modules["ssl"]
else:
    import http.client
from herder.errors import HerderError, NotRunning


class ApiError(HerderError):
    """The supervisor answered with an error status."""

    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body = status, body
        msg = body.get("error") if isinstance(body, dict) else str(body)
        super().__init__(msg or f"HTTP {status}")
        self.exit_code = 2 if status in (400, 404, 405, 422) else 1


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except BaseException:
            s.close()
            raise
        self.sock = s


class Client:
    def __init__(self, socket_path: str, timeout: float | None = 600.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _open(self, method: str, url: str, body: Any, timeout: float | None) -> http.client.HTTPResponse:
        conn = _UnixConnection(self.socket_path, timeout)
        headers = {"Host": "herder"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, url, body=data, headers=headers)
            return conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
            raise NotRunning(f"herder is not running (no supervisor answers on {self.socket_path}); "
                             "start it with `herder up -d`") from None
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
            try:
                value = json.loads(raw)
            except ValueError:
                pass
        if resp.status >= 400:
            raise ApiError(resp.status, value)
        return value

    def stream(self, command: str, *, path: dict[str, str] | None = None,
               query: dict[str, Any] | None = None, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Each JSON line of a streaming answer as it arrives; ends when the server ends it.

        The request is sent and its status checked before this returns, so a caller can
        subscribe first and act second without missing what its action causes. `timeout`
        bounds each wait for a line (TimeoutError)."""
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
        return _lines(resp)


def _lines(resp: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    try:
        while True:
            try:
                line = resp.readline()
            except (http.client.IncompleteRead, ConnectionError):
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
    from pathlib import Path

    from herder.errors import UsageError

    # interface.md: -c FILE, else ./herder.toml, else $HERDER_CONFIG (herder.config.find_config,
    # restated here because importing herder.config costs the whole schema)
    if config:
        path = Path(config)
    elif Path("herder.toml").exists() or not os.environ.get("HERDER_CONFIG"):
        path = Path("herder.toml")
    else:
        path = Path(os.environ["HERDER_CONFIG"])
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no config at {path}: pass -c FILE or --socket PATH (or set $HERDER_SOCKET)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{path}: cannot read state_dir from it ({e}); pass --socket PATH") from None
    herder = raw.get("herder") if isinstance(raw.get("herder"), dict) else {}
    state_dir = herder.get("state_dir", ".herder")
    if not isinstance(state_dir, str):
        raise UsageError(f"{path}: herder.state_dir: expected a string")
    sd = Path(os.path.expanduser(state_dir))
    if not sd.is_absolute():
        sd = path.resolve().parent / sd
    return str(sd / "herder.sock")
