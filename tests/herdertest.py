"""Helpers shared by the test tiers (import as `from herdertest import ...`)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

PROGRAMS = Path(__file__).parent / "programs"
PY = sys.executable
ROOT = os.geteuid() == 0


def wait_until(what: str, check: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.1) -> T:
    """Poll an observable `check` (a real engine's state: no event stream to wait on) until it
    returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def public_programs(*names: str) -> Path:
    """Copies of test programs in a fresh directory every user can read (0755 under /tmp).

    A program run as another account (`user = "nobody"`) cannot be read from a checkout
    inside a 0700 directory (/root, pytest's own tmp dirs); report.py always comes along."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="herder-test-public-"))
    d.chmod(0o755)
    for name in {*names, "report.py"}:
        shutil.copy(PROGRAMS / name, d / name)
        (d / name).chmod(0o644)
    return d


def toml_list(argv: list[str]) -> str:
    return "[" + ", ".join('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in argv) + "]"


class Reporter:
    """A datagram socket test programs send JSON to (env REPORT_SOCKET); `get` waits with a deadline."""

    def __init__(self, path: Path) -> None:
        import socket

        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)

    async def get(self, timeout: float = 15.0, event: str | None = None) -> dict[str, Any]:
        import json

        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                msg = json.loads(await loop.sock_recv(self.sock, 65536))
                if event is None or msg.get("event") == event:
                    return msg

    def get_sync(self, timeout: float = 15.0, event: str | None = None) -> dict[str, Any]:
        return asyncio.run(self.get(timeout, event))

    def close(self) -> None:
        self.sock.close()


async def until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """For conditions no event announces (a process gone, no zombie left): re-check with a deadline.

    Async, so the loop under test keeps running (and reaping) while we wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.01)


class Receiver:
    """A webhook endpoint on loopback (port 0) that keeps the JSON bodies it was sent (alerts)."""

    def __init__(self) -> None:
        self.got: list[dict[str, object]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.got.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_privileged_port() -> int:
    """A free TCP port below 1024 on 127.0.0.1 (binding it takes root or CAP_NET_BIND_SERVICE)."""
    import socket

    import pytest

    for port in range(680, 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024 on 127.0.0.1")


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as the kernel shows it (Uid, NoNewPrivs, CapEff …)."""
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}
