"""herder reports to its own manager (sd_notify) when NOTIFY_SOCKET is set, and hides it from children."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

import pytest

from herder.config import load
from herder.runtime.supervisor import Supervisor

CHILD = """
import json, os, sys, time
json.dump(dict(os.environ), open(sys.argv[1] + ".tmp", "w"))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(100000)
"""


def _config(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "child.py").write_text(CHILD)
    cfg = tmp_path / "herder.toml"
    cfg.write_text(f"""
[herder]
state_dir = "{tmp_path / 'state'}"
cgroups = false
[services.a]
command = ["{sys.executable}", "{tmp_path / 'child.py'}", "{tmp_path / 'env-a.json'}"]
[services.b]
command = ["{tmp_path / 'no-such-program'}"]
restart = "on-failure"
backoff = {{ initial = "10ms", max = "10ms" }}
start_limit = {{ burst = 1, interval = "60s" }}
{extra}
""")
    return cfg


async def _recv_until(sock: socket.socket, want: str, seen: list[str], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        while not any(want in m for m in seen):
            seen.append((await loop.sock_recv(sock, 4096)).decode())


@pytest.mark.parametrize("watchdog", [False, True])
def test_ready_status_watchdog_stopping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, watchdog: bool) -> None:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    if watchdog:
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
    sup = Supervisor(load(_config(tmp_path), check_accounts=False))  # b: a program removed after `check`
    seen: list[str] = []

    async def scenario() -> int:
        run = asyncio.create_task(sup.run(install_signals=False))
        try:
            await _recv_until(sock, "READY=1", seen)
            # READY only once a is running and b (cannot spawn) has failed: every autostart settled
            assert sup.instances["a"].state.value == "running"
            assert sup.instances["b"].state.value == "failed"
            assert any(m.startswith("STATUS=1/2 running") and "1 failed" in m for m in seen), seen
            if watchdog:
                await _recv_until(sock, "WATCHDOG=1", seen)
            async with asyncio.timeout(30):   # the child has written its environment
                while not (tmp_path / "env-a.json").exists():
                    await asyncio.sleep(0.01)
            sup.request_down()
            await _recv_until(sock, "STOPPING=1", seen)
            async with asyncio.timeout(30):
                return await run
        finally:
            if not run.done():
                sup.force()
                await run

    try:
        assert asyncio.run(scenario()) == 0
    finally:
        sock.close()
    assert seen.count("READY=1") == 1
    assert ("WATCHDOG=1" in seen) == watchdog
    env = json.loads((tmp_path / "env-a.json").read_text())
    for own in ("WATCHDOG_USEC", "WATCHDOG_PID"):
        assert own not in env
    assert env["NOTIFY_SOCKET"] == str(tmp_path / "state" / "notify.sock")   # herder's own, not its manager's
    assert env["HERDER_INSTANCE"] == "a"


def test_no_notify_socket_no_component(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    sup = Supervisor(load(_config(tmp_path), check_accounts=False))  # b: a program removed after `check`
    assert not any(type(c).__name__ == "ManagerReport" for c in sup.components)
