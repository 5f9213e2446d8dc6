"""Process bookkeeping for the benchmark: every process it causes is tracked and ended by pid.

The benchmark starts four supervisors, each of which starts hundreds of children (and a
daemon, for PM2). A failed or interrupted run must leave none of them behind, so every pid
we learn of (launchers, daemons, the children's own stamps, orphans) is recorded as a
psutil.Process, whose create time guards against pid reuse, and `Tracker.kill_all` ends
whatever is still alive. Every wait here is bounded in time.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil


def alive(pid: int) -> bool:
    """True if pid exists and is not a zombie (PID 1 here does not reap orphans)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.001) -> bool:
    """Poll pred until true or timeout; returns the last value. Bounded by time."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stamps(path: Path) -> list[tuple[int, int]]:
    """The "pid monotonic_ns" lines a stamp/flood child appended to path."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out.append((int(parts[0]), int(parts[1])))
    return out


def wait_stamps(path: Path, n: int, timeout: float) -> list[tuple[int, int]] | None:
    """The first n or more stamps, or None if fewer arrived within timeout."""
    got: list[tuple[int, int]] = []

    def enough() -> bool:
        nonlocal got
        got = stamps(path)
        return len(got) >= n

    return got if wait_until(enough, timeout, 0.0005) else None


def tree(pids: Iterable[int]) -> list[psutil.Process]:
    """The processes and all their descendants that still exist."""
    out: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            p = psutil.Process(pid)
            out[pid] = p
            for c in p.children(recursive=True):
                out[c.pid] = c
        except psutil.Error:
            continue
    return list(out.values())


class Tracker:
    """Every process the benchmark is responsible for; `kill_all` ends the live ones by pid."""

    def __init__(self) -> None:
        self.procs: dict[tuple[int, float], psutil.Process] = {}

    def add(self, pid: int, names: tuple[str, ...] = ()) -> None:
        """Track pid (only if its name is one of names, when given: guards against reuse)."""
        try:
            p = psutil.Process(pid)
            if names and p.name() not in names:
                return
            self.procs[(pid, p.create_time())] = p
        except psutil.Error:
            return

    def add_tree(self, pids: Iterable[int]) -> None:
        for p in tree(pids):
            try:
                self.procs[(p.pid, p.create_time())] = p
            except psutil.Error:
                continue

    def kill_all(self) -> list[int]:
        """SIGKILL every tracked process still alive; returns their pids. Bounded (5 s)."""
        killed = []
        for p in list(self.procs.values()):
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    p.send_signal(signal.SIGKILL)
                    killed.append(p.pid)
            except psutil.Error:
                continue
        wait_until(lambda: not any(alive(pid) for pid in killed), 5.0, 0.01)
        self.procs = {k: p for k, p in self.procs.items() if alive(p.pid)}
        return killed


def sync() -> None:
    """Flush dirty pages before a log measurement, so one run's writeback doesn't tax the next."""
    os.sync()


def memory(procs: Iterable[psutil.Process]) -> dict[str, int]:
    """Sum of RSS, PSS and USS (bytes) over processes. PSS is the fair total for a tool made of
    many small processes (s6, runit: one supervisor per service): shared pages count once."""
    tot = {"rss": 0, "pss": 0, "uss": 0}
    for p in procs:
        try:
            mi = p.memory_full_info()
        except psutil.Error:
            continue
        tot["rss"] += mi.rss
        tot["pss"] += mi.pss
        tot["uss"] += mi.uss
    return tot


def cpu_seconds(procs: Iterable[psutil.Process]) -> dict[int, float]:
    """user + system CPU seconds so far, per pid (processes that vanished are left out)."""
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            continue
    return out
