"""Signal intake for the loop that never loses a one-shot signal.

asyncio's add_signal_handler learns of a signal only through one byte written to its
self-pipe. Every call_soon_threadsafe from another thread writes a byte there too, and an
AF_UNIX socket is full after about 230 such writes (each costs a whole buffer's
accounting), so while the loop is busy (a batch of 200 spawns takes ~0.5 s) a burst of
thread wake-ups can fill it, and CPython then drops the signal's byte: a SIGTERM was seen
to vanish that way. Here a Python-level handler (CPython always runs it, in the main
thread, between bytecodes) only appends the callback to the loop's ready queue, which
holds it even when the wake-up byte is lost. The wake-up fd that asyncio set for SIGCHLD
still wakes the selector.

SIGCHLD gets both (`install_reaper`): add_signal_handler, whose byte wakes the selector
promptly, and the Python-level handler on top, so the reap is never lost. It was: with a
full self-pipe, the byte of the only SIGCHLD of a stop was dropped, the exit was never
reaped, and `down` hung (tests/runtime/test_core_signals.py caught it now and then).
Extra reaps are harmless: each one calls waitpid(-1) until nothing is left.

Every handler is installed with SA_RESTART (siginterrupt False), as asyncio's are, so a
signal does not turn a blocking call elsewhere into EINTR.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Any


def install(loop: asyncio.AbstractEventLoop, sig: int, callback: Callable[[], None]) -> Callable[[], None]:
    """Run callback on the loop for every delivery of sig; returns a function that restores the old handler."""

    def handler(signum: int, frame: Any) -> None:
        with contextlib.suppress(RuntimeError):   # the loop is closed
            loop.call_soon_threadsafe(callback)

    old = signal.signal(sig, handler)
    signal.siginterrupt(sig, False)
    # with this handler a full self-pipe loses nothing: keep CPython from reporting it
    fd = signal.set_wakeup_fd(-1)
    if fd != -1:
        signal.set_wakeup_fd(fd, warn_on_full_buffer=False)

    def restore() -> None:
        signal.signal(sig, old)

    return restore


def install_reaper(loop: asyncio.AbstractEventLoop, reap: Callable[[], None]) -> Callable[[], None]:
    """SIGCHLD -> reap(): woken by the loop's self-pipe, and never lost when that pipe is full."""
    sigchld = signal.Signals["SIGCHLD"]
    loop.add_signal_handler(sigchld, reap)
    undo = install(loop, sigchld, reap)

    def restore() -> None:
        undo()
        loop.remove_signal_handler(sigchld)

    return restore
