"""The raw fast path wired into the keeper's capture (herder.keeper.capture + herder.logs._pump
+ herder.logs._splice), on real children and pipes, the Capture run in this process so the
test can see which path moved the bytes: floods byte-exact with and without rotation
(rotated files cut at line ends), the tails and an exit's stderr lines still kept, a
follower that attaches mid-flood getting every line from then on (the channel leaves the
fast path while it is there, and takes it again after), and the counters. Which settings
take the path: docs/logs.md."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from herder.keeper.capture import Capture, ChannelSpec, fast_path
from herder.keeper.counters import DONE, READ, UNWRITTEN, WRITTEN, Counters
from herder.logs._pump import make_pipe
from herder.logs._taps import Tap

PY = sys.executable
DEADLINE = 60.0
FLOOD = """
    import hashlib, os, sys
    total = int(sys.argv[1]); h = hashlib.sha256(); sent = 0; i = 0
    while sent < total:
        blk = b"".join(b"%08d " % (i * 700 + k) + b"y" * (i % 50) + b"\\n" for k in range(700))[: total - sent]
        mv = memoryview(blk)
        while mv:
            mv = mv[os.write(1, mv):]
        h.update(blk); sent += len(blk); i += 1
    os.write(2, b"first\\nlast words")
    open(sys.argv[2], "w").write(h.hexdigest())
