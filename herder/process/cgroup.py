"""One cgroup per instance, so a stop reaches every process the instance ever started.

A process that calls setsid() leaves its process group, and one whose parent died is
re-parented; neither can leave its cgroup. herder uses the cgroup v2 hierarchy (on a
hybrid host such as Debian with v1 controllers, the one mounted at
/sys/fs/cgroup/unified) and creates `herder-<hash of state_dir>/<instance>` below its own
cgroup. Children are born inside their cgroup: the spawner moves herder into the
instance's cgroup just around the fork, so there is no window in which a fast child could
fork before being placed. Killing uses `cgroup.kill` (Linux ≥ 5.14), else freeze, SIGKILL
every member, thaw. Where no cgroup can be made (not root, no cgroup2), `Cgroups.detect`
returns None and the caller falls back to process group + descendants.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from herder.process import tree
from herder.store.statedir import state_tag


def _cgroup2_mount() -> Path | None:
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return Path(left.split()[4])
    except OSError:
        return None
    return None


def _own_cgroup() -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        return None
    return None


class Cgroup:
    """One instance's cgroup directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def procs(self) -> list[int]:
        try:
            return [int(x) for x in tree.read_small(f"{self.path}/cgroup.procs").split()]
        except (OSError, ValueError):
            return []

    def enter(self, pid: int = 0) -> None:
        tree.write_small(f"{self.path}/cgroup.procs", str(pid))

    def kill(self) -> int:
        """SIGKILL every member; returns how many there were."""
        members = self.procs()
        if not members:
            return 0
        try:
            tree.write_small(f"{self.path}/cgroup.kill", "1")
            return len(members)
        except OSError:
            pass
        freeze = self.path / "cgroup.freeze"
        with contextlib.suppress(OSError):
            freeze.write_text("1")
        for pid in self.procs():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            freeze.write_text("0")
        return len(members)

    def signal(self, signum: int) -> int:
        n = 0
        for pid in self.procs():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
                n += 1
        return n

    def remove(self) -> bool:
        try:
            self.path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            return False


class Cgroups:
    """The herder-owned subtree of cgroups for one state_dir."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root      # herder-<hash>
        self.home = home      # herder's own cgroup, to move back to after a spawn

    @staticmethod
    def root_for(state_dir: Path) -> tuple[Path, Path] | None:
        """(herder's own cgroup, the herder-<tag> subtree of state_dir below it), or None
        without cgroup2; nothing is created."""
        mount, own = _cgroup2_mount(), _own_cgroup()
        if mount is None or own is None:
            return None
        home = mount / own.lstrip("/")
        return home, home / f"herder-{state_tag(state_dir)}"

    @classmethod
    def detect(cls, state_dir: Path) -> Cgroups | None:
        found = cls.root_for(state_dir)
        if found is None:
            return None
        home, root = found
        try:
            root.mkdir(exist_ok=True)
            probe = Cgroup(root)
            probe.procs()
            if not os.access(home / "cgroup.procs", os.W_OK):
                return None
        except OSError:
            return None
        return cls(root, home)

    def for_instance(self, name: str) -> Cgroup:
        path = self.root / name
        path.mkdir(exist_ok=True)
        return Cgroup(path)

    @staticmethod
    def adopt(cg: Cgroup, pid: int) -> None:
        """Place pid and any children it has already forked (recursively) into cg."""
        todo = [pid]
        while todo:
            p = todo.pop()
            with contextlib.suppress(OSError):
                cg.enter(p)
                todo.extend(tree.children(p))

    def instances(self) -> list[Cgroup]:
        try:
            return [Cgroup(p) for p in self.root.iterdir() if p.is_dir()]
        except OSError:
            return []

    def remove_root(self) -> None:
        with contextlib.suppress(OSError):
            self.root.rmdir()


def instance_cgroup(recorded: str | None, root: Path | None) -> Path | None:
    """A cgroup path read from a state file, if it is one herder made: exactly one level
    below herder's own subtree for this state_dir (`root`). Pure path logic: a forged
    path (another cgroup, `..` tricks) names nothing herder will signal."""
    if not recorded or root is None or not os.path.isabs(recorded):
        return None
    path = Path(os.path.normpath(recorded))
    return path if path.parent == Path(os.path.normpath(root)) and path.name not in ("", ".", "..") else None
