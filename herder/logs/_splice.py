"""The raw log fast path: bytes moved from a service's pipe to its log file by the kernel.

Why: with `timestamps = false` (and nobody reading the lines live) herder adds nothing to
the bytes, yet the pump copies every one twice through Python (a read into a bytes
object, a write out of it) and wakes two threads per chunk. `os.splice` moves pipe pages
into the file's page cache inside the kernel: one system call per chunk, no Python
object, no thread hand-off. This module is that copy and nothing else: no framing, no
timestamps, no tee to followers, no tails (the caller decides when a channel may take
this path; docs/logs.md says which settings do).

What it keeps of the writer's contract (herder.logs._files.RotatingFile):

* bytes exact, in order; partial lines pass as they are (nothing is framed);
* rotation at `max_size`: when the pipe holds more than the file has room for, that chunk
  comes through userspace once, is cut after the last line end that fits (a line longer
  than a whole file goes in alone, as RotatingFile does), and `rotate()` (the caller's)
  gives the next file; splice resumes after it;
* a write error (disk full) never blocks the service: the chunk is read out of the pipe,
  the write is tried, what could not be written is counted in `unwritten` and kept in
  `error` for the caller to report; the next chunk tries again;
* where splice cannot serve (no os.splice, a file system without splice support, a
  source that is not a pipe: EINVAL), the same steps run with os.read + os.pwrite.

The file is written at explicit offsets through a descriptor of its own, opened again
through /proc/self/fd read-write (splice refuses a file opened with O_APPEND, which log
files are; reading lets `tail()` hand the last lines to the caller's tails), so the caller must not write to the same
file between two steps except through `write()` here; `size` is where the next byte goes.
The source pipe is used non-blocking (SPLICE_F_NONBLOCK; reads of a non-blocking fd):
`step()` moves what is there now and returns, so a selector-driven caller never blocks
on a pipe.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

if sys.platform != "win32":   # splice is Linux's; the module imports anywhere, as the capture's others do
    import fcntl
    import termios

CHUNK = 1 << 20                     # the pipes are 1 MiB (F_SETPIPE_SZ): one step moves a pipe-full
_NO_SPLICE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV}

#: step(): the pipe's write ends are all closed and it is empty
EOF = -1


def pipe_bytes(fd: int) -> int:
    """How many bytes the pipe holds now (FIONREAD)."""
    buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return int.from_bytes(buf, sys.byteorder)


def line_cut(data: bytes | memoryview, room: int, at_start: bool) -> int:
    """How much of `data` goes into a file with `room` bytes left: up to the last line end
    that fits; nothing when none fits, unless the file is empty (`at_start`): then one line
    longer than the whole file goes in alone (to its line end, or all of data)."""
    mv = memoryview(data)
    if room > 0:
        cut = bytes(mv[:room]).rfind(b"\n") + 1
        if cut:
            return cut
    if not at_start:
        return 0
    end = bytes(mv[max(room, 0):]).find(b"\n")
    return len(mv) if end < 0 else max(room, 0) + end + 1


class RawCopy:
    """Moves a pipe's bytes into a log file (see the module's docstring).

    `dst` is the file's descriptor (O_APPEND or not: a non-appending one of the same file
    is opened here and owned by this object); `size` is the file's size now. `max_size` 0
    means no rotation; otherwise `rotate()` must close the full file, open the next and
    return its descriptor (its size is taken as 0)."""

    def __init__(self, src: int, dst: int, *, size: int, max_size: int = 0,
                 rotate: Callable[[], int] | None = None, chunk: int = CHUNK, use_splice: bool = True) -> None:
        if max_size and rotate is None:
            raise ValueError("max_size needs rotate")
        self.src, self.chunk = src, chunk
        self.max_size, self.rotate = max_size, rotate
        self.use_splice = use_splice and hasattr(os, "splice")
        self.size = size
        self.spliced = 0        # bytes the kernel moved
        self.copied = 0         # bytes moved through userspace (rotation cuts, fallback)
        self.unwritten = 0      # bytes read from the pipe that could not be written (disk errors)
        self.error: OSError | None = None   # the last write error; None once a write succeeds again
        self.fd = -1
        self.readable = False
        #: told how many bytes came out of the pipe into userspace, before they are written
        #: (a process killed in between loses them; its caller counts them as possibly lost)
        self.on_read: Callable[[int], None] | None = None
        self._target(dst)
        os.set_blocking(src, False)

    @property
    def written(self) -> int:
        return self.spliced + self.copied

    def _target(self, dst: int) -> None:
        """Write through our own non-appending descriptor of dst's file (dst < 0: no file
        now, as after a rotation that could not open the next one: bytes are counted)."""
        self.close()
        if dst < 0:
            return
        try:   # read-write, so tail() can give the last lines back without a second open
            self.fd = os.open(f"/proc/self/fd/{dst}", os.O_RDWR | os.O_CLOEXEC)
            self.readable = True
        except OSError:
            self.readable = False
            if fcntl.fcntl(dst, fcntl.F_GETFL) & os.O_APPEND:
                self.fd = os.open(f"/proc/self/fd/{dst}", os.O_WRONLY | os.O_CLOEXEC)
            else:
                self.fd = os.dup(dst)
                os.set_inheritable(self.fd, False)

    def tail(self, n: int) -> bytes:
        """The last n bytes (at most) of the current file, from the page cache: the lines a
        caller keeps for its tails come from here, the copy having never seen them; b""
        when the file cannot be read back."""
        k = min(n, self.size)
        if not self.readable or self.fd < 0 or k <= 0:
            return b""
        try:
            return os.pread(self.fd, k, self.size - k)
        except OSError:
            return b""

    def close(self) -> None:
        """Close our descriptor of the file (the pipe stays the caller's)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def step(self) -> int:
        """Move what the pipe holds now, at most `chunk` bytes (rotating on the way): the
        number of bytes taken from the pipe (0: nothing there yet), or EOF."""
        if self.max_size:
            try:
                avail = pipe_bytes(self.src)
            except OSError:          # not a pipe (a file or a socket given in tests): no FIONREAD
                avail = self.chunk
            if avail and self.size + min(avail, self.chunk) > self.max_size:
                return self._through_userspace(min(avail, self.chunk), cut=True)
            want = min(avail or self.chunk, self.chunk)   # 0 available: try anyway, to see EOF or EAGAIN
        else:
            want = self.chunk
        if not self.use_splice or self.fd < 0:
            return self._through_userspace(want, cut=False)
        try:
            n = os.splice(self.src, self.fd, want, offset_dst=self.size, flags=os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE)
        except BlockingIOError:
            return 0
        except OSError as e:
            if e.errno in _NO_SPLICE:
                self.use_splice = False          # this pair cannot splice: read/write from now on
                return self._through_userspace(want, cut=False)
            return self._through_userspace(want, cut=False)   # a write error: the bytes come out, counted
        if n == 0:
            return EOF
        self.size += n
        self.spliced += n
        self.error = None
        return n

    def _through_userspace(self, want: int, cut: bool) -> int:
        try:
            data = os.read(self.src, want)
        except BlockingIOError:
            return 0
        if not data:
            return EOF
        if self.on_read is not None:
            self.on_read(len(data))
        view = memoryview(data)
        while view:
            if cut and self.max_size and self.size + len(view) > self.max_size:
                k = line_cut(view, self.max_size - self.size, self.size == 0)
                if k:
                    self.write(view[:k])
                    view = view[k:]
                if view:
                    self._rotate()
                continue
            self.write(view)
            break
        return len(data)

    def write(self, data: bytes | memoryview) -> None:
        """Bytes at the end of the file (the caller's own, between steps, go here too)."""
        done = 0
        try:
            if self.fd < 0:
                raise OSError(errno.EBADF, "no log file open")
            while done < len(data):
                done += os.pwrite(self.fd, data[done:], self.size + done)
        except OSError as e:
            self.error = e
            self.unwritten += len(data) - done
        else:
            self.error = None
        self.size += done
        self.copied += done

    def retarget(self, dst: int, size: int) -> None:
        """The caller changed files (its own rotation or a reopen): write to dst from size on."""
        self._target(dst)
        self.size = size

    def _rotate(self) -> None:
        assert self.rotate is not None
        self.retarget(self.rotate(), 0)
