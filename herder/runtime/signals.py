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

SIGCHLD needs the same care (`install_reaper`): a child that exits while the self-pipe is
full loses its byte, and if no other child exits after it, nothing ever reaps it (seen:
a stop that hung forever on a zombie, when the SIGTERM that stopped the child was itself
handled before the full pipe was drained). asyncio's handler stays registered for the
wake-up fd it sets; the Python-level handler on top of it guarantees the reap. Calling the
reaper twice for one delivery is harmless: it reaps with waitpid(-1) until none is left.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any


def install(loop: asyncio.AbstractEventLoop, sig: int, callback: Callable[[], None]) -> Callable[[], None]:
    """Run callback on the loop for every delivery of sig; returns a function that restores the old handler."""

    def handler(signum: int, frame: Any) -> None:
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed
            pass

    old = signal.signal(sig, handler)
    # with this handler a full self-pipe loses nothing: keep CPython from reporting it
    fd = signal.set_wakeup_fd(-1)
    if fd != -1:
        signal.set_wakeup_fd(fd, warn_on_full_buffer=False)

    def restore() -> None:
        signal.signal(sig, old)

    return restore


def install_reaper(loop: asyncio.AbstractEventLoop, reap: Callable[[], None]) -> Callable[[], None]:
    """SIGCHLD → reap() on the loop for every delivery, even when the self-pipe is full.

    asyncio's add_signal_handler sets the loop's wake-up fd (it wakes the selector); the
    Python-level handler installed over it queues reap() whether or not that byte got
    through. Returns the function that removes both."""
    loop.add_signal_handler(signal.SIGCHLD, reap)
    restore = install(loop, signal.SIGCHLD, reap)

    def undo() -> None:
        restore()
        loop.remove_signal_handler(signal.SIGCHLD)

    return undo
