"""Resource limits applied in the child between fork and exec.

Why a preexec function, and only when a service sets limits: the program must see its
limits from its first instruction (servers size their fd tables from RLIMIT_NOFILE at
start-up), so `prlimit` on the pid after spawn would race the exec; a wrapper program
(`prlimit --nofile … -- cmd`) costs an extra exec, may be missing, and runs after the
account switch so it cannot raise a hard limit. A preexec function makes Popen fork
instead of vfork for these spawns only (still ~1 ms with herder's small heap); every
other spawn keeps vfork. The account switch (setgroups/setgid/setuid) is done here too,
after the limits, so a service running as `www-data` may get a hard limit above
herder's own when herder runs as root. The same function joins the cgroup v1 hierarchies
that carry limits.memory and limits.cpu, so even the first allocation is charged.
Only async-signal-tolerant calls run in the child: setrlimit, write(2) to cgroup files,
setgroups/setgid/setuid.

herder's own open-file limit (`raise_nofile`): at start herder raises its soft
RLIMIT_NOFILE to the hard limit, as supervisord's minfds and systemd do for themselves,
so that clients holding connections, pipes and log files never leave it without the fds
a restart needs. Children keep the soft limit herder was started with (systemd keeps
1024 for its services: select() and fd-table sizing expect it): herder lowers its own
soft limit for the instant of each vfork (`children_nofile`), which costs two syscalls
and keeps vfork. Should every fd below that limit be in use at that instant, the spawn
goes ahead with the raised limit rather than fail.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Iterator, Sequence

if sys.platform == "win32":   # importable there (the config names it); rlimits exist on POSIX only
    NAMES: dict[str, int] = {}
else:
    import resource

    NAMES = {"nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC, "core": resource.RLIMIT_CORE}


def from_spec(limits: object) -> tuple[tuple[int, int], ...]:
    """(resource, value) pairs for the rlimits a Limits table sets."""
    return tuple((res, getattr(limits, key)) for key, res in NAMES.items() if getattr(limits, key, None) is not None)


_CAP_SYS_RESOURCE = 24


def may_raise_hard_limits() -> bool:
    """CAP_SYS_RESOURCE in herder's effective set (root in a container may lack it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_SYS_RESOURCE & 1)
    except (OSError, ValueError):
        pass
    return False


def problem(rlimits: Sequence[tuple[int, int]]) -> str | None:
    """Why these limits cannot be set in the child, checked in the parent: the child's own
    error would only say "Exception occurred in preexec_fn"."""
    names = {v: k for k, v in NAMES.items()}
    for res, value in rlimits:
        hard = resource.getrlimit(res)[1]
        above = hard != resource.RLIM_INFINITY and (value == resource.RLIM_INFINITY or value > hard)
        if above and not may_raise_hard_limits():
            shown = "unlimited" if value == resource.RLIM_INFINITY else str(value)
            return (f"limits.{names.get(res, res)} = {shown} is above herder's own hard limit {hard}, and herder may "
                    f"not raise it (needs root with CAP_SYS_RESOURCE); expected at most {hard}")
    return None


def preexec(rlimits: Sequence[tuple[int, int]], cgroup_files: Sequence[str],
            account: tuple[int, int, list[int]] | None) -> Callable[[], None]:
    """The function Popen runs in the child; `account` = (uid, gid, groups) to switch to."""
    payload = b"0"

    def child() -> None:
        for path in cgroup_files:   # "0" = the writing process
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, payload)
            finally:
                os.close(fd)
        for res, value in rlimits:
            resource.setrlimit(res, (value, value))
        if account is not None:
            uid, gid, groups = account
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)

    return child


_children_soft: int | None = None   # the soft RLIMIT_NOFILE children get (herder's own at start)


def raise_nofile() -> tuple[int, int]:
    """Raise herder's soft RLIMIT_NOFILE to its hard limit; (before, after)."""
    global _children_soft
    if sys.platform == "win32":
        return 0, 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:   # the kernel's ceiling, not "infinity" (setrlimit refuses that)
        try:
            with open("/proc/sys/fs/nr_open") as f:
                target = int(f.read())
        except (OSError, ValueError):
            target = soft
    if _children_soft is None:
        _children_soft = soft
    if target > soft:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@contextlib.contextmanager
def children_nofile() -> Iterator[None]:
    """Around a spawn: the child inherits the soft open-file limit herder started with."""
    if _children_soft is None or sys.platform == "win32":
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _children_soft >= soft:
        yield
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (_children_soft, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def is_fd_exhaustion(e: OSError) -> bool:
    return e.errno in (errno.EMFILE, errno.ENFILE)
