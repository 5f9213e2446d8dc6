"""Pidfile and single-instance lock.

Two files, two jobs. The *lock file* (``<pidfile>.lock``, or ``<name>.lock`` in the
runtime directory) is what makes us the only instance: an ``flock`` held for our whole
life, released by the kernel even after SIGKILL, so a crash never leaves a lock that
blocks the next start. It also holds our pid, so a second instance can say who has it.
The *pidfile* is for other tools; it is written atomically (temp file + rename) so a
reader never sees it half written. A pidfile left by a dead instance is simply stale:
we hold the lock, so nobody else can own it, and it is replaced (with a log line).

Removing a lock file that others might be waiting on is a classic race; it is safe
here because every locker re-checks, after locking, that the file it locked is still
the one at the path (same inode) and starts over if not.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from herder.service._errors import AlreadyRunning

log = logging.getLogger("herder.service")

_ATTEMPTS = 10


def default_lock_path(name: str) -> Path:
    """Where ``single_instance=True`` without a pidfile keeps its lock."""
    if sys.platform != "win32":
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        if runtime:
            return Path(runtime) / f"{name}.lock"
        if os.geteuid() == 0 and Path("/run").is_dir():
            return Path("/run") / f"{name}.lock"
    return Path(tempfile.gettempdir()) / f"herder-{name}.lock"


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # not exercised by the Windows tier (no single-instance run there)
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _holder_pid(path: Path) -> int | None:
    """The lock holder's pid. It writes it just after locking, so a loser of a start
    race may look in between: a few short retries (50 ms at most) close that window."""
    for _ in range(_ATTEMPTS):
        pid = _read_pid(path)
        if pid is not None:
            return pid
        time.sleep(0.005)
    return None


class InstanceLock:
    """The single-instance lock; ``acquire`` raises :class:`AlreadyRunning`."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(_ATTEMPTS):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                os.close(fd)
                raise AlreadyRunning(self.name, str(self.path), _holder_pid(self.path))
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                self.write_pid()
                return
            os.close(fd)  # the holder removed it as we locked it: lock the new one
        raise AlreadyRunning(self.name, str(self.path), _holder_pid(self.path))

    def write_pid(self) -> None:
        """(Re)write our pid into the lock file; called again after daemonizing."""
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # while still locked: see the module docstring
        os.close(self.fd)
        self.fd = None


class PidFile:
    """An atomically written pidfile, removed at exit if it is still ours."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self) -> None:
        stale = _read_pid(self.path)
        if stale is not None and stale != os.getpid():
            log.warning("replacing stale pidfile %s (pid %d no longer holds it)", self.path, stale)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            try:
                os.write(fd, f"{os.getpid()}\n".encode())
                if hasattr(os, "fchmod"):  # mkstemp makes it 0600; a pidfile is for others
                    os.fchmod(fd, 0o644)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def remove(self) -> None:
        if _read_pid(self.path) == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
