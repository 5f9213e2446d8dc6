"""Helpers for the control tests: real `herder up -d` supervisors, the real CLI, raw HTTP."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERDER = str(Path(sys.executable).parent / "herder")
# For herds whose services never exit on their own (put before the services): `up -d` returns
# once they run instead of waiting out min_uptime (1 s by default) on each `up`; what counts
# as a failed start, min_uptime's other use, plays no part in the tests that use it.
NO_MIN_UPTIME = '[defaults]\nmin_uptime = "0s"\n'


def run(*args: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HERDER, *args], capture_output=True, text=True, timeout=timeout, **kw)


class Herd:
    """One config and state_dir under a world-traversable temp dir (so `nobody` can reach it)."""

    def __init__(self, services: str, herder: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hctl-", dir="/tmp"))
        self.dir.chmod(0o755)
        self.state = self.dir / "state"
        self.config = self.dir / "herder.toml"
        self.write(services, herder)

    def write(self, services: str, herder: str = "", path: Path | None = None) -> Path:
        path = path or self.config
        path.write_text(f'[herder]\nstate_dir = "{self.state}"\n{textwrap.dedent(herder)}\n'
                        f"{textwrap.dedent(services)}")
        return path

    @property
    def sock(self) -> str:
        return str(self.state / "herder.sock")

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run(*args[:1], "-c", str(self.config), *args[1:], timeout=timeout)

    def up(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return run("up", "-d", "-c", str(self.config), *extra)

    def status(self) -> dict[str, dict[str, Any]]:
        r = self.cli("status", "--json")
        assert r.returncode == 0, r.stderr
        return {x["name"]: x for x in json.loads(r.stdout)}

    def holder(self) -> int | None:
        from herder.store.lock import holder

        pid = holder(self.state)
        return pid if pid and pid > 0 else None

    def kill_herder(self) -> None:
        """SIGKILL both of herder's processes, the keeper (stopped first, so that it cannot
        restart its decision process) and its decision process, and wait until they are gone
        (psutil waits on the processes; no sleep). What they ran is left running."""
        import psutil

        pid = self.holder()
        assert pid is not None, "no herder holds the state_dir"
        keeper = psutil.Process(pid)
        keeper.suspend()
        procs = [keeper, *[c for c in keeper.children() if "herder.runtime.dp" in " ".join(c.cmdline())]]
        for p in reversed(procs):
            p.kill()
        _, left = psutil.wait_procs(procs, timeout=30)
        assert not left and self.holder() is None

    def close(self) -> None:
        """Nothing this herd started outlives it. `down`; if herder still holds the state_dir
        (a test left it unable to answer), SIGTERM to the keeper, which stops every service
        itself; if even that fails within 30 s, the keeper and everything below it are killed.
        (A lone SIGKILL of the keeper, as this did once, lets the decision process become
        the keeper: that herder and its services ran on after the test.)"""
        import psutil

        if self.holder() is not None:
            run("down", "--socket", self.sock, timeout=60)
        pid = self.holder()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while self.holder() == pid and time.monotonic() < deadline:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).wait(timeout=0.1)
        pid = self.holder()
        if pid:
            with contextlib.suppress(psutil.Error):
                keeper = psutil.Process(pid)
                keeper.suspend()
                tree = [keeper, *keeper.children(recursive=True)]
                for p in tree:
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                psutil.wait_procs(tree, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def request(sock: str, method: str, path: str, body: Any = None, raw: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any]:
    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(30)
            self.sock.connect(sock)

    c = Conn("localhost", timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"Content-Type": "application/json"} if data is not None else {}
    try:        # closed however it ends (a supervisor killed mid-request drops the connection)
        c.request(method, path, body=data, headers={**h, **(headers or {})})
        r = c.getresponse()
        payload = r.read()
    finally:
        c.close()
    try:
        return r.status, json.loads(payload)
    except ValueError:
        return r.status, payload.decode()


@pytest.fixture
def herd() -> Iterator[Callable[..., Herd]]:
    """Make a Herd (config + state_dir); every supervisor started from one is stopped at the end.

    Registered for every test by tests/conftest.py."""
    made: list[Herd] = []

    def make(services: str, herder: str = "") -> Herd:
        h = Herd(services, herder)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
