"""limits.memory and limits.cpu as cgroup limits, and telling an OOM kill from other deaths.

Detected, not assumed: on a pure cgroup v2 host the memory and cpu controllers are
enabled in herder's subtree and each instance's own cgroup (herder.process.cgroup) gets
memory.max / cpu.max. On a hybrid host (Debian with systemd in hybrid mode, containers)
the v2 tree usually has no controllers, so herder makes
`<v1 mount>/<herder's own v1 cgroup>/herder-<tag>/<instance>` in the v1 `memory` and `cpu`
hierarchies and the child joins them before exec (herder.process.rlimits). Where neither
works the limit is not enforced and the supervisor says so once per instance (an event),
rather than starting a service with a limit silently missing.

OOM: the kernel counts OOM kills per memory cgroup (v2 memory.events `oom_kill`, v1
memory.oom_control `oom_kill`); herder reads the count at spawn and at the main
process's exit, and an increase makes the exit's reason `oom`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from herder.config.model import Limits
from herder.store.statedir import state_tag

CFS_PERIOD = 100_000


def _v1_mounts() -> dict[str, tuple[Path, str]]:
    """controller -> (mount point, root of the mount inside the hierarchy)."""
    out: dict[str, tuple[Path, str]] = {}
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fstype, _, super_opts = right.split(" ")[0], None, right.split(" ")[-1].strip()
                if fstype != "cgroup":
                    continue
                fields = left.split()
                for ctl in super_opts.split(","):
                    if ctl in ("memory", "cpu"):
                        out[ctl] = (Path(fields[4]), fields[3])
    except OSError:
        pass
    return out


def _own_v1(controller: str) -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctls, path = line.rstrip("\n").split(":", 2)
                if controller in ctls.split(","):
                    return path
    except (OSError, ValueError):
        pass
    return None


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def _read_key(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class Placement:
    """Where one instance's limits live: cgroup directories and the cgroup.procs to join."""

    join: list[str] = field(default_factory=list)
    memory_dir: Path | None = None
    memory_v2: bool = False
    missing: list[str] = field(default_factory=list)   # limits that could not be enforced

    def oom_kills(self) -> int:
        if self.memory_dir is None:
            return 0
        if self.memory_v2:
            return _read_key(self.memory_dir / "memory.events", "oom_kill")
        return _read_key(self.memory_dir / "memory.oom_control", "oom_kill")


class LimitCgroups:
    """Makes and removes the per-instance limit cgroups of one supervisor."""

    def __init__(self, state_dir: Path) -> None:
        self.tag = "herder-" + state_tag(state_dir)
        self.made: list[Path] = []
        self._v1 = _v1_mounts()

    def _v1_dir(self, controller: str, instance: str) -> Path | None:
        mount = self._v1.get(controller)
        own = _own_v1(controller)
        if mount is None or own is None:
            return None
        point, root = mount
        rel = own[len(root):] if root != "/" and own.startswith(root) else own
        base = point / rel.lstrip("/") / self.tag
        try:
            base.mkdir(exist_ok=True)
            if base not in self.made:
                self.made.append(base)
            path = base / instance
            path.mkdir(exist_ok=True)
            if path not in self.made:
                self.made.insert(0, path)
            return path
        except OSError:
            return None

    @staticmethod
    def _v2_enable(cg_dir: Path, controllers: list[str]) -> bool:
        """Enable controllers for cg_dir in its parent (herder's root); True when available."""
        parent = cg_dir.parent
        try:
            have = (cg_dir / "cgroup.controllers").read_text().split()
        except OSError:
            return False
        if all(c in have for c in controllers):
            return True
        for c in controllers:
            _write(parent / "cgroup.subtree_control", f"+{c}")
        try:
            have = (cg_dir / "cgroup.controllers").read_text().split()
        except OSError:
            return False
        return all(c in have for c in controllers)

    def place(self, instance: str, limits: Limits, v2_dir: Path | None) -> Placement:
        """Set the limits for the next spawn of `instance`; v2_dir is its v2 cgroup, if any."""
        out = Placement()
        wanted = [c for c, v in (("memory", limits.memory), ("cpu", limits.cpu)) if v is not None]
        if not wanted:
            return out
        if v2_dir is not None and self._v2_enable(v2_dir, wanted):
            if limits.memory is not None:
                _write(v2_dir / "memory.max", str(limits.memory))
                _write(v2_dir / "memory.swap.max", "0")
                out.memory_dir, out.memory_v2 = v2_dir, True
            if limits.cpu is not None:
                _write(v2_dir / "cpu.max", f"{int(limits.cpu * CFS_PERIOD)} {CFS_PERIOD}")
            out.join.append(str(v2_dir / "cgroup.procs"))   # born inside: limited from the first byte
            return out
        if limits.memory is not None:
            d = self._v1_dir("memory", instance)
            if d is not None and _write(d / "memory.limit_in_bytes", str(limits.memory)):
                _write(d / "memory.memsw.limit_in_bytes", str(limits.memory))  # no swap past the limit, where accounted
                out.memory_dir = d
                out.join.append(str(d / "cgroup.procs"))
            else:
                out.missing.append("memory")
        if limits.cpu is not None:
            d = self._v1_dir("cpu", instance)
            if d is not None and _write(d / "cpu.cfs_period_us", str(CFS_PERIOD)) \
                    and _write(d / "cpu.cfs_quota_us", str(int(limits.cpu * CFS_PERIOD))):
                out.join.append(str(d / "cgroup.procs"))
            else:
                out.missing.append("cpu")
        return out

    def remove(self) -> None:
        for path in self.made:   # instances first, then the herder-<tag> directories
            with contextlib.suppress(OSError):
                path.rmdir()
        self.made.clear()
