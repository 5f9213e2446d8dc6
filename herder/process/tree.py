"""Walking process trees: the one place that reads /proc for parents, children and cookies.

Used for `kill = "tree"` without a cgroup (the process group, the main process's
descendants, and any process whose environment carries the instance's cookie
HERDER_INSTANCE_ID, which catches children that called setsid() and were re-parented
after their parent died), for the RSS of an instance's tree (max_memory_restart), for
placing a fresh child's early forks into its cgroup, and for telling which instance an
sd_notify sender belongs to (ancestry, cookie).

Children come from /proc/PID/task/TID/children (Linux ≥ 3.5 with CONFIG_PROC_CHILDREN,
every distribution kernel): no scan of all of /proc. Only `members` scans (psutil,
imported lazily) for the group and cookie, and only stops pay for it.

The same two facts prove ownership of a process a previous herder left (herder.store.
runstate): its start time (a recycled pid has another) and its cookie, which only herder
put in an environment — /proc/PID/environ is the one written at exec and only the
process's own user and root can read it, so another user cannot forge it for a process
that is not theirs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

#: The kill signal; Windows has no SIGKILL (os.kill with any other number there is TerminateProcess).
SIGKILL: int = 9 if sys.platform == "win32" else signal.SIGKILL

_SCAN_LIMIT = 10_000
COOKIE = b"HERDER_INSTANCE_ID="
INSTANCE = b"HERDER_INSTANCE="


def reaped() -> Iterator[tuple[int, int]]:
    """Every child of this process that has exited, reaped as it is asked for: (pid, exit
    code as os.waitstatus_to_exitcode gives it). Ends when none is left to reap now."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, os.waitstatus_to_exitcode(status)


def read_small(path: str) -> bytes:
    """A small kernel file (/proc, /sys/fs/cgroup) whole: os.open, os.read until the end,
    close: 4 system calls, where a Python file object costs 7 (fstat, ioctl, lseek …) and
    ~5x the time. A status request of 200 instances reads 600 of these, a spawn several.
    (A kernel file may hand out about a page per read, so one read is not always all.)"""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 65536)
        if data:
            parts = [data]
            while chunk := os.read(fd, 65536):
                parts.append(chunk)
            data = b"".join(parts) if len(parts) > 1 else data
        return data
    finally:
        os.close(fd)


def write_small(path: str, text: str) -> None:
    """One write to a kernel file (cgroup.procs, cgroup.kill), 3 system calls; OSError as
    the kernel says (ESRCH, EBUSY …)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    try:
        data = read_small(f"/proc/{pid}/stat")
        return data[data.rindex(b")") + 2:].split()
    except (OSError, ValueError):
        return None


def ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    try:
        return int(fields[1]) if fields else None
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """Start time of pid in clock ticks since boot (/proc/PID/stat field 22), or None."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def started_since(pid: int, monotonic_at: float, slack: float = 2.0) -> bool:
    """Whether pid started no earlier than `monotonic_at` (time.monotonic(), minus `slack`).

    /proc's start time counts from boot (with suspended time, on current kernels), the
    monotonic clock without it: a process is never judged older than it is, so this only
    ever errs towards "recent"."""
    st = start_time(pid)
    if st is None:
        return False
    try:
        hz = os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        hz = 100
    return st / hz >= monotonic_at - slack


def children(pid: int) -> list[int]:
    """pid's children, from every thread's children file."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            out.extend(int(c) for c in read_small(f"/proc/{pid}/task/{tid}/children").split())
        except (OSError, ValueError):
            continue
    return out


def descendants(pid: int, limit: int = _SCAN_LIMIT) -> set[int]:
    """pid and its descendants."""
    found, todo = {pid}, [pid]
    while todo and len(found) < limit:
        for kid in children(todo.pop()):
            if kid not in found:
                found.add(kid)
                todo.append(kid)
    return found


def ancestors(pid: int, limit: int = 64) -> list[int]:
    """pid's parent, grandparent … up to (not including) pid 1 or herder itself."""
    out, cur, me = [], pid, os.getpid()
    for _ in range(limit):
        cur = ppid(cur) or 0
        if cur <= 1 or cur == me:
            break
        out.append(cur)
    return out


def _environ(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f.read(1 << 20).split(b"\0")


def _env_value(pid: int, prefix: bytes) -> str | None:
    try:
        env = _environ(pid)
    except OSError:
        return None
    for item in env:
        if item.startswith(prefix):
            return item[len(prefix):].decode(errors="replace")
    return None


def cookie(pid: int) -> str | None:
    """The HERDER_INSTANCE_ID in pid's environment (as exec'd), or None (none, gone, unreadable)."""
    return _env_value(pid, COOKIE)


def hook(pid: int) -> str | None:
    """The HERDER_HOOK in pid's environment (a hook herder ran: herder.runtime.hooks), or None."""
    return _env_value(pid, b"HERDER_HOOK=")


def with_cookie_prefix(prefix: str) -> dict[int, tuple[str, str]]:
    """Every process whose cookie starts with `prefix`: pid -> (its HERDER_INSTANCE, its cookie).

    A start-up scan (herder.store.runstate): what the system says is left of a previous
    herder on the same state_dir when its run.json cannot be trusted."""
    found: dict[int, tuple[str, str]] = {}
    me = os.getpid()
    want = COOKIE + prefix.encode()
    try:
        pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if pid == me:
            continue
        try:
            env = _environ(pid)
        except OSError:
            continue
        held = next((e for e in env if e.startswith(want)), None)
        if held is None:
            continue
        name = next((e[len(INSTANCE):] for e in env if e.startswith(INSTANCE)), b"?")
        found[pid] = (name.decode(errors="replace"), held[len(COOKIE):].decode(errors="replace"))
    return found


def members(pid: int | None, pgid: int | None, cookie_: str) -> set[int]:
    """Every process of an instance without a cgroup: descendants, group, cookie holders."""
    import psutil

    found: set[int] = descendants(pid) if pid is not None and start_time(pid) is not None else set()
    me = os.getpid()
    for p in psutil.process_iter():
        if p.pid == me or p.pid in found:
            continue
        try:
            if pgid is not None and os.getpgid(p.pid) == pgid:
                found.add(p.pid)
                continue
            if cookie(p.pid) == cookie_:
                found.add(p.pid)
        except (OSError, psutil.Error):
            continue
    return found


def kill_all(pids: set[int], signum: int = SIGKILL) -> int:
    """Send signum to each pid; how many were reached."""
    n = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
            n += 1
    return n


def rss(pid: int) -> int:
    """Resident set size of one process in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def stop_all(pids: set[int], timeout: float) -> int:
    """SIGTERM every pid, wait up to timeout for them to end, SIGKILL the rest; how many there were.

    Only for processes already proven herder's (see herder.store.runstate.leftovers)."""
    import psutil

    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, left = psutil.wait_procs(procs, timeout=timeout)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(left, timeout=5)
    return len(procs)


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
