"""The single-instance lock of a state_dir: `{state_dir}/herder.pid`, flock'ed by the
running supervisor, holding its pid.

An flock (not the pid alone) is the truth: it vanishes with the process, however it
died, so a stale file never blocks a new herder and a recycled pid is never mistaken
for one. Readers take a shared, non-blocking lock to ask "is anyone holding it?", or a
shared blocking one to wait until the holder is gone (`herder down`). The one place that
knows this file.

Taking the lock is also where state_dir is first trusted: `acquire` refuses a state_dir
that is not safely herder's (herder.store.statedir) before anything in it is read.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from herder.errors import AlreadyRunning
from herder.store import statedir

if sys.platform != "win32":   # the supervisor (the only locker) runs on POSIX; the module imports anywhere
    import fcntl


def acquire(state_dir: Path, *, group_gid: int | None = None) -> int:
    """Check state_dir (UnsafeStateDir), take the lock and write our pid; returns the fd to
    keep open. AlreadyRunning names the holder."""
    statedir.ensure(state_dir, group_gid=group_gid)
    fd = statedir.open_nofollow(state_dir / "herder.pid", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise AlreadyRunning(f"herder is already running on {state_dir} (pid {other}, socket "
                             f"{state_dir / 'herder.sock'}); use `herder status` or `herder down` first") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def holder(state_dir: Path) -> int | None:
    """The pid of the supervisor holding state_dir's lock, or None when nobody holds it."""
    try:
        fd = os.open(Path(state_dir) / "herder.pid", os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)


def group_id(name: str | None) -> int | None:
    """The gid of a socket_group (a name or a number), or None (none set, or no such group)."""
    if not name:
        return None
    if name.isdigit():
        return int(name)
    import grp

    try:
        return grp.getgrnam(name).gr_gid
    except (KeyError, ValueError):
        return None


def wait_released(state_dir: str | Path, timeout: float) -> bool:
    """Block until nobody holds the lock (the supervisor exited); False at the deadline.
    Bounded by SIGALRM, so it must run in the main thread (the CLI)."""
    import signal

    try:
        fd = os.open(os.path.join(state_dir, "herder.pid"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return True

    def late(*_: object) -> None:
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, late)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        return True
    except TimeoutError:
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.close(fd)
