"""The raw log fast path (herder.logs._splice) on real pipes, files and processes: bytes exact
through big writes and partial lines, EOF and an empty pipe told apart, rotation cut at line
ends, the read/write fallback giving the same bytes, and a full disk that never blocks the
writer of the pipe. Every wait is on the pipe itself (select), bounded."""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from herder.logs._splice import EOF, RawCopy, line_cut, pipe_bytes

WRITER = ("import os, sys\n"
          "n = int(sys.argv[1]); blk = bytes(range(256)) * 4099 + b'partial'\n"   # 1 MiB+, no line ends
          "mv = memoryview(blk * (n // len(blk) + 1))[:n]\n"
          "while mv:\n"
          "    mv = mv[os.write(1, mv[:int(sys.argv[2])]):]\n")


def drain(copy: RawCopy, deadline_s: float = 120.0) -> None:
    """step() whenever the pipe is readable, until EOF; bounded by a deadline."""
    import time

    end = time.monotonic() + deadline_s
    while True:
        left = end - time.monotonic()
        assert left > 0, "the pipe never reached EOF"
        r, _, _ = select.select([copy.src], [], [], left)
        if r and copy.step() == EOF:
            return


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):   # a test closed it already
            os.close(fd)


@pytest.mark.parametrize("use_splice", [True, False], ids=["splice", "read-write"])
@pytest.mark.parametrize("write_size", [65_500, 3_000_001], ids=["64k-writes", "3m-writes"])
def test_a_process_flood_arrives_byte_exact(tmp_path: Path, use_splice: bool, write_size: int) -> None:
    total = 40 << 20
    log = tmp_path / "svc.log"
    log.write_bytes(b"before\n")            # appended after what the file held
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(total), str(write_size)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    copy = RawCopy(proc.stdout.fileno(), fd, size=os.fstat(fd).st_size, use_splice=use_splice)
    try:
        drain(copy)
    finally:
        copy.close()
        os.close(fd)
        proc.stdout.close()
        assert proc.wait(60) == 0
    blk = bytes(range(256)) * 4099 + b"partial"
    want = b"before\n" + (blk * (total // len(blk) + 1))[:total]
    got = log.read_bytes()
    assert len(got) == len(want) and hashlib.sha256(got).digest() == hashlib.sha256(want).digest()
    assert copy.written == total and copy.size == len(want) and copy.unwritten == 0
    assert (copy.spliced == total) if use_splice else (copy.copied == total)


def test_partial_lines_pass_as_they_are_and_empty_is_not_eof(tmp_path: Path, pipe: tuple[int, int]) -> None:
    r, w = pipe
    log = tmp_path / "a.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    copy = RawCopy(r, fd, size=0)
    assert copy.step() == 0                  # nothing yet, the writer is still there: not EOF
    os.write(w, b"abc")
    assert copy.step() == 3 and log.read_bytes() == b"abc"
    os.write(w, b"def\nghi")
    assert copy.step() == 7 and log.read_bytes() == b"abcdef\nghi"
    os.close(w)
    assert copy.step() == EOF
    copy.close()
    os.close(fd)


class Rotator:
    """The caller's side of rotation, as RotatingFile does it: rename the full file, open a new one."""

    def __init__(self, path: Path) -> None:
        self.path, self.n = path, 0
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def __call__(self) -> int:
        os.close(self.fd)
        self.n += 1
        os.rename(self.path, self.path.with_name(f"{self.path.name}.{self.n:04d}"))
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        return self.fd

    def files(self) -> list[bytes]:
        rotated = sorted(self.path.parent.glob(self.path.name + ".*"))
        return [p.read_bytes() for p in rotated] + [self.path.read_bytes()]


@pytest.mark.parametrize("use_splice", [True, False], ids=["splice", "read-write"])
def test_rotation_cuts_at_a_line_end_and_keeps_every_byte(tmp_path: Path, pipe: tuple[int, int],
                                                          use_splice: bool) -> None:
    r, w = pipe
    rot = Rotator(tmp_path / "r.log")
    copy = RawCopy(r, rot.fd, size=0, max_size=1000, rotate=rot, use_splice=use_splice)
    lines = b"".join(b"%04d" % i + b"." * 95 + b"\n" for i in range(25))     # 25 lines of 100 bytes
    long = b"L" * 2500 + b"\n"                                              # one line longer than a file
    pieces = [lines[k:k + 333] for k in range(0, len(lines), 333)]          # writes that end mid-line
    for piece in [*pieces, long, b"tail-without-newline"]:
        os.write(w, piece)
        while copy.step() > 0:
            pass
    sent = lines + long + b"tail-without-newline"
    os.close(w)
    while copy.step() != EOF:
        pass
    copy.close()
    files = rot.files()
    assert b"".join(files) == sent
    assert all(len(f) <= 1000 for f in files if not f.startswith(b"L")), [len(f) for f in files]
    assert all(f.endswith(b"\n") for f in files[:-1]), [f[-5:] for f in files]   # rotated files end at a line end
    assert long in files              # arriving whole, the long line fills a file alone (as RotatingFile does)


def test_a_full_disk_never_blocks_the_writer(pipe: tuple[int, int]) -> None:
    """/dev/full refuses every write (ENOSPC): the bytes still leave the pipe, counted."""
    r, w = pipe
    full = os.open("/dev/full", os.O_WRONLY)
    copy = RawCopy(r, full, size=0)
    os.set_blocking(w, False)
    sent = 0
    for _ in range(8):                        # 8 x 512 KiB: more than the pipe holds; it must keep draining
        sent += os.write(w, b"x" * (512 << 10))
        while copy.step() > 0:
            pass
    os.close(w)
    assert copy.step() == EOF
    assert copy.unwritten == sent > 4 * 65536 and copy.written == 0   # several pipe-fulls came out
    assert copy.error is not None and copy.error.errno == 28    # ENOSPC, for the caller to report
    copy.close()
    os.close(full)


def test_a_source_that_cannot_splice_falls_back(tmp_path: Path) -> None:
    """A regular file as the source (splice needs a pipe on one side): EINVAL, then read/write."""
    src = tmp_path / "src"
    src.write_bytes(b"0123456789" * 1000)
    rfd = os.open(src, os.O_RDONLY)
    dfd = os.open(tmp_path / "dst", os.O_WRONLY | os.O_CREAT, 0o640)
    copy = RawCopy(rfd, dfd, size=0)
    while copy.step() != EOF:
        pass
    assert (tmp_path / "dst").read_bytes() == src.read_bytes()
    assert not copy.use_splice and copy.copied == 10_000
    copy.close()
    os.close(rfd)
    os.close(dfd)


def test_line_cut_and_pipe_bytes(pipe: tuple[int, int]) -> None:
    assert line_cut(b"aa\nbb\ncc", 7, False) == 6
    assert line_cut(b"aa\nbb\ncc", 2, False) == 0          # no line end fits: the next file takes it
    assert line_cut(b"aaaaaa\nb", 3, True) == 7            # an empty file takes one long line alone
    assert line_cut(b"aaaaaa", 3, True) == 6
    r, w = pipe
    os.write(w, b"12345")
    assert pipe_bytes(r) == 5


def test_no_file_after_a_rotation_counts_the_bytes(tmp_path: Path, pipe: tuple[int, int]) -> None:
    """rotate() that could not open the next file (it returns -1): the rest is counted as
    unwritten and the pipe still drains; a retarget() to a file writes again."""
    r, w = pipe
    fd = os.open(tmp_path / "x.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    copy = RawCopy(r, fd, size=0, max_size=10, rotate=lambda: -1)
    os.write(w, b"12345\n67890\nabc\n")
    assert copy.step() == 16
    assert (tmp_path / "x.log").read_bytes() == b"12345\n" and copy.unwritten == 10 and copy.fd == -1
    os.write(w, b"more\n")
    assert copy.step() == 5 and copy.unwritten == 15
    copy.retarget(fd, os.fstat(fd).st_size)
    os.write(w, b"ok\n")
    assert copy.step() == 3 and (tmp_path / "x.log").read_bytes() == b"12345\nok\n" and copy.error is None
    copy.close()
    os.close(fd)


def test_tail_reads_back_what_was_written(tmp_path: Path, pipe: tuple[int, int]) -> None:
    r, w = pipe
    fd = os.open(tmp_path / "t.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)   # write-only, as logs are
    copy = RawCopy(r, fd, size=0)
    os.write(w, b"one\ntwo\nthree\n")
    copy.step()
    assert copy.tail(6) == b"three\n" and copy.tail(100) == b"one\ntwo\nthree\n"
    copy.close()
    os.close(fd)
