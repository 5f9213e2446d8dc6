"""Worker threads that never receive a process signal.

Why: CPython runs signal handlers in the main thread, but the kernel delivers a process
signal to any thread that does not block it. The keeper blocks its signals in the main
thread before it drains its writer and execs (`herder upgrade`), so that a SIGTERM or
SIGCHLD arriving meanwhile stays pending in the kernel and reaches the new keeper; a
worker thread left unblocked would take it instead, and the exec would drop it. So every
thread of the log pipeline blocks them from its first instruction on.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

_SYNC = {getattr(signal, n) for n in ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL") if hasattr(signal, n)}


def worker(target: Callable[[], None], name: str) -> threading.Thread:
    """A daemon thread running `target` with every asynchronous signal blocked."""
    def run() -> None:
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals() - _SYNC)
        target()
    return threading.Thread(target=run, name=name, daemon=True)
