"""Log files: appending, rotation by rename, retention, background gzip, disk-full handling.

Why rotation by rename in the writer (and not copy-truncate or a child restart): the
writer is the only one holding the file, so it can rename the full file and open a fresh
one between two writes; no byte lands in both files, none is lost, and the child never
notices. Rotated files are named `{stem}.{UTC time}{suffix}` (web.20240501T120000.123Z.log),
so an `ls` sorts them by time, and retention is a name sort.

Why count instead of block on ENOSPC: a full disk must not stop the service. Bytes that
could not be written are counted, reported once per episode, and every later write tries
again, so logging resumes by itself when space returns.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from herder.logs._worker import worker
from herder.runtime.clock import Now  # a Protocol: no asyncio on the keeper's import path


def _iov_max() -> int:
    try:
        n = os.sysconf("SC_IOV_MAX")
    except (AttributeError, ValueError, OSError):
        return 1024
    return n if n > 0 else 1024


IOV_MAX = _iov_max()   # buffers one writev takes (1024 on Linux)
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}
Notify = Callable[[str, str, dict[str, object]], None]  # (kind, message, data)


def rotated_name(path: Path, ms: int, n: int = 0) -> Path:
    """`{stem}.{UTC time of unix ms}[_{n}]{suffix}`. Seconds and milliseconds come from one
    integer, so names sort by time (…59.9999 s must not become …59.000)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
    stem, suffix = _split(path.name)
    return path.with_name(f"{stem}.{stamp}{f'_{n:04d}' if n else ''}{suffix}")


def rotated_files(path: Path) -> list[Path]:
    """The rotated siblings of `path` (compressed or not), oldest first."""
    stem, suffix = _split(path.name)
    pat = re.compile(rf"{re.escape(stem)}\.(\d{{8}}T\d{{6}}\.\d{{3}}Z(?:_\d+)?){re.escape(suffix)}(?:\.gz)?\Z")
    try:
        names = [(m.group(1), e) for e in os.listdir(path.parent) if (m := pat.match(e))]
    except FileNotFoundError:
        return []
    return [path.parent / n for _, n in sorted(names)]


def _stamp_of(rotated: Path, path: Path) -> tuple[int, int]:
    """(unix ms, sequence number) of a rotated file's name, as rotated_name wrote it."""
    import calendar  # only when rotated names are read back (retention): not on the keeper's start-up path

    stem, suffix = _split(path.name)
    body = rotated.name.removesuffix(".gz").removeprefix(stem + ".").removesuffix(suffix)
    stamp, _, seq = body.partition("_")
    secs = calendar.timegm(time.strptime(stamp[:15], "%Y%m%dT%H%M%S"))
    return secs * 1000 + int(stamp[16:19]), int(seq or 0)


