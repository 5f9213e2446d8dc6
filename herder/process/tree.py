"""Finding an instance's processes when no cgroup holds them.

The fallback for `kill = "tree"` without a cgroup: the process group, the main process's
descendants (psutil), and any process whose environment carries the instance's cookie
(HERDER_INSTANCE_ID), which catches children that called setsid() and were re-parented
after their parent died. psutil is imported lazily: only stops pay for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

#: The kill signal; Windows has no SIGKILL (os.kill with any other number there is TerminateProcess).
SIGKILL: int = 9 if sys.platform == "win32" else signal.SIGKILL


def members(pid: int | None, pgid: int | None, cookie: str) -> set[int]:
    import psutil

    found: set[int] = set()
    if pid is not None:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            found.add(pid)
            found.update(c.pid for c in p.children(recursive=True))
    needle = f"HERDER_INSTANCE_ID={cookie}".encode()
    me = os.getpid()
    for p in psutil.process_iter():
        if p.pid == me or p.pid in found:
            continue
        try:
            if pgid is not None and os.getpgid(p.pid) == pgid:
                found.add(p.pid)
                continue
            with open(f"/proc/{p.pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
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
