"""Finding an instance's processes when no cgroup holds them, and proving they are herder's.

The fallback for `kill = "tree"` without a cgroup: the process group, the main process's
descendants (psutil), and any process whose environment carries the instance's cookie
(HERDER_INSTANCE_ID), which catches children that called setsid() and were re-parented
after their parent died. psutil is imported lazily: only stops pay for it.

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

#: The kill signal; Windows has no SIGKILL (os.kill with any other number there is TerminateProcess).
SIGKILL: int = 9 if sys.platform == "win32" else signal.SIGKILL

COOKIE = b"HERDER_INSTANCE_ID="
INSTANCE = b"HERDER_INSTANCE="


def members(pid: int | None, pgid: int | None, cookie: str) -> set[int]:
    import psutil

    found: set[int] = set()
    if pid is not None:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            found.add(pid)
            found.update(c.pid for c in p.children(recursive=True))
    needle = COOKIE + cookie.encode()
    me = os.getpid()
    for p in psutil.process_iter():
        if p.pid == me or p.pid in found:
            continue
        try:
            if pgid is not None and os.getpgid(p.pid) == pgid:
                found.add(p.pid)
                continue
            if needle in _environ(p.pid):
                found.add(p.pid)
        except (OSError, psutil.Error):
            continue
    return found


def kill_all(pids: set[int], signum: int = SIGKILL) -> int:
    n = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
            n += 1
    return n


def start_time(pid: int) -> int | None:
    """Start time of pid in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[19])


def _environ(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f.read(1 << 20).split(b"\0")


def cookie_of(pid: int) -> str | None:
    """The HERDER_INSTANCE_ID in pid's environment (as exec'd), or None (none, gone, unreadable)."""
    try:
        env = _environ(pid)
    except OSError:
        return None
    for item in env:
        if item.startswith(COOKIE):
            return item[len(COOKIE):].decode(errors="replace")
    return None


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
        cookie = next((e for e in env if e.startswith(want)), None)
        if cookie is None:
            continue
        name = next((e[len(INSTANCE):] for e in env if e.startswith(INSTANCE)), b"?")
        found[pid] = (name.decode(errors="replace"), cookie[len(COOKIE):].decode(errors="replace"))
    return found


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
