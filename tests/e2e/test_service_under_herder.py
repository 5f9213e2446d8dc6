"""The library's example (examples/httpsvc) run for real under herder, through the CLI:
herder sees its READY=1 (state stays `starting` until then), serves traffic, and on
`herder down` the program's deferred steps run in reverse order within herder's
stop_timeout, which reaches the program as HERDER_STOP_TIMEOUT_USEC."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ctl_harness import Herd

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "httpsvc" / "httpsvc.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def events(h: Herd, name: str) -> list[dict]:  # type: ignore[type-arg]
    r = h.cli("events", "--json")
    assert r.returncode == 0, r.stderr
    return [e for e in (json.loads(line) for line in r.stdout.splitlines() if line.strip()) if e["instance"] == name]


def test_httpsvc_readiness_traffic_and_ordered_shutdown(herd: Callable[..., Herd]) -> None:
    port = free_port()
    h = herd(f'''
        [services.httpsvc]
        command = ["{sys.executable}", "{EXAMPLE}"]
        cwd = "."
        env = {{ PORT = "{port}", HTTPSVC_DB = "hits.db", DRAIN_TIMEOUT = "5s" }}
        stop_timeout = "8s"
        logs = {{ timestamps = false }}
        [services.httpsvc.ready]
        notify = true
        timeout = "30s"
        ''')
    r = h.up()
    assert r.returncode == 0, r.stdout + r.stderr
    st = h.status()["httpsvc"]
    assert st["state"] == "running" and st["status"] == f"listening on 127.0.0.1:{port}"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=10) as resp:
        assert resp.read() == b"/hello #1\n"
    states = [e["to"] for e in events(h, "httpsvc") if e["kind"] == "state"]
    assert states[-2:] == ["starting", "running"], states  # running only once READY=1 came
    d = h.cli("down")
    assert d.returncode == 0, d.stderr
    log = (h.state / "logs" / "httpsvc.log").read_text()
    assert log.index("drained") < log.index("db closed")       # deferred steps in reverse order
    assert "svc: httpsvc stopped (exit code 0)" in log or "httpsvc stopped (exit code 0)" in log
    exits = [e for e in events(h, "httpsvc") if e["kind"] == "exit"]
    assert exits[-1]["code"] == 0 and exits[-1]["signal"] is None  # no SIGKILL was needed