"""


@pytest.fixture
def capture() -> Iterator[tuple[Capture, Counters, list[dict[str, Any]]]]:
    messages: list[dict[str, Any]] = []
    counters = Counters()
    cap = Capture(messages.append, counters, lambda: 0)
    turns: list[bool] = []
    real = cap.pump.raw_turn
    assert real is not None

    def counted(ch: Any) -> bool:     # the fast path was taken; True: that turn met EOF
        eof = real(ch)
        turns.append(eof)
        return eof

    cap.pump.raw_turn = counted
    cap.turns = turns  # type: ignore[attr-defined]
    cap.start()
    yield cap, counters, messages
    cap.close()
    counters.close()


def flood(cap: Capture, tmp_path: Path, total: int, spec: ChannelSpec, err: ChannelSpec | None = None,
          during: Any = None) -> str:
    """Run the flooding child with its stdout (and stderr) captured; its digest once every byte is written."""
    script = tmp_path / "flood.py"
    script.write_text(textwrap.dedent(FLOOD))
    r, w = make_pipe()
    fds, reads = [w], [r]
    if err is not None:
        r2, w2 = make_pipe()
        fds.append(w2)
        reads.append(r2)
    cap.add("f", 1, [spec] + ([err] if err else []), reads)
    child = subprocess.Popen([PY, str(script), str(total), str(tmp_path / "sum")], stdout=fds[0],
                             stderr=fds[-1] if err else None)
    for fd in fds:
        os.close(fd)
    if during is not None:
        during()
    assert child.wait(DEADLINE) == 0
    done = threading.Event()
    cap.drain("f", lambda tail: done.set())
    assert done.wait(DEADLINE)
    return (tmp_path / "sum").read_text()


def test_a_raw_flood_goes_by_splice_byte_exact_with_its_tails(capture: Any, tmp_path: Path) -> None:
    cap, counters, _ = capture
    log = tmp_path / "f.log"
    spec = ChannelSpec("stdout", "f", str(log), timestamps=False)
    err = ChannelSpec("stderr", "f", str(tmp_path / "f.err.log"), timestamps=False)
    assert fast_path(spec) and fast_path(err)
    digest = flood(cap, tmp_path, 32 << 20, spec, err)
    assert hashlib.sha256(log.read_bytes()).hexdigest() == digest
    assert cap.turns                                            # the fast path moved them
    slot = counters.slot("i:f")
    total = (32 << 20) + len(b"first\nlast words")
    assert counters.get(slot, READ) == counters.get(slot, DONE) == total
    assert counters.get(counters.slot("s:" + str(log)), WRITTEN) == 32 << 20
    last = log.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    assert [r.line for r in cap.tail(["f"], 1)] in ([last], [b"last words"])   # the ring has the latest lines
    assert cap.err_tail["f"][-2:] == [b"first", b"last words"]                 # an exit's stderr lines


def test_rotation_on_the_fast_path_cuts_at_line_ends_and_keeps_every_byte(capture: Any, tmp_path: Path) -> None:
    cap, _, _ = capture
    log = tmp_path / "r.log"
    spec = ChannelSpec("stdout", "f", str(log), timestamps=False, max_size=1 << 20, max_files=100)
    digest = flood(cap, tmp_path, 12 << 20, spec)
    files = sorted(tmp_path.glob("r.*.log")) + [log]
    assert len(files) >= 12
    assert hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest() == digest
    for f in files[:-1]:
        data = f.read_bytes()
        assert len(data) <= 1 << 20 and data.endswith(b"\n")
    assert cap.turns


class Lines(Tap):
    def __init__(self) -> None:
        super().__init__(None)
        self.lines: list[bytes] = []
        self.first = threading.Event()

    def offer(self, records: list[Any]) -> None:
        self.lines.extend(r.line for r in records)
        self.first.set()


def test_a_follower_gets_every_line_while_it_is_there(capture: Any, tmp_path: Path) -> None:
    """A tap attached mid-flood: from its first line on, consecutive lines, none missing
    (the channel reads them for it); the file is exact throughout."""
    cap, _, _ = capture
    log = tmp_path / "f.log"
    tap = Lines()

    def attach() -> None:
        cap.add_tap(tap)
        assert tap.first.wait(DEADLINE)

    digest = flood(cap, tmp_path, 48 << 20, ChannelSpec("stdout", "f", str(log), timestamps=False), during=attach)
    assert hashlib.sha256(log.read_bytes()).hexdigest() == digest
    numbers = [int(x[:8]) for x in tap.lines[1:]]     # the first may be a line's end
    assert numbers and numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    last = log.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    assert numbers[-1] == int(last[:8])                # to the very end


def test_two_streams_into_one_file_keep_every_line_whole(capture: Any, tmp_path: Path) -> None:
    """stderr = "merge": stdout and stderr share a file through two pipes. Raw bytes of the two
    would mix mid-line (a CI run once read b"outerr rep.0" and b" rep.0" back), so neither
    stream takes the fast path there and each line is written whole."""
    cap, _, _ = capture
    log = tmp_path / "m.log"
    out, err = (ChannelSpec(stream, "m", str(log), timestamps=False) for stream in ("stdout", "stderr"))
    assert fast_path(out) and fast_path(err)        # each alone would take it
    script = tmp_path / "mix.py"
    script.write_text(textwrap.dedent("""
        import os
        for i in range(3000):   # half a stdout line, a whole stderr line, the stdout line's end
            os.write(1, b"out %d" % i); os.write(2, b"err %d\\n" % i); os.write(1, b" end\\n")
    """))
    (r1, w1), (r2, w2) = make_pipe(), make_pipe()
    chans = cap.add("m", 1, [out, err], [r1, r2])
    assert not any(ch.fast for ch in chans)
    child = subprocess.Popen([PY, str(script)], stdout=w1, stderr=w2)
    os.close(w1)
    os.close(w2)
    assert child.wait(DEADLINE) == 0
    done = threading.Event()
    cap.drain("m", lambda tail: done.set())
    assert done.wait(DEADLINE)
    lines = log.read_bytes().splitlines()
    assert sorted(lines) == sorted([b"out %d end" % i for i in range(3000)] + [b"err %d" % i for i in range(3000)])
    assert not cap.turns


def test_which_streams_take_the_fast_path() -> None:
    base: dict[str, Any] = {"stream": "stdout", "service": "s", "sink": "/x.log", "timestamps": False}
    assert fast_path(ChannelSpec.of(base))
    for other in ({"timestamps": True}, {"format": "json"}, {"forward": ("syslog",)}, {"drop": True},
                  {"sink": None}):
        assert not fast_path(ChannelSpec.of({**base, **other})), other


def test_an_upgrade_mid_flood_hands_the_pipe_over_without_a_lost_byte(tmp_path: Path) -> None:
    """`herder upgrade` on the capture: quiesce (no turn in flight, nothing unwritten), export
    the pipe, a new Capture restores it and goes on; the file is byte-exact."""
    import time

    script = tmp_path / "flood.py"
    script.write_text(textwrap.dedent(FLOOD))
    log = tmp_path / "u.log"
    spec = ChannelSpec("stdout", "f", str(log), timestamps=False)
    c1, c2 = Counters(), Counters()
    first = Capture(lambda m: None, c1, lambda: 0)
    first.start()
    r, w = make_pipe()
    first.add("f", 1, [spec], [r])
    child = subprocess.Popen([PY, str(script), str(64 << 20), str(tmp_path / "sum")], stdout=w)
    os.close(w)
    deadline = time.monotonic() + DEADLINE
    while not log.exists() or log.stat().st_size < 4 << 20:     # mid-flood
        assert time.monotonic() < deadline and child.poll() is None, "the flood never reached 4 MiB"
        threading.Event().wait(0.005)
    assert first.pause(DEADLINE)                 # as herder.keeper.upgrade.exec_keeper does
    first.pump.stop(close_channels=False)
    state, fds = first.export()
    assert all(ch.copier is None for chans in first.current.values() for ch in chans)   # export closed them
    for sink in first.sinks.values():
        sink.close()
    second = Capture(lambda m: None, c2, lambda: 0)
    second.start()
    second.restore(state, fds)
    try:
        assert child.wait(DEADLINE) == 0
        done = threading.Event()
        second.drain("f", lambda tail: done.set())
        assert done.wait(DEADLINE)
    finally:
        second.close()
        c1.close()
        c2.close()
    assert hashlib.sha256(log.read_bytes()).hexdigest() == (tmp_path / "sum").read_text()


_CHILDREN: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _no_flood_left() -> Iterator[None]:
    """A failed test leaves no flooder behind (killed by its pid)."""
    yield
    while _CHILDREN:
        child = _CHILDREN.pop()
        if child.poll() is None:
            child.kill()
        child.wait(DEADLINE)


def _flood_child(tmp_path: Path, total: int, stdout: int) -> subprocess.Popen[bytes]:
    script = tmp_path / "flood.py"
    script.write_text(textwrap.dedent(FLOOD))
    child = subprocess.Popen([PY, str(script), str(total), str(tmp_path / "sum")], stdout=stdout)
    _CHILDREN.append(child)
    return child


def _grown(log: Path, size: int, child: subprocess.Popen[bytes]) -> None:
    """Wait (bounded) until the flood's file holds at least `size` bytes."""
    import time

    deadline = time.monotonic() + DEADLINE
    while not log.exists() or log.stat().st_size < size:
        assert time.monotonic() < deadline and child.poll() is None, f"the flood never reached {size} bytes"
        threading.Event().wait(0.005)


