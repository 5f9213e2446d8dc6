"""Test harness: real child processes, a test-owned NOTIFY_SOCKET, and event waits.

Nothing here sleeps to synchronise: every wait is on something observable (a datagram,
a line of the child's output, the child's exit, a pidfd becoming readable), bounded by
a deadline.
"""

from __future__ import annotations

import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = Path(__file__).resolve().parent / "programs"
EXAMPLE = ROOT / "examples" / "httpsvc" / "httpsvc.py"
DEADLINE = 15.0

#: Variables of the test run that would change the mode the child detects.
_MANAGER_VARS = (
    "NOTIFY_SOCKET", "INVOCATION_ID", "WATCHDOG_USEC", "WATCHDOG_PID", "HERDER_INSTANCE",
    "HERDER_SERVICE", "HERDER_STOP_TIMEOUT_USEC", "XPC_SERVICE_NAME",
)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _MANAGER_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class NotifySocket:
    """A fake service manager's end of sd_notify: a datagram socket the test owns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.received: list[tuple[float, str]] = []

    def recv(self, timeout: float = DEADLINE) -> str:
        """The next datagram; AssertionError if none arrives in time."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        assert ready, f"no datagram on {self.path} within {timeout}s; got {self.messages()}"
        message = self.sock.recv(4096).decode()
        self.received.append((time.monotonic(), message))
        return message

    def wait_for(self, wanted: str | Callable[[str], bool], timeout: float = DEADLINE) -> str:
        """Receive until a datagram equals ``wanted`` (or satisfies it)."""
        match = wanted if callable(wanted) else (lambda m: m == wanted)
        end = time.monotonic() + timeout
        for _ in range(10_000):
            message = self.recv(max(0.0, end - time.monotonic()))
            if match(message):
                return message
        raise AssertionError(f"{wanted!r} not received")

    def messages(self, skip_watchdog: bool = True) -> list[str]:
        return [m for _, m in self.received if not (skip_watchdog and m == "WATCHDOG=1")]

    def close(self) -> None:
        self.sock.close()


class Child:
    """A child process whose stdout+stderr lines are read by a thread into a queue."""

    def __init__(self, argv: list[str], env: dict[str, str], **popen: object) -> None:
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def python(cls, script: Path, env: dict[str, str], *args: str, **popen: object) -> Child:
        return cls([sys.executable, str(script), *args], env, **popen)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_any(self, *needles: str, timeout: float = DEADLINE) -> str:
        """Consume output until a line containing one of ``needles``."""
        end = time.monotonic() + timeout
        for _ in range(100_000):
            try:
                line = self._queue.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"none of {needles} printed before exit:\n" + self.output())
            self.lines.append(line)
            if any(n in line for n in needles):
                return line
        raise AssertionError(f"none of {needles} printed within {timeout}s:\n" + self.output())

    def wait_line(self, needle: str, timeout: float = DEADLINE) -> str:
        """Consume output until a line containing ``needle``."""
        return self.wait_any(needle, timeout=timeout)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the exit; return the exit code."""
        self.signal(sig)
        return self.finish()

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = DEADLINE) -> int:
        """Wait for exit, collect the rest of the output, return the exit code."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code

    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()


def wait_exit(pid: int, timeout: float = DEADLINE) -> None:
    """Wait for a process that is not our child to exit (Linux pidfd)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"pid {pid} still running after {timeout}s"
    finally:
        os.close(fd)
