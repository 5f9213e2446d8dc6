"""State files: replaced atomically, read back with suspicion.

Writing: a temporary file (created new, never through a link), fsync'ed, renamed over
the old one, so a crash at any moment leaves either the old file or the new one, never a
torn one.

Reading (`load_json`): a state file is trusted only when it is a regular file of herder's
user that nobody else can write, of a sane size, valid JSON, and passes the caller's
check. Anything else (truncated, garbage, empty, a directory, a FIFO, another user's) is
moved aside to `NAME.corrupt-<UTC time>` and the reason is returned, so the caller
reports it and falls back to what the system itself says; it is never silently read as
"nothing" (architecture.md rule 17).

Portable: Windows has no O_CLOEXEC or O_NOFOLLOW (its handles are not inherited unless
asked), needs O_BINARY (else every "\n" is written as "\r\n"), and cannot open a
directory to fsync it (``os.replace`` is MoveFileEx with MOVEFILE_REPLACE_EXISTING there).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_STATE = 16 * 1024 * 1024    # far above any real run.json/intent.json; bounds a planted huge file
_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
          | getattr(os, "O_NOFOLLOW", 0))


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, _FLAGS, mode)
    except FileExistsError:   # left by a crash of a process with our pid: a new one, never through it
        os.unlink(tmp)
        fd = os.open(tmp, _FLAGS, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


@dataclass(frozen=True)
class Loaded:
    """A state file as read: its value, or why it was not used (and where it was moved)."""

    value: Any = None
    problem: str | None = None     # None: the file was fine, or missing
    moved_to: Path | None = None

    def report(self, path: Path) -> str:
        where = f"moved aside to {self.moved_to.name}" if self.moved_to else "left in place (could not move it)"
        return f"{path}: {self.problem}; {where}"


def set_aside(path: Path) -> Path | None:
    """Rename a bad state file (or directory) to `NAME.corrupt-<UTC time>`; None if that failed."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 0
    while os.path.lexists(target):
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        os.rename(path, target)
    except OSError:
        return None
    return target


def _read_trusted(path: Path, owner: int | None = None) -> bytes:
    """The bytes of a state file, or ValueError saying why it cannot be trusted (OSError: missing).
    `owner`: the uid it must belong to (default: this process's effective uid)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError("is a symlink (herder does not follow links in its state_dir)") from None
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            raise
        raise ValueError(f"cannot be opened: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("is not a regular file")
        want = owner if owner is not None else (os.geteuid() if hasattr(os, "geteuid") else None)
        if want is not None and st.st_uid != want:
            raise ValueError(f"belongs to uid {st.st_uid}, not to herder's uid {want}")
        if st.st_mode & 0o022:
            raise ValueError(f"is writable by others (mode {stat.S_IMODE(st.st_mode):04o})")
        if st.st_size > MAX_STATE:
            raise ValueError(f"is {st.st_size} bytes, over the {MAX_STATE} herder ever writes")
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_STATE:
                raise ValueError(f"is over the {MAX_STATE} bytes herder ever writes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def load_json(path: Path, check: Callable[[Any], str | None] = lambda v: None, *,
              read_only: bool = False, owner: int | None = None) -> Loaded:
    """Read a JSON state file. Missing → Loaded(); fine → Loaded(value); anything else is set
    aside and Loaded(problem=…, moved_to=…) says why. `check(value)` returns a problem or None.

    `read_only` (a client reading another process's state): nothing is ever moved, and the
    file must belong to `owner` (the state_dir's owner) rather than to this process's uid:
    a root `herder down` never renames the file of a herder another user runs."""
    aside: Callable[[Path], Path | None] = (lambda p: None) if read_only else set_aside
    try:
        data = _read_trusted(path, owner)
    except FileNotFoundError:
        return Loaded()
    except OSError as e:
        return Loaded(problem=f"cannot be read: {e.strerror}", moved_to=None)
    except ValueError as e:
        return Loaded(problem=str(e), moved_to=aside(path))
    try:
        if not data.strip():
            raise ValueError("is empty (truncated?)")
        try:
            value = json.loads(data)
        except RecursionError:
            raise ValueError("is nested too deeply to be herder's") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"is not valid JSON ({e})") from None
        problem = check(value)
        if problem:
            raise ValueError(problem)
    except ValueError as e:
        return Loaded(problem=str(e), moved_to=aside(path))
    return Loaded(value)
