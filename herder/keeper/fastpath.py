"""The raw fast path in the keeper's capture: a stream's bytes moved by the kernel.

Why a module of its own: herder.logs._splice is the copy (pipe -> file at explicit offsets,
rotation cuts, disk errors); this is what the keeper's capture adds around it, with the
same results in the file as the ordinary path (docs/logs.md, "The raw fast path"):

* which streams may take it (`fast_path`, decided from the spec: the file itself is
  opened later, in the writer thread) and when one must not, for now (a follower, the
  console or a ready.log watch wants its lines; no file is open; the "file" is a FIFO or
  a terminal, which has no offsets);
* the turn itself (herder.logs._pump hands it to the writer thread): at most TURN bytes,
  then the pipe goes back to the reader and the other channels get the writer;
* the shared counters a killed keeper's successor reads: bytes the kernel moves are read
  and done at once (they are in the file); bytes that pass through userspace (a rotation
  cut, the line path) are counted read before their write, so a kill in between is
  reported as possibly lost, never silently (docs/supervisor.md);
* the tails (`herder logs`, an exit's stderr lines), read back from the end of the file.
"""

from __future__ import annotations

import os
import stat
import time
from typing import TYPE_CHECKING, Any

from herder.keeper.counters import DONE, READ, UNWRITTEN, WRITTEN
from herder.logs._framing import RING_SAMPLE
from herder.logs._pump import CHUNK, Channel
from herder.logs._splice import EOF, RawCopy

if TYPE_CHECKING:
    from herder.keeper.capture import Capture
    from herder.logs._files import RotatingFile
    from herder.logs._spec import ChannelSpec

TURN = 8 << 20               # a fast channel's turn moves at most this much, then the others get theirs


def fast_path(spec: ChannelSpec) -> bool:
    """Which streams take the raw fast path (docs/logs.md): written to a file as they come
    (`timestamps = false`, `format = "text"`), not forwarded, not a hook's (marked) output,
    and `on_overflow = "block"` (drop mode keeps a reader on the pipe whatever the disk
    does). While a follower or the console needs lines, or a ready.log pattern is being
    watched, the same channel takes the ordinary path for as long as that lasts."""
    return (not spec.timestamps and spec.format == "text" and not spec.forward and not spec.marker
            and not spec.drop and spec.sink is not None)



class FastTurns:
    """The writer thread's turns of the fast channels of one Capture."""

    def __init__(self, cap: Capture) -> None:
        self.cap = cap

    def turn(self, ch: Channel) -> bool:
        """Writer thread: a fast channel's turn (herder.logs._pump): move what its pipe holds
        into its file with splice, at most TURN bytes; True at EOF. While something needs its
        lines (a follower, the console, a ready.log watch) the bytes come through _deliver
        as any channel's do, read here. The last lines of each turn go to the tails."""
        sink = ch.sink
        if sink is not None and sink.fd >= 0:
            sink.tick()     # a time rotation due now comes first (it may leave no file open)
        watch = self.cap.watches.get(ch.instance)
        if (sink is None or sink.fd < 0 or self.cap.taps
                or (watch is not None and not watch.done and watch.run == ch.run)):
            return self.lines_turn(ch)
        st = os.fstat(sink.fd)
        if not stat.S_ISREG(st.st_mode):   # a FIFO, a terminal: no offsets to write at; lines from now on
            ch.fast = False
            self.done(ch)
            return self.lines_turn(ch)
        copier = ch.copier
        if copier is None:
            copier = ch.copier = RawCopy(ch.fd, sink.fd, size=sink.size, max_size=sink.max_size,
                                         rotate=lambda: self._rotated(ch, sink))
            copier.on_read = lambda n: self._count(ch, n, 0)
            ch.target = (st.st_dev, st.st_ino)
        elif (st.st_dev, st.st_ino) != ch.target:   # another channel's rotation, or a reopen
            copier.retarget(sink.fd, sink.size)
            ch.target = (st.st_dev, st.st_ino)
        copier.size = sink.size
        written, unwritten = copier.written, copier.unwritten
        moved, eof = 0, False
        while moved < TURN:
            spliced = copier.spliced
            n = copier.step()
            if n == EOF:
                eof = True
                break
            moved += n
            # the kernel moved `spliced` bytes straight into the file: read and done at once;
            # bytes through userspace were counted read by on_read, before their write
            self._count(ch, copier.spliced - spliced, n)
            if n < copier.chunk:    # the pipe is (about) empty: its next bytes wake the reader again
                break
        self._account(ch, sink, copier, copier.written - written, copier.unwritten - unwritten)
        if eof:
            self.cap._deliver([(ch, time.time(), None)])     # the last unfinished line, for the tail; done
            self.done(ch)
        return eof

    def lines_turn(self, ch: Channel) -> bool:
        """A fast channel whose lines are wanted now: read here, delivered as any chunk is."""
        moved = 0
        while moved < TURN:
            try:
                data = os.read(ch.fd, CHUNK)
            except BlockingIOError:
                return False
            self._count(ch, len(data), 0)     # herder's now: a keeper killed before the write reports it
            self.cap._deliver([(ch, time.time(), data or None)])
            if not data:
                self.done(ch)
                return True
            self._count(ch, 0, len(data))
            moved += len(data)
        return False

    def _rotated(self, ch: Channel, sink: RotatingFile) -> int:
        """The copier reached max_size: the file's own rotation (rename, retention, gzip)."""
        sink.rotate()
        if sink.fd >= 0:
            st = os.fstat(sink.fd)
            ch.target = (st.st_dev, st.st_ino)
        return sink.fd

    def _account(self, ch: Channel, sink: RotatingFile, copier: Any, wrote: int, lost: int) -> None:
        """After a turn: the file's figures, its failure/recovery report, the tail's lines."""
        sink.size = copier.size
        sink.written += wrote
        sink.unwritten += lost
        self.cap.counters.add(sink.slot, WRITTEN, wrote)
        self.cap.counters.add(sink.slot, UNWRITTEN, lost)
        if copier.error is not None:
            sink._failed(copier.error, 0)
        elif sink.failing is not None:
            sink._recovered()
        if wrote:   # the last lines, for `herder logs` and an exit's stderr tail (as the raw path samples)
            tail = copier.tail(min(wrote, RING_SAMPLE + 1))
            if len(tail) < wrote:
                ch.framer.carry, ch.framer.carry_lost = b"", True
            self.cap.remember(ch, time.time(), ch.framer.feed(tail, 0.0, False)[1])

    def _count(self, ch: Channel, read: int, done: int) -> None:
        """The shared counters a killed keeper's successor reads (read - done: possibly lost)."""
        if ch.slot >= 0:
            if read:
                self.cap.counters.add(ch.slot, READ, read)
            if done:
                self.cap.counters.add(ch.slot, DONE, done)

    @staticmethod
    def done(ch: Channel) -> None:
        """The channel's copier (its own descriptor of the file) closed; a next turn opens another."""
        if ch.copier is not None:
            ch.copier.close()
            ch.copier = None
