"""The example and a test service under a fake systemd / herder: a test-owned NOTIFY_SOCKET.

herder mode is NOTIFY_SOCKET + HERDER_INSTANCE and must behave exactly as systemd mode;
both are run here. The test under the real herder supervisor comes with it.
"""

from __future__ import annotations

import http.client
import itertools
import signal
import statistics
from collections.abc import Callable

import pytest
from svc_harness import EXAMPLE, PROGRAMS, Child, NotifySocket, child_env


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


@pytest.mark.parametrize("manager", ["systemd", "herder"])
def test_example_reports_ready_status_stopping_and_drains(
    manager: str, notify: NotifySocket, spawn: Callable[..., Child], tmp_path
) -> None:
    extra = {"INVOCATION_ID": "0123"} if manager == "systemd" else {
        "HERDER_INSTANCE": "httpsvc", "HERDER_SERVICE": "httpsvc", "HERDER_STOP_TIMEOUT_USEC": "10000000",
    }
    env = child_env(NOTIFY_SOCKET=str(notify.path), PORT="0", HTTPSVC_DB=str(tmp_path / "db.sqlite"), **extra)
    child = spawn(EXAMPLE, env)

    line = child.wait_line("listening on http://")
    port = int(line.rsplit(":", 1)[1])
    assert notify.recv() == "READY=1"
    assert notify.recv() == f"STATUS=listening on 127.0.0.1:{port}"
    assert _get(port, "/hello") == "/hello #1\n"  # ready means the listener is up

    child.signal(signal.SIGHUP)
    child.wait_line("reload: nothing to re-read")
    reloading = notify.recv()
    assert reloading.startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert notify.recv() == "READY=1"

    child.signal(signal.SIGTERM)
    assert notify.recv() == "STOPPING=1"
    assert child.finish() == 0
    out = child.output()
    assert out.index("drained") < out.index("db closed")
    assert f"(mode: {manager})" in out
    assert notify.messages() == ["READY=1", f"STATUS=listening on 127.0.0.1:{port}", reloading, "READY=1", "STOPPING=1"]


def test_watchdog_pings_at_half_the_interval_and_stop_while_the_loop_is_blocked(
    notify: NotifySocket, spawn: Callable[..., Child]
) -> None:
    env = child_env(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="200000", RELOAD="block")
    child = spawn(PROGRAMS / "svcprog.py", env)
    child.wait_line("READY")
    # Ten pings at the steady rate: every 100 ms (half of WATCHDOG_USEC).
    for _ in range(11):
        notify.wait_for("WATCHDOG=1")
    times = [t for t, m in notify.received if m == "WATCHDOG=1"][-10:]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 0.08 <= statistics.median(gaps) <= 0.15, gaps

    # Block the event loop for 1 s: no ping may come from a blocked loop.
    child.signal(signal.SIGHUP)
    child.wait_line("reload: blocking the loop")
    notify.wait_for(lambda m: m.startswith("RELOADING=1"))
    reload_time = notify.received[-1][0]
    notify.wait_for("READY=1")  # the reload is over: the loop runs again
    notify.wait_for("WATCHDOG=1")
    pings = [t for t, m in notify.received if m == "WATCHDOG=1"]
    gap_over_block = min(t for t in pings if t > reload_time) - max(t for t in pings if t <= reload_time)
    assert gap_over_block >= 0.9, gap_over_block

    child.signal(signal.SIGTERM)
    notify.wait_for("STOPPING=1")
    assert child.finish() == 0


def test_watchdog_pid_for_another_process_means_no_pings(notify: NotifySocket, spawn: Callable[..., Child]) -> None:
    env = child_env(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="100000", WATCHDOG_PID="1")
    child = spawn(PROGRAMS / "svcprog.py", env)
    assert notify.recv() == "READY=1"
    child.signal(signal.SIGTERM)
    # Datagrams arrive in order: had any ping been sent before the stop, we would see it first.
    assert notify.recv() == "STOPPING=1"
    assert child.finish() == 0
    assert "WATCHDOG=1" not in notify.messages(skip_watchdog=False)


def test_the_notify_variables_are_not_inherited_by_our_children(
    notify: NotifySocket, children: list[Child]
) -> None:
    script = (
        "import os\nfrom herder.service import Service\nsvc = Service('env')\n"
        "@svc.main\ndef main(ctx):\n"
        "    print('child sees', [k for k in ('NOTIFY_SOCKET', 'WATCHDOG_USEC') if k in os.environ], flush=True)\n"
        "svc.run()\n"
    )
    env = child_env(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="5000000")
    child = Child([__import__("sys").executable, "-c", script], env)
    children.append(child)
    assert child.finish() == 0
    assert "child sees []" in child.output()
