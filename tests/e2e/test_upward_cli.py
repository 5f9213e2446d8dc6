"""READY=1 to herder's own manager from a real `herder up` (keeper + decision process).

systemd's `systemctl start` of a `Type=notify` herder returns at READY=1, so READY=1 must
mean what docs/install.md says: every autostart instance has settled (running, or failed
for good). It once went out at "0/2 running", before the start had been applied (the
component armed itself before `up` was posted); the in-process test of the component
(tests/runtime/test_upward_notify.py) could not see it, a real `herder up` does.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from herderproc import HerderProc


def test_ready_comes_after_every_autostart_instance_is_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "herder.toml"
    cfg.write_text(f"""
[herder]
state_dir = "{tmp_path / 'state'}"
[services.tick]
command = ["sleep", "100000"]
[services.front]
command = ["sleep", "100000"]
depends_on = ["tick"]
""")
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    seen: list[str] = []
    h = HerderProc("up", "-c", str(cfg))
    try:
        deadline = time.monotonic() + 60
        while "READY=1" not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no READY=1 within 60 s: {seen}"
            sock.settimeout(left)
            seen += sock.recv(4096).decode().split("\n")
    finally:
        h.kill()
        h.wait()
        sock.close()
    status = [m for m in seen[: seen.index("READY=1")] if m.startswith("STATUS=")]
    assert status and status[-1] == "STATUS=2/2 running", seen
