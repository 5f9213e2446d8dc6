"""Drive `herder` as a user would: a real process, its stderr read line by line with deadlines."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

HERDER = [sys.executable, "-m", "herder"]


class HerderProc:
    def __init__(self, *args: str, prefix: list[str] | None = None, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen([*(prefix or []), *HERDER, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=cwd)
        self.lines: list[str] = []
        self._buf = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait for an output line matching pattern (searching lines already read too)."""
        rx = re.compile(pattern)
        for line in self.lines:
            m = rx.search(line)
            if m:
                return m
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout}s; output:\n"
                                     + "\n".join(self.lines))
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"herder exited (rc={self.proc.wait()}) before {pattern!r}; output:\n"
                                     + "\n".join(self.lines))
            self._buf += chunk
            *done, self._buf = self._buf.split(b"\n")
            fresh = [raw.decode(errors="replace") for raw in done]
            self.lines.extend(fresh)  # keep every line, also those after a match
            for line in fresh:
                m = rx.search(line)
                if m:
                    return m

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 30.0) -> int:
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines.extend((self._buf + out).decode(errors="replace").splitlines())
        self._buf = b""
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HERDER, *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, **(env or {})})
