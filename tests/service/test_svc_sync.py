"""Sync main in a worker thread, and the example draining an in-flight request."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from pathlib import Path

from svc_harness import EXAMPLE, PROGRAMS, Child, NotifySocket, child_env


def test_sync_main_reports_from_its_thread_and_waits_on_stopping(
    notify: NotifySocket, spawn: Callable[..., Child]
) -> None:
    child = spawn(PROGRAMS / "syncmain.py", child_env(NOTIFY_SOCKET=str(notify.path)), "cooperative")
    assert notify.recv() == "READY=1"
    assert notify.recv() == "STATUS=working"
    child.signal(signal.SIGHUP)  # an async hook calling the blocking wait on the loop
    child.wait_line("refused: ctx.stopping.wait() would block the event loop; use `await ctx.stopping`")
    assert child.stop(signal.SIGTERM) == 0
    out = child.output()
    assert "sync main saw stopping: SIGTERM" in out and "step close ran" in out


def test_a_sync_main_that_ignores_stopping_is_left_behind_and_the_steps_still_run(
    spawn: Callable[..., Child],
) -> None:
    child = spawn(PROGRAMS / "syncmain.py", child_env(), "stubborn")
    child.wait_line("READY")
    assert child.stop(signal.SIGTERM) == 1
    out = child.output()
    assert "main did not return within 0.3s of the stop request" in out
    assert "step close ran" in out


def test_example_drains_the_request_in_flight_before_closing_the_db(
    tmp_path: Path, spawn: Callable[..., Child]
) -> None:
    env = child_env(PORT="0", HTTPSVC_DB=str(tmp_path / "db.sqlite"))
    child = spawn(EXAMPLE, env)
    port = int(child.wait_line("listening on http://").rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /slow=0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        child.wait_line("slow request /slow=0.5 started")
        child.signal(signal.SIGTERM)
        child.wait_line("draining 1 request(s)")
        response = b""
        for _ in range(100):
            chunk = conn.recv(4096)
            if not chunk:
                break
            response += chunk
    assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(b"/slow=0.5 #1\n")
    assert child.finish() == 0
    out = child.output()
    assert out.index("draining 1 request(s)") < out.index("drained") < out.index("db closed")
    # A new connection is refused once draining began.
    refused = socket.socket()
    try:
        assert refused.connect_ex(("127.0.0.1", port)) != 0
    finally:
        refused.close()
