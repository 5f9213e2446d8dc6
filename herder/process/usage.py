"""CPU and memory of each instance's whole process tree, sampled only when someone asks.

Why on request and not on a timer: a periodic sampler would cost CPU while nothing is
looked at, and herder's idle CPU must stay 0. `herder status`, `GET /metrics` and `herder
top` ask; each request reads, per running instance, its members' /proc/PID/stat and, with a
cgroup, the cgroup's cpu.stat.

The tree is the supervisor's own definition (herder.runtime.processes.Processes.tree_pids,
the one `kill = "tree"` and max_memory_restart use): the instance's cgroup members when it
has a cgroup, else the main process and its descendants.

The figures (docs/cli.md):

- `rss`: the sum of the resident set sizes of the tree's live processes, in bytes (shared
  pages count once per process, as `ps` and `pm2 ls` count them).
- `cpu`: percent of one core used by the tree over the window since the previous sample of
  that instance, like pidusage (pm2) does; the first sample of a run is the average since
  its main process started. With a cgroup the window uses `cpu.stat`'s usage_usec, which
  keeps the CPU of children that already exited; without one, the live processes'
  utime + stime.
- `procs`: how many processes the tree has; `cpu_seconds`: the CPU time behind `cpu`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from herder.process.tree import read_small

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MIN_WINDOW = 0.5     # a sample younger than this is reused, so two quick clients do not see a 5 ms window
NOTHING: dict[str, Any] = {"cpu": None, "rss": None, "procs": 0}


def _boot_time() -> float:
    try:
        for line in read_small("/proc/stat").splitlines():
            if line.startswith(b"btime "):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


class ProcStat:
    """What /proc/PID/stat says about one process: CPU seconds, RSS bytes, start (s since boot)."""

    __slots__ = ("cpu", "rss", "start")

    def __init__(self, cpu: float, rss: int, start: float) -> None:
        self.cpu, self.rss, self.start = cpu, rss, start


def _raw_stat(pid: int) -> tuple[int, int, int] | None:
    """pid's CPU clock ticks (utime + stime), resident pages and start tick, or None when it is gone."""
    try:
        data = read_small(f"/proc/{pid}/stat")
        rest = data[data.rindex(b")") + 2:].split()
        # fields from 3 (state) on: utime=14, stime=15, starttime=22, rss=24
        return int(rest[11]) + int(rest[12]), int(rest[21]), int(rest[19])
    except (OSError, ValueError, IndexError):
        return None


def read_stat(pid: int) -> ProcStat | None:
    """pid's CPU time, RSS and start time, or None when it is gone."""
    raw = _raw_stat(pid)
    return None if raw is None else ProcStat(raw[0] / _TICK, raw[1] * _PAGE, raw[2] / _TICK)


def cgroup_cpu(path: str) -> float | None:
    """CPU seconds of every process that ever ran in the cgroup (cpu.stat usage_usec)."""
    try:
        data = read_small(path + "/cpu.stat")
        for line in data.split(b"\n", 1) if data.startswith(b"usage_usec ") else data.splitlines():
            if line.startswith(b"usage_usec "):
                return int(line[11:]) / 1e6
    except (OSError, ValueError):
        return None
    return None


class Sampler:
    """Per-instance usage with the previous sample kept for the CPU window (one per supervisor)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last: dict[str, tuple[int, float, float, float | None]] = {}  # name -> (pid, t, cpu s, last %)
        self._boot = _boot_time()

    def sample(self, name: str, pid: int | None, members: Iterable[int], cgroup: str | None = None) -> dict[str, Any]:
        """{"cpu": percent | None, "rss": bytes | None, "procs": n, "cpu_seconds": s} of one
        instance whose main process is `pid` and whose tree is `members`."""
        if pid is None:
            self._last.pop(name, None)
            return dict(NOTHING)
        # one pass, no object per process: a status of 200 instances runs this 200 times
        ticks = pages = procs = 0
        first: int | None = None    # start tick of the first process read
        main: int | None = None     # and of the main process
        for p in members:
            raw = _raw_stat(p)
            if raw is None:
                continue
            ticks += raw[0]
            pages += raw[1]
            procs += 1
            if first is None:
                first = raw[2]
            if p == pid:
                main = raw[2]
        if not procs:
            return dict(NOTHING)
        live = ticks / _TICK
        used = cgroup_cpu(cgroup) if cgroup else None
        total = live if used is None else used
        now = self.clock()
        prev = self._last.get(name)
        if prev is not None and prev[0] == pid and now - prev[1] < MIN_WINDOW:
            pct = prev[3]
        elif prev is not None and prev[0] == pid:
            pct = max(0.0, (total - prev[2]) / (now - prev[1]) * 100)
            self._last[name] = (pid, now, total, pct)
        else:   # the first sample of this run: the average since the main process started
            started = (main if main is not None else first or 0) / _TICK
            age = time.time() - (self._boot + started) if self._boot else 0.0
            pct = live / age * 100 if age > 0.05 else None
            self._last[name] = (pid, now, total, pct)
        return {"cpu": None if pct is None else round(pct, 1), "rss": pages * _PAGE,
                "procs": procs, "cpu_seconds": round(total, 3)}

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the previous samples of instances that no longer exist (a reload removed them)."""
        keep = set(keep)
        for name in [n for n in self._last if n not in keep]:
            del self._last[name]


def attach(sup: Any) -> Sampler:
    """Add `cpu`, `rss`, `procs` and `cpu_seconds` to every status record of `sup` (its
    status_fields); the sampler is kept as `sup.usage` for /metrics."""
    sampler = Sampler()

    def fields(inst: Any) -> dict[str, Any]:
        if len(sampler._last) > len(sup.instances):
            sampler.forget(sup.instances)
        return of(sup, sampler, inst.name, inst.pid)

    sup.status_fields.append(fields)
    sup.usage = sampler
    return sampler


def of(sup: Any, sampler: Sampler, name: str, pid: int | None) -> dict[str, Any]:
    """One instance's figures, with the supervisor's tree and cgroup of it."""
    if pid is None:
        return sampler.sample(name, None, ())
    proc = sup.procs.procs.get(name)
    cgroup = proc.cgroup if proc is not None else None
    return sampler.sample(name, pid, sup.procs.tree_pids(name), str(cgroup.path) if cgroup is not None else None)
