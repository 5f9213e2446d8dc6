"""herder's own log: private, bounded, and rotated along with the stderr that shares it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from herdertest import run_async

from herder.logs._files import RotatingFile, open_log, rotated_files
from herder.logs._own import LoopErrors
from herder.runtime.events import Event, EventBus
from herder.testing import FakeClock


def test_rotation_takes_the_fds_that_share_the_file_along(tmp_path: Path) -> None:
    """Detached, herder's stdout/stderr are herder.log too: after a rotation they must write to
    the new file (before, they kept growing the rotated one forever)."""
    path = tmp_path / "herder.log"
    f = RotatingFile(path, max_size=100, max_files=5, rotate_every=None, compress=False, clock=FakeClock())
    stderr_like = os.dup(f.fd)             # stands for fd 2 in the daemon
    try:
        f.shared_fds = (stderr_like,)
        os.write(stderr_like, b"a traceback written straight to the fd, " * 2 + b"\n")   # 83 bytes f never saw
        f.write([b"an event line\n" * 2])                                                # 28: over max_size
        assert len(rotated_files(path)) == 1
        os.write(stderr_like, b"after\n")
        f.write([b"next\n"])
        assert path.read_bytes() == b"an event line\nafter\nnext\n"      # the first line filled the old file
        assert os.fstat(stderr_like).st_ino == os.stat(path).st_ino
    finally:
        os.close(stderr_like)
        f.close()


def test_log_files_and_folders_are_private_and_loose_ones_are_tightened(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        f = RotatingFile(tmp_path / "logs" / "deep" / "web.log", max_size=0, max_files=1, rotate_every=None,
                         compress=False, clock=FakeClock())
        f.close()
        assert (tmp_path / "logs").stat().st_mode & 0o777 == 0o750
        assert (tmp_path / "logs" / "deep" / "web.log").stat().st_mode & 0o777 == 0o640
        loose = tmp_path / "old.log"
        loose.write_text("")
        loose.chmod(0o644)
        os.close(open_log(loose, 0o640))
        assert loose.stat().st_mode & 0o777 == 0o640
        os.close(open_log(loose, 0o600))      # what the config says, either way
        assert loose.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_loop_errors_become_events_rate_limited() -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)

    async def body() -> None:
        loop = asyncio.get_running_loop()
        async with LoopErrors(bus):
            for _ in range(100):
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(24, "Too many open files")})

    run_async(body())
    assert [e.kind for e in seen] == ["loop_error"] * 4
    assert seen[0].message == "herder: socket.accept() out of system resource: OSError(24, 'Too many open files')"
    assert "repeated 97 more times" in seen[-1].message