def _split(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    return (stem, dot + ext) if stem else (name, "")


def make_dirs(path: Path, mode: int) -> None:
    """Create path and its missing parents with `mode` (whatever the umask); existing ones are left alone."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, mode)
            os.chmod(d, mode)


def open_log(path: Path, mode: int) -> int:
    """An fd appending to a log file; created with `mode`, and brought to it when it is
    herder's and looser (files a previous version made 0644)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, mode)
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o777 != mode and st.st_uid == getattr(os, "geteuid", lambda: -1)():
            os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        raise
    return fd


class Compressor:
    """One background thread that gzips rotated files (never the event loop or the writer)."""

    def __init__(self) -> None:
        self._q: queue.Queue[tuple[Path, Callable[[], None]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.errors: list[str] = []

    def submit(self, path: Path, then: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = worker(self._run, "herder-gzip")
                self._thread.start()
        self._q.put((path, then))

    def _run(self) -> None:
        import gzip  # the compressor's thread, on the first rotation: not on the keeper's start-up path
        import shutil

        while (job := self._q.get()) is not None:
            path, then = job
            try:
                tmp = path.with_name(path.name + ".gz.tmp")
                gz = path.with_name(path.name + ".gz")
                with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                os.replace(tmp, gz)
                try:
                    os.unlink(path)
                except FileNotFoundError:   # retention removed it while it was being compressed:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(gz)       # its copy goes too (it was resurrecting pruned files)
            except FileNotFoundError:
                pass  # retention removed it first
            except OSError as e:  # disk full while compressing: keep the plain file
                self.errors.append(f"{path}: {e}")
                with contextlib.suppress(OSError):
                    os.unlink(path.with_name(path.name + ".gz.tmp"))
            finally:
                self._q.task_done()
            then()

    def join(self) -> None:
        """Wait until every submitted file is compressed (shutdown and tests)."""
        self._q.join()

    def close(self) -> None:
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(timeout=30)
            self._thread = None


class RotatingFile:
    """An append-only log file owned by the writer thread. Not thread-safe by design."""

    def __init__(self, path: Path, *, max_size: int, max_files: int, rotate_every: float | None,
                 compress: bool, clock: Now, compressor: Compressor | None = None,
                 notify: Notify | None = None, label: str = "", mode: int = 0o640, dir_mode: int = 0o750) -> None:
        self.path = path
        self.mode, self.dir_mode = mode, dir_mode   # private by default: logs carry the services' output
        self.shared_fds: tuple[int, ...] = ()       # other fds writing this file (herder's stdio when detached)
        self.max_size, self.max_files, self.rotate_every = max_size, max_files, rotate_every
        self.compress, self.clock, self.compressor = compress, clock, compressor
        self.notify = notify or (lambda kind, msg, data: None)
        self.label = label or path.name
        self.written = 0        # bytes that reached the file
        self.unwritten = 0      # bytes lost to disk errors
        self.rotations = 0
        self.slot = -1          # the keeper's shared counter slot of this file
        self.failing: str | None = None
        self._episode = 0
        self._issued = (0, 0)     # the newest rotated name this writer gave: (unix ms, sequence)
        self.fd = -1
        self.size = 0
        self.opened_at = clock.now()
        self._open()

    # -- open / close ------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            make_dirs(self.path.parent, self.dir_mode)
            self.fd = open_log(self.path, self.mode)
            self.size = os.fstat(self.fd).st_size
            for other in self.shared_fds:
                os.dup2(self.fd, other)
        except OSError as e:
            self.fd = -1
            self._failed(e, 0)

    def reopen(self) -> None:
        """After an outside rotation (logrotate): write to whatever file is at `path` now."""
        self.close()
        self._open()
        self.opened_at = self.clock.now()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- writing -----------------------------------------------------------------------------

    def write(self, parts: list[bytes]) -> None:
        n = sum(map(len, parts))
        if not n:
            return
        if self.shared_fds and self.fd >= 0:   # others append too: rotate by what the file holds
            with contextlib.suppress(OSError):
                self.size = os.fstat(self.fd).st_size
        self.tick()
        if self.max_size and self.size + n > self.max_size:
            self._write_rotating(b"".join(parts))
            return
        self._writev(parts, n)

    def _write_rotating(self, data: bytes) -> None:
        """Fill the file up to a line end at most max_size, rotate, go on with the rest."""
        while data:
            room = self.max_size - self.size
            if len(data) <= room:
                self._writev([data], len(data))
                return
            cut = data.rfind(b"\n", 0, max(room, 0)) + 1 if room > 0 else 0
            if cut == 0 and self.size == 0:  # one line bigger than the whole file: it goes in alone
                cut = data.find(b"\n", room) + 1 or len(data)
            if cut:
                self._writev([data[:cut]], cut)
                data = data[cut:]
            if data:
                self.rotate()

    def _writev(self, parts: list[bytes], n: int) -> None:
        if self.fd < 0:
            self._open()
            if self.fd < 0:
                self.unwritten += n
                return
        done = 0
        try:
            # at most IOV_MAX buffers a writev: one batch of a flood written in small pieces,
            # while the writer was behind, held thousands, and writev refused them all (EINVAL):
            # every byte of that batch was counted unwritten (a CI run lost 5,800 of 6,000 lines)
            for i in range(0, len(parts), IOV_MAX):
                group = parts[i:i + IOV_MAX]
                want = sum(map(len, group)) if len(group) > 1 else len(group[0])
                got = os.writev(self.fd, group) if len(group) > 1 else os.write(self.fd, group[0])
                done += got
                while got < want:  # short write: retry the rest (ENOSPC shows up on the retry)
                    more = os.write(self.fd, b"".join(group)[got:])
                    got, done = got + more, done + more
        except OSError as e:
            self.size += done
            self.written += done
            self._failed(e, n - done)
            return
        self.size += n
        self.written += n
        if self.failing is not None:
            self._recovered()

    def _failed(self, e: OSError, lost: int) -> None:
        self.unwritten += lost
        if self.failing is None:
            self._episode = self.unwritten - lost
            self.failing = os.strerror(e.errno) if e.errno else str(e)
            kind = "log_disk_full" if e.errno in _DISK_ERRORS else "log_write_error"
            self.notify(kind, f"{self.label}: cannot write {self.path}: {self.failing}; the service keeps "
                        "running, unwritten bytes are counted; writing resumes when the file is writable",
                        {"path": str(self.path), "error": self.failing})

    def _recovered(self) -> None:
        lost = self.unwritten - self._episode
        self.notify("log_recovered", f"{self.label}: writing {self.path} again after {self.failing}; "
                    f"{lost} bytes could not be written", {"path": str(self.path), "unwritten": lost})
        self.failing = None

    # -- rotation ----------------------------------------------------------------------------

    def due(self) -> float | None:
        """Monotonic time of the next time-based rotation, if any."""
        return self.opened_at + self.rotate_every if self.rotate_every else None

    def tick(self) -> None:
        d = self.due()
        if d is not None and self.clock.now() >= d:
            if self.size:
                self.rotate()
            else:
                self.opened_at = self.clock.now()

    def _next_name(self) -> Path:
        """A rotated name that sorts after every rotated file already there.

        Retention deletes by name order, so a name must never sort before an older file's:
        not when a name freed by pruning comes round again within the same millisecond
        (seen: the newest file took the pruned oldest one's name and was deleted next),
        nor when the wall clock steps back. The newest name this writer gave is remembered,
        not only listed: a listing taken while the gzip thread replaces `X.log` by
        `X.log.gz` may show neither (readdir during a rename), and the name handed out again
        then overwrote that file's gzip with the next one's (a lost rotation, seen under load)."""
        newest = rotated_files(self.path)
        last = max(self._issued, _stamp_of(newest[-1], self.path) if newest else (0, 0))
        ms, n = int(time.time() * 1000), 0
        if (ms, n) <= last:
            ms, n = last[0], last[1] + 1
        name = rotated_name(self.path, ms, n)
        while name.exists() or name.with_name(name.name + ".gz").exists():
            n += 1   # never over a file that is there, whatever its name says
            name = rotated_name(self.path, ms, n)
        self._issued = (ms, n)
        return name

    def rotate(self) -> None:
        """Rename the current file to its time-stamped name and start a new one."""
        self.close()
        target = self._next_name()
        try:
            os.rename(self.path, target)
        except FileNotFoundError:
            target = None  # type: ignore[assignment]
        except OSError as e:
            self._failed(e, 0)
            target = None  # type: ignore[assignment]
        self.rotations += 1
        self._open()
        self.opened_at = self.clock.now()
        if target is not None and self.compress and self.compressor is not None:
            self.compressor.submit(target, self.prune)
        self.prune()

    def prune(self) -> None:
        """Keep the newest max_files rotated files (a file and its .gz count once)."""
        files = rotated_files(self.path)
        keys: dict[str, list[Path]] = {}
        for f in files:
            keys.setdefault(f.name.removesuffix(".gz"), []).append(f)
        order = sorted(keys)
        for k in order[:max(0, len(order) - self.max_files)]:
            for f in keys[k]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f)
