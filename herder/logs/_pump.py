"""The capture pump: one reader thread drains every pipe, one writer thread owns the files.

Why two threads and not the event loop: a write to a regular file can block (slow or full
disk) and cannot be made non-blocking, so file I/O on the loop would stall supervision.
Why a reader separate from the writer: in `drop` mode a child must keep running even when
the disk is stuck, so something has to keep reading its pipe while a write blocks.

The reader only does non-blocking reads (1 MiB at a time, from pipes enlarged to 1 MiB)
and hands chunks to the writer. Memory is bounded per stream (`buffer`) and in total
(`TOTAL_LIMIT`): past the bound, a `block` stream stops being read (the pipe fills, the
child's write() waits: backpressure, no byte lost), a `drop` stream is still read but
its chunks are discarded and counted.

A channel on the raw fast path (`fast`: herder.keeper.capture decides which) is not read
here: when its pipe is readable the reader takes it out of the selector and hands a
*turn* to the writer, which moves the bytes itself (herder.logs._splice: the kernel copies
pipe → file) until the pipe is empty, then gives the pipe back. One hand-off per burst
instead of one per MiB, and no bytes in Python; memory stays bounded (nothing is queued).
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from herder.logs._files import RotatingFile
from herder.logs._framing import Framer
from herder.logs._worker import worker

if sys.platform != "win32":   # pipes are enlarged on Linux; the module imports anywhere
    import fcntl

CHUNK = 1 << 20
PIPE_SIZE = 1 << 20
TOTAL_LIMIT = 32 << 20
_F_SETPIPE_SZ = 1031


def make_pipe() -> tuple[int, int]:
    """(read end, write end); enlarged so a child writing 64 KB at a time rarely waits on us."""
    r, w = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):
        fcntl.fcntl(r, _F_SETPIPE_SZ, PIPE_SIZE)
    os.set_blocking(r, False)
    return r, w


@dataclass(eq=False)
class Channel:
    """One captured stream of one instance run: a pipe's read end and where its bytes go."""

    fd: int
    instance: str
    stream: str
    framer: Framer
    sink: RotatingFile | None
    drop: bool
    limit: int
    forward: list[Any] = field(default_factory=list)
    queued: int = 0           # bytes handed to the writer (reader thread only writes this)
    taken: int = 0            # bytes the writer finished with (writer thread only writes this)
    dropped: int = 0
    paused: bool = False
    closed: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    slot: int = -1            # the instance's slot in the keeper's shared counters (-1: none)
    carried: int = 0          # bytes of an unfinished line the framer holds back, as counted (writer thread)
    run: int = 0
    spec: Any = None          # the keeper's ChannelSpec (carried across an exec)
    fast: bool = False        # raw fast path: the writer moves the bytes in turns (see the module doc)
    handed: bool = False      # fast: a turn is with the writer (reader thread only)
    drained: bool = False     # fast: a turn met EOF (writer thread only): the fd is the reader's to close
    copier: Any = None        # fast: herder.logs._splice.RawCopy (writer thread only)
    target: Any = None        # fast: (st_dev, st_ino) of the file the copier writes (writer thread only)

    @property
    def pending(self) -> int:
        return self.queued - self.taken