def _hold_writer(cap: Capture) -> threading.Event:
    """Hold the writer thread (a request that waits on a gate) until the gate returned is set."""
    gate, held = threading.Event(), threading.Event()

    def block() -> None:
        held.set()
        gate.wait(DEADLINE)

    cap.pump.in_writer(block)
    assert held.wait(DEADLINE)
    return gate


def _handed_over(cap: Capture, r: int, gate: threading.Event | None = None) -> tuple[Any, threading.Event]:
    """With the writer held (`gate`, or a new hold), wait until the fast channel on pipe `r`
    has handed its turn to it: the moment its pipe is in neither the reader's selector nor
    the writer's hands. Returns the channel and the gate to open."""
    import time

    gate = gate or _hold_writer(cap)
    ch = next(c for cs in cap.current.values() for c in cs if c.fd == r)
    deadline = time.monotonic() + DEADLINE
    while not ch.handed:        # the pipe fills while the writer waits: the reader hands the turn over
        assert time.monotonic() < deadline, "the reader never handed the fast channel over"
        threading.Event().wait(0.002)
    return ch, gate


def _listed(cap: Capture) -> list[int]:
    """The pipes dup_open copies (what a new decision process is sent), copies closed."""
    got: list[int] = []
    dups = threading.Event()

    def listed(pairs: list[tuple[Any, int]]) -> None:
        for ch, fd in pairs:
            got.append(ch.fd)
            os.close(fd)
        dups.set()

    cap.pump.dup_open(listed)
    assert dups.wait(DEADLINE)
    return got


def _finish(cap: Capture, child: subprocess.Popen[bytes], log: Path, tmp_path: Path) -> None:
    assert child.wait(DEADLINE) == 0, "the flood stalled: its pipe was no longer read"
    done = threading.Event()
    cap.drain("f", lambda tail: done.set())
    assert done.wait(DEADLINE)
    assert hashlib.sha256(log.read_bytes()).hexdigest() == (tmp_path / "sum").read_text()


