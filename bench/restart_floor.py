"""The floor under herder's restart figure: the least a Python asyncio supervisor can do.

    bench/.build/venv/bin/python bench/restart_floor.py [--kills 40]

One asyncio loop, SIGCHLD through `loop.add_signal_handler` (what herder uses), `os.waitpid`,
then `subprocess.Popen` of bench/stamp.c with herder's spawn options (new session,
close_fds, stdin/stdout to /dev/null): no journal, no cgroup, no events, no threads. The
time is the same as compare.py's restart measure: from the SIGKILL to the new child's own
CLOCK_MONOTONIC stamp. The gap between this and herder's figure is herder's own work; this
figure itself is the interpreter's (signal wake-up, vfork + exec of a small C program).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAMP = Path(__file__).resolve().parent / ".build" / "stamp"


def spawn(out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(STAMP), str(out)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def last_stamp(out: Path) -> tuple[int, int] | None:
    lines = out.read_text().split() if out.exists() else []
    return (int(lines[-2]), int(lines[-1])) if len(lines) >= 2 else None


async def main(kills: int) -> list[float]:
    loop = asyncio.get_running_loop()
    out = Path(tempfile.mkdtemp(prefix="herder-floor-")) / "stamps"
    child = spawn(out)

    def reap() -> None:
        nonlocal child
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == child.pid:
                child.returncode = 0   # reaped here: Popen must not wait for it
                child = spawn(out)

    loop.add_signal_handler(signal.SIGCHLD, reap)
    times = []
    try:
        for _ in range(kills):
            while last_stamp(out) is None or last_stamp(out)[0] != child.pid:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.2)
            pid = child.pid
            t0 = time.monotonic_ns()
            os.kill(pid, signal.SIGKILL)
            while (s := last_stamp(out)) is None or s[0] == pid:
                await asyncio.to_thread(time.sleep, 0.0005)   # poll from a thread: the loop stays free
            times.append((s[1] - t0) / 1e6)
    finally:
        loop.remove_signal_handler(signal.SIGCHLD)
        child.kill()
        child.wait()
    return times


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=40)
    xs = asyncio.run(main(ap.parse_args().kills))
    print(f"restart floor (asyncio + Popen, no herder): median {statistics.median(xs):.2f} ms, "
          f"min {min(xs):.2f}, max {max(xs):.2f}, n {len(xs)}; load {os.getloadavg()[0]:.2f}", file=sys.stderr)