class Pump:
    """The two threads. `deliver(ch, ts, data, eof)` runs in the writer thread for each chunk."""

    def __init__(self, deliver: Callable[[list[tuple[Channel, float, bytes | None]]], None],
                 on_drop: Callable[[Channel, int], None], idle: Callable[[], float | None]) -> None:
        self._deliver, self._on_drop, self._idle = deliver, on_drop, idle
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._cmds: deque[Callable[[], object]] = deque()
        self._items: deque[tuple[Channel, float, bytes | None] | Callable[[], None]] = deque()
        self._cv = threading.Condition()
        self._queued_total = 0    # reader thread only
        self._taken_total = 0     # writer thread only
        self._paused: set[Channel] = set()  # reader thread only
        self._handed: set[Channel] = set()  # reader thread only: fast channels out of the selector
        #: the writer's turn of a fast channel: move what its pipe holds; True at its EOF
        self.raw_turn: Callable[[Channel], bool] | None = None
        self._stop = False
        self._hold = False        # quiesced: no more reads (an exec of the keeper follows)
        self.counters: Any = None  # herder.keeper.counters.Counters: read/done per instance slot
        self._held: list[Channel] = []  # reader thread only: the channels a pause took off the selector
        self._reader = worker(self._read_loop, "herder-log-reader")
        self._writer = worker(self._write_loop, "herder-log-writer")

    def start(self) -> None:
        self._reader.start()
        self._writer.start()

    # -- called from other threads ---------------------------------------------------------------

    def _command(self, fn: Callable[[], object]) -> None:
        self._cmds.append(fn)
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"!")

    def add(self, ch: Channel) -> None:
        self._command(lambda: None if self._hold else self._sel.register(ch.fd, selectors.EVENT_READ, ch))

    def in_writer(self, fn: Callable[[], None]) -> None:
        """Run fn in the writer thread after everything queued so far."""
        with self._cv:
            self._items.append(fn)
            self._cv.notify()

    def wake_writer(self) -> None:
        with self._cv:
            self._cv.notify()

    def drain(self, channels: list[Channel], then: Callable[[], None]) -> None:
        """Read what is already in these pipes, hand it to the writer, then call `then` there."""
        def now() -> None:
            for ch in channels:
                if not ch.closed and not ch.paused and not self._hold:
                    self._read(ch, until_empty=True, force=True)
            self.in_writer(then)
        self._command(now)

    def pause_reading(self, then: Callable[[], None]) -> None:
        """Stop reading every pipe; `then` runs in the writer thread once everything read
        so far is written (the keeper is about to exec: nothing may be in flight)."""
        def hold() -> None:
            self._hold = True
            for key in list(self._sel.get_map().values()):
                if key.data is not None:
                    self._sel.unregister(key.fd)
                    self._held.append(key.data)
            self.in_writer(then)
        self._command(hold)

    def resume_reading(self) -> None:
        """Undo `pause_reading` (the exec it prepared was called off)."""
        def go() -> None:
            self._hold = False
            held, self._held = self._held, []
            for ch in held:
                if not ch.closed and not ch.paused:
                    self._sel.register(ch.fd, selectors.EVENT_READ, ch)
            self._resume_eligible()
        self._command(go)

    def dup_open(self, then: Callable[[list[tuple[Channel, int]]], None]) -> None:
        """A copy (os.dup) of every open channel's fd, taken in the reader thread, the only one
        that closes them: a live fd handed to another thread may be closed and its number
        reused at any time. `then` gets (channel, copy) pairs, in the reader thread."""
        def snap() -> None:
            out = []
            for ch in self._channels():
                if not ch.closed:
                    with contextlib.suppress(OSError):
                        out.append((ch, os.dup(ch.fd)))
            then(out)
        self._command(snap)

    def _channels(self) -> list[Channel]:
        """Reader thread: every channel it reads, paused and held ones included."""
        seen = [k.data for k in self._sel.get_map().values() if k.data is not None]
        return seen + [c for c in (*self._paused, *self._held, *self._handed) if c not in seen]

    def stop(self, close_channels: bool = True) -> None:
        """Read every pipe to EOF is not waited for: callers close children first.
        `close_channels=False` leaves the pipes open (they outlive an exec)."""
        self._stop = True
        self._command(lambda: None)
        self._reader.join(timeout=10)
        with self._cv:
            self._cv.notify()
        self._writer.join(timeout=30)
        for key in list(self._sel.get_map().values()):
            if key.data is not None and close_channels:
                self._close(key.data)
        for ch in list(self._handed):
            if close_channels:
                self._close(ch)
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- reader thread ---------------------------------------------------------------------------

    def _read_loop(self) -> None:
        while not self._stop:
            for key, _ in self._sel.select():
                ch = key.data
                if ch is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    while self._cmds:
                        _guarded(self._cmds.popleft(), "reader")
                elif not ch.closed and not ch.paused and not self._hold:
                    # one select() can return a pipe with the wake-up whose command held or
                    # paused it: read nothing more then (a read after a hold, before an exec of
                    # the keeper, was written after the exec was cleared: a lost line)
                    self._read(ch)

    @property
    def total(self) -> int:
        """Bytes held in memory between the two threads."""
        return self._queued_total - self._taken_total

    def _read(self, ch: Channel, until_empty: bool = False, force: bool = False) -> None:
        if ch.fast and self.raw_turn is not None:
            self._hand_over(ch, force)
            return
        while True:
            try:
                data = os.read(ch.fd, CHUNK)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                data = b""
            if not data:
                self._close(ch)
                self._put((ch, time.time(), None))
                return
            n = len(data)
            if self.counters is not None and ch.slot >= 0:
                self.counters.add(ch.slot, 0, n)     # READ: the bytes are herder's now
            # a chunk is always taken when nothing is waiting, so one read bigger than the bound passes
            over_own = ch.pending > 0 and ch.pending + n > ch.limit
            over_all = self.total > 0 and self.total + n > TOTAL_LIMIT
            if over_own or over_all:
                if ch.drop:
                    ch.dropped += n
                    self._on_drop(ch, n)
                    if not until_empty and len(data) < CHUNK:
                        return
                    continue
                ch.queued += n
                self._queued_total += n
                self._pause(ch)  # before the put, so the writer that takes it sees the pause
                self._put((ch, time.time(), data))
                return
            ch.queued += n
            self._queued_total += n
            self._put((ch, time.time(), data))
            if not until_empty and n < CHUNK:
                return

    def _hand_over(self, ch: Channel, force: bool) -> None:
        """A fast channel's pipe is readable: out of the selector, a turn to the writer.
        `force` (a drain): another turn even when one is pending, so the drain's `then`
        runs after a turn that began after the drain was asked for."""
        if ch.handed and not force:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(ch.fd)
        ch.handed = True
        self._handed.add(ch)
        self.in_writer(lambda: self._turn(ch))

    def _turn(self, ch: Channel) -> None:
        """Writer thread: the channel's turn; its pipe goes back to the reader (or is closed at
        EOF). A turn that fails gives the pipe back all the same, and the channel takes the
        ordinary path from then on: a pipe nobody reads would stall its service for good."""
        assert self.raw_turn is not None
        if ch.closed or ch.drained:     # a drain's second turn after EOF: the reader may be closing
            return                      # the fd right now, and its number may be reused at once
        eof = False
        try:
            eof = ch.drained = self.raw_turn(ch)
        except Exception:
            ch.fast = False
            raise       # said by _guarded
        finally:
            self._command(lambda: self._close(ch) if eof else self._rearm(ch))

    def _rearm(self, ch: Channel) -> None:
        """Reader thread: a fast channel's pipe is back from its turn. Under a hold (an
        upgrade's pause) it joins the held ones, so `resume_reading` and `dup_open` see it."""
        ch.handed = False
        self._handed.discard(ch)
        if ch.closed or self._stop:
            return
        if self._hold:
            if ch not in self._held:
                self._held.append(ch)
            return
        with contextlib.suppress(KeyError):    # already back (a drain's second turn)
            self._sel.register(ch.fd, selectors.EVENT_READ, ch)

    def _pause(self, ch: Channel) -> None:
        ch.paused = True
        self._paused.add(ch)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(ch.fd)

    def _resume_eligible(self) -> None:
        if self.total > TOTAL_LIMIT // 2 or self._hold:
            return
        for ch in [c for c in self._paused if c.pending <= c.limit // 2]:
            self._paused.discard(ch)
            ch.paused = False
            if not ch.closed:
                self._sel.register(ch.fd, selectors.EVENT_READ, ch)
                self._read(ch)

    def _close(self, ch: Channel) -> None:
        if ch.closed:
            return
        ch.closed = True
        self._handed.discard(ch)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(ch.fd)
        os.close(ch.fd)

    def _put(self, item: tuple[Channel, float, bytes | None]) -> None:
        with self._cv:
            self._items.append(item)
            if len(self._items) == 1:
                self._cv.notify()

    # -- writer thread ---------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            timeout = self._idle()  # runs due time rotations; seconds until the next one
            with self._cv:
                if not self._items and not self._stop:
                    self._cv.wait(timeout)
                batch = list(self._items)
                self._items.clear()
            if not batch:
                if self._stop:
                    return
                continue
            chunk: list[tuple[Channel, float, bytes | None]] = []
            for item in batch:
                if callable(item):
                    if chunk:
                        self._deliver_batch(chunk)
                        chunk = []
                    _guarded(item, "writer")
                else:
                    chunk.append(item)
            if chunk:
                self._deliver_batch(chunk)

    def _deliver_batch(self, chunk: list[tuple[Channel, float, bytes | None]]) -> None:
        self._deliver(chunk)
        paused = False
        counters = self.counters
        for ch, _, data in chunk:
            if counters is not None and ch.slot >= 0:
                # CARRIED (before DONE, so read - done + carried never under-counts): done, yet
                # not in the file until its line ends, so a killed keeper loses it too
                held = ch.framer.held()
                if held != ch.carried:
                    counters.add(ch.slot, 3, held - ch.carried)
                    ch.carried = held
            if data is not None:
                ch.taken += len(data)
                self._taken_total += len(data)
                if counters is not None and ch.slot >= 0:
                    counters.add(ch.slot, 1, len(data))     # DONE: written (or counted as unwritten)
            paused = paused or ch.paused
        if paused or self._paused:
            self._command(self._resume_eligible)


def _guarded(fn: Callable[[], object], thread: str) -> None:
    """A request run in a capture thread: its failure is said, never the end of the thread
    (every service's output goes through it). Requests that are answered answer in a
    `finally` of their own (herder.keeper.messages)."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - one failed request must not stop every service's capture
        print(f"herder: a request in the log {thread} thread failed: {e!r}", file=sys.stderr, flush=True)
