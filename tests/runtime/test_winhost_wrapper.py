"""The Windows service host's NSSM-style wrapper, run as a console process on Linux.

Same code path as under the SCM except how the tree is signalled (process group here;
CTRL_BREAK + Job Object on Windows, not run in CI).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from herder.config.model import Backoff, ServiceSpec
from herder.platform.spec import InstallSpec

PROG = """
import os, signal, sys, time
marks = sys.argv[1]
with open(marks, "a") as f:
    f.write(f"start {os.getpid()}\\n")
starts = open(marks).read().count("start")
if starts < 2:
    sys.exit(1)
def term(*_):
    with open(marks, "a") as f:
        f.write("term\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
print("serving", flush=True)
while True:
    time.sleep(1)
"""


def _wait(what: str, check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return got


def _host(tmp_path: Path, spec: InstallSpec) -> subprocess.Popen[bytes]:
    rec = tmp_path / "rec.json"
    rec.write_text(spec.dumps())
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "INVOCATION_ID")}
    return subprocess.Popen([sys.executable, "-m", "herder.platform.winhost", spec.name, "--record", str(rec)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def test_restarts_per_policy_logs_and_stops_the_tree(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(PROG)
    marks = tmp_path / "marks"
    svc = ServiceSpec(command=(sys.executable, str(tmp_path / "prog.py"), str(marks)), restart="on-failure",
                      backoff=Backoff(initial=0.01, max=0.01), min_uptime=0.0, stop_timeout=10.0)
    host = _host(tmp_path, InstallSpec("w", svc, log_dir=str(tmp_path / "logs")))
    try:
        _wait("the second start", lambda: marks.exists() and marks.read_text().count("start") == 2)
        log = tmp_path / "logs" / "w.log"
        _wait("the program's output in the log", lambda: b"serving" in log.read_bytes())
        text = log.read_text()
        assert "exited with code 1" in text and "restarting in 0.010s" in text
        child = int(marks.read_text().split("start ")[-1].split()[0])
        host.send_signal(signal.SIGTERM)
        assert host.wait(timeout=30) == 0, host.stderr.read() if host.stderr else ""
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        if host.stderr:
            host.stderr.close()
    assert marks.read_text().endswith("term\n")       # the program got its stop signal
    _wait("the program gone", lambda: not os.path.exists(f"/proc/{child}"))
    assert f"stopped pid {child}: exited after SIGTERM (exit 0)" in log.read_text()


def test_never_restart_exits_with_the_programs_code_for_the_scm(tmp_path: Path) -> None:
    svc = ServiceSpec(command=(sys.executable, "-c", "import sys; sys.exit(3)"), restart="never")
    host = _host(tmp_path, InstallSpec("once", svc, log_dir=str(tmp_path / "logs")))
    try:
        assert host.wait(timeout=30) == 3   # the SCM records 1066 and 3
    finally:
        if host.stderr:
            host.stderr.close()
    assert "exited with code 3" in (tmp_path / "logs" / "once.log").read_text()
