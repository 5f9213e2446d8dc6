"""CPU and memory of each instance's whole process tree, sampled only when someone asks.

Why on request and not on a timer: a periodic sampler would cost CPU while nothing is
looked at, and herder's idle CPU must stay 0. `herder status`, `GET /metrics` and `herder
top` ask; each request costs one read of the cgroup files of each instance (or, where herder
has no cgroups, one pass over /proc that builds the parent → children map, shared by every
instance of the same request).

The figures (docs/cli.md):

- `rss`: the sum of the resident set sizes of the tree's live processes, in bytes (shared
  pages count once per process, as `ps` and `pm2 ls` count them).
- `cpu`: percent of one core used by the tree over the window since the previous sample of
  that instance, like pidusage (pm2) does; the first sample of a run is the average since
  its process started. With a cgroup the window uses `cpu.stat`'s usage_usec, which keeps the
  CPU of children that already exited; without one, the live processes' utime + stime.
- `procs`: how many processes the tree has.

The tree is the instance's cgroup when it has one, else the main process and its
descendants (a process that called setsid() and was re-parented to herder is then missed;
the cgroup catches it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MIN_WINDOW = 0.5     # a sample younger than this is reused, so two quick clients do not see a 5 ms window
SCAN_TTL = 0.2       # one /proc pass serves every instance of one request


def _boot_time() -> float:
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


class ProcStat:
    """What /proc/PID/stat says about one process."""

    __slots__ = ("cpu", "ppid", "rss", "start")

    def __init__(self, ppid: int, cpu: float, rss: int, start: float) -> None:
        self.ppid, self.cpu, self.rss, self.start = ppid, cpu, rss, start


def _read(path: str) -> bytes:
    """One small kernel file in one read: os.open/os.read, no Python file object (a status
    request of 200 instances reads 600 of these; buffered open() made that 5x slower)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def read_stat(pid: int) -> ProcStat | None:
    """(ppid, CPU seconds, RSS bytes, start in ticks since boot) of pid, or None when it is gone."""
    try:
        data = _read(f"/proc/{pid}/stat")
        rest = data[data.rindex(b")") + 2:].split()
        # fields from 3 (state) on: ppid=4, utime=14, stime=15, starttime=22, rss=24
        return ProcStat(int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK, int(rest[21]) * _PAGE,
                        int(rest[19]) / _TICK)
    except (OSError, ValueError, IndexError):
        return None


def _cgroup_usage(path: str) -> float | None:
    """CPU seconds of every process that ever ran in the cgroup (cpu.stat usage_usec, its first line)."""
    try:
        data = _read(path + "/cpu.stat")
        for line in data.split(b"\n", 1) if data.startswith(b"usage_usec ") else data.splitlines():
            if line.startswith(b"usage_usec "):
                return int(line[11:]) / 1e6
    except (OSError, ValueError):
        return None
    return None


def _cgroup_procs(path: str) -> list[int]:
    try:
        return [int(x) for x in _read(path + "/cgroup.procs").split()]
    except (OSError, ValueError):
        return []


class Sampler:
    """Per-instance usage with the previous sample kept for the CPU window (one per supervisor)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last: dict[str, tuple[int, float, float, float | None]] = {}  # name -> (pid, t, cpu s, last %)
        self._scan: tuple[float, dict[int, ProcStat], dict[int, list[int]]] | None = None
        self._boot = _boot_time()

    def _table(self) -> tuple[dict[int, ProcStat], dict[int, list[int]]]:
        now = self.clock()
        if self._scan is None or now - self._scan[0] > SCAN_TTL:
            stats: dict[int, ProcStat] = {}
            children: dict[int, list[int]] = {}
            try:
                entries = os.listdir("/proc")
            except OSError:
                entries = []
            for e in entries:
                if e.isdigit():
                    st = read_stat(int(e))
                    if st is not None:
                        stats[int(e)] = st
                        children.setdefault(st.ppid, []).append(int(e))
            self._scan = (now, stats, children)
        return self._scan[1], self._scan[2]

    def _tree(self, pid: int) -> list[tuple[int, ProcStat]]:
        stats, children = self._table()
        out, todo, seen = [], [pid], set()
        while todo:
            p = todo.pop()
            if p in seen or p not in stats:
                continue
            seen.add(p)
            out.append((p, stats[p]))
            todo.extend(children.get(p, ()))
        return out

    def sample(self, name: str, pid: int | None, cgroup: str | None = None) -> dict[str, Any]:
        """{"cpu": percent | None, "rss": bytes | None, "procs": n} for one instance."""
        if pid is None:
            self._last.pop(name, None)
            return {"cpu": None, "rss": None, "procs": 0}
        if cgroup:
            members = [(p, st) for p in _cgroup_procs(cgroup) if (st := read_stat(p)) is not None]
            used = _cgroup_usage(cgroup)
        else:
            members, used = self._tree(pid), None
        if not members:
            return {"cpu": None, "rss": None, "procs": 0}
        live_cpu = sum(st.cpu for _, st in members)
        total = used if used is not None else live_cpu
        now = self.clock()
        prev = self._last.get(name)
        if prev is not None and prev[0] == pid and now - prev[1] < MIN_WINDOW:
            pct = prev[3]
        elif prev is not None and prev[0] == pid:
            pct = max(0.0, (total - prev[2]) / (now - prev[1]) * 100)
            self._last[name] = (pid, now, total, pct)
        else:
            main = next((st for p, st in members if p == pid), members[0][1])
            age = time.time() - (self._boot + main.start) if self._boot else 0.0
            pct = live_cpu / age * 100 if age > 0.05 else None
            self._last[name] = (pid, now, total, pct)
        return {"cpu": None if pct is None else round(pct, 1), "rss": sum(st.rss for _, st in members),
                "procs": len(members), "cpu_seconds": round(total, 3)}

    def forget(self, name: str) -> None:
        """Drop the previous sample of an instance a reload removed."""
        self._last.pop(name, None)


def attach(sup: Any) -> Sampler:
    """Add `cpu`, `rss` and `procs` to every status record of `sup` (Hooks.status); the
    sampler is kept as `sup.usage` for /metrics and `herder top`."""
    sampler = Sampler()

    def status(inst: Any) -> dict[str, Any]:
        proc = sup.procs.get(inst.name)
        cg = proc.cgroup if proc is not None else None
        return sampler.sample(inst.name, inst.pid, str(cg.path) if cg is not None else None)

    sup.hooks.status.append(status)
    sup.hooks.removed.append(lambda inst: sampler.forget(inst.name))
    sup.usage = sampler
    return sampler
