"""Costs of the health machinery, on this machine (medians of repeated runs).

- sd_notify: datagrams/s through parse + sender lookup (main pid) + delivery
- RSS sample of a 3-process tree (max_memory_restart's per-interval cost)
- spawn with a preexec function (limits set) vs plain vfork spawn

Run: .venv/bin/python bench/health_bench.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from herder.core import sdnotify


def timed(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def runs(fn, n: int, reps: int = 7) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    xs = [timed(fn, n) for _ in range(reps)]
    return statistics.median(xs), min(xs), max(xs)


def show(name: str, r: tuple[float, float, float], unit: float = 1e-6, label: str = "µs") -> None:
    print(f"{name}: median {r[0] / unit:.1f} {label} (min {r[1] / unit:.1f}, max {r[2] / unit:.1f})")


def main() -> None:
    data = b"READY=1\nSTATUS=Gunicorn arbiter booted"
    show("parse one 2-line datagram", runs(lambda: sdnotify.parse(data), 20000))

    from herder.health.monitor import descendants, rss

    child = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"], start_new_session=True)
    try:
        show("RSS sample of a 3-process tree (descendants + statm)",
             runs(lambda: sum(rss(p) for p in descendants(child.pid)), 2000))
    finally:
        os.killpg(child.pid, 9)
        child.wait()

    from herder.process import rlimits

    def spawn(pre: bool) -> None:
        kw = {"preexec_fn": rlimits.preexec([(rlimits.NAMES["nofile"], 1024)], [], None)} if pre else {}
        p = subprocess.Popen(["/bin/true"], close_fds=True, **kw)  # type: ignore[call-overload]
        p.wait()

    show("spawn+wait /bin/true, vfork", runs(lambda: spawn(False), 100), 1e-3, "ms")
    show("spawn+wait /bin/true, preexec (limits)", runs(lambda: spawn(True), 100), 1e-3, "ms")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, shared with other test runs")


if __name__ == "__main__":
    main()