def test_a_pause_while_a_turn_is_with_the_writer_resumes_that_pipe(capture: Any, tmp_path: Path) -> None:
    """An upgrade called off (herder.keeper.upgrade: the writer too slow) pauses and resumes
    the pump. A fast channel whose turn was with the writer when the pause came goes back
    among the held pipes: listed for a new decision process while paused, nothing written
    while paused, and read again after the resume (it was once left out: its service
    blocked on a full pipe for good). dup_open lists it throughout: while its turn is
    pending and while it is held."""
    cap, _, _ = capture
    log = tmp_path / "p.log"
    r, w = make_pipe()
    cap.add("f", 1, [ChannelSpec("stdout", "f", str(log), timestamps=False)], [r])
    child = _flood_child(tmp_path, 48 << 20, w)
    os.close(w)
    _grown(log, 1 << 20, child)
    _, gate = _handed_over(cap, r)
    paused = threading.Event()
    cap.pump.pause_reading(paused.set)      # the hold comes while the turn waits in the writer
    try:    # the copies a new decision process is sent (it takes the pipes over after a kill -9)
        assert _listed(cap) == [r], "a fast channel whose turn is pending is missing from dup_open"
    finally:
        gate.set()
    assert paused.wait(DEADLINE)
    size = log.stat().st_size
    assert _listed(cap) == [r], "a held fast channel is missing from dup_open"
    assert log.stat().st_size == size, "bytes were written while the pump was paused"
    cap.resume()
    _finish(cap, child, log, tmp_path)
    assert cap.turns


def test_no_turn_touches_a_pipe_after_its_eof(capture: Any, tmp_path: Path) -> None:
    """An exit's drain asks for a turn of its own while one is pending: once a turn met EOF
    the reader closes the pipe (and its number may be reused by the next spawn's pipe at
    once), so no later turn may read it. The writer is held while both turns queue up, and
    the reader while they run (so the second one would find the pipe still open)."""
    cap, _, _ = capture
    log = tmp_path / "e.log"
    r, w = make_pipe()
    cap.add("f", 1, [ChannelSpec("stdout", "f", str(log), timestamps=False)], [r])
    gate = _hold_writer(cap)              # before the EOF: no turn can run yet
    child = subprocess.Popen([PY, "-c", "pass"], stdout=w)     # EOF at once: the first turn meets it
    _CHILDREN.append(child)
    os.close(w)
    assert child.wait(DEADLINE) == 0
    _handed_over(cap, r, gate)            # EOF is readable: the reader handed the first turn over
    done, reader = threading.Event(), threading.Event()
    try:
        cap.drain("f", lambda tail: done.set())   # a second, forced turn behind it
        cap.pump._command(lambda: reader.wait(DEADLINE))   # then the reader waits: it closes nothing
    finally:
        gate.set()
    try:
        assert done.wait(DEADLINE)      # both turns ran while the pipe was still open
    finally:
        reader.set()
    assert cap.turns and cap.turns[-1] is True, cap.turns
    assert True not in cap.turns[:-1], f"a turn ran after the pipe's EOF: {cap.turns}"
    assert log.read_bytes() == b""


def test_a_fifo_as_the_log_file_takes_the_line_path_and_loses_nothing(capture: Any, tmp_path: Path) -> None:
    """The fast path writes at file offsets; a FIFO (or a terminal) has none. Such a sink is
    written through the ordinary path: every byte arrives, none is counted unwritten."""
    cap, counters, _ = capture
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got = bytearray()

    def drain_fifo() -> None:
        with open(fifo, "rb") as f:
            while block := f.read(1 << 16):
                got.extend(block)

    reader = threading.Thread(target=drain_fifo)
    reader.start()
    spec = ChannelSpec("stdout", "f", str(fifo), timestamps=False)
    digest = flood(cap, tmp_path, 4 << 20, spec)
    for sink in cap.sinks.values():
        sink.close()            # the FIFO's writer: the reader sees its end
    reader.join(DEADLINE)
    assert not reader.is_alive()
    assert hashlib.sha256(bytes(got)).hexdigest() == digest
    assert counters.get(counters.slot("s:" + str(fifo)), UNWRITTEN) == 0
