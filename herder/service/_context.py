"""What ``main`` receives: the ``ctx`` object and its ``stopping`` signal.

``ctx.stopping`` has to serve both kinds of main: async code awaits it (an
``asyncio.Event`` on the service's loop), sync code running in a worker thread calls
``wait(timeout)`` (a ``threading.Event``). Both are set together, on the loop thread.
Every other ctx call may come from either thread; calls from the worker are handed to
the loop with ``call_soon_threadsafe`` so the loop stays the one owner of state.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Generator
from typing import Any

from herder.service._errors import ServiceError
from herder.service._modes import Mode
from herder.service._shutdown import DEFAULT_STEP_TIMEOUT, ShutdownStack
from herder.units import seconds


class Stopping:
    """Becomes set once a stop is requested (signal, manager, console event, main's end).

    ``await ctx.stopping`` in async code; ``ctx.stopping.wait(timeout)`` in sync code;
    ``ctx.stopping.is_set()`` (or ``bool(ctx.stopping)``) anywhere.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._async = asyncio.Event()
        self._thread = threading.Event()
        self.reason: str | None = None

    def is_set(self) -> bool:
        return self._thread.is_set()

    def __bool__(self) -> bool:
        return self.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block the calling thread until stopping (or ``timeout`` seconds); return is_set().

        Refused on the event loop's own thread, where it would freeze the service:
        use ``await ctx.stopping`` there.
        """
        if _on_loop(self._loop):
            raise ServiceError(
                "ctx.stopping.wait() would block the event loop; use `await ctx.stopping`"
            )
        return self._thread.wait(timeout)

    def __await__(self) -> Generator[Any, None, bool]:
        return self._async.wait().__await__()

    def _set(self, reason: str) -> None:
        """Loop thread only."""
        if self.reason is None:
            self.reason = reason
        self._async.set()
        self._thread.set()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class Context:
    """The handle ``main`` and the hooks get. Cheap to call from any thread."""

    def __init__(
        self,
        name: str,
        mode: Mode,
        loop: asyncio.AbstractEventLoop,
        *,
        on_ready: Callable[[], None],
        on_status: Callable[[str], None],
        on_watchdog: Callable[[], None],
        shutdown: ShutdownStack,
    ) -> None:
        self.name = name
        self.mode = mode
        self.stopping = Stopping(loop)
        self._loop = loop
        self._on_ready = on_ready
        self._on_status = on_status
        self._on_watchdog = on_watchdog
        self._shutdown = shutdown

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        if _on_loop(self._loop):
            fn(*args)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    def ready(self) -> None:
        """Start-up is done: READY=1 / SERVICE_RUNNING to the manager. Idempotent."""
        self._call(self._on_ready)

    def status(self, text: str) -> None:
        """A one-line status for ``systemctl status`` / ``herder status``."""
        self._call(self._on_status, str(text))

    def watchdog(self) -> None:
        """Ping the watchdog by hand (only needed with ``Service(auto_watchdog=False)``)."""
        self._call(self._on_watchdog)

    def defer(
        self,
        fn: Callable[[], Any],
        *,
        timeout: float | str = DEFAULT_STEP_TIMEOUT,
        name: str | None = None,
    ) -> None:
        """Run ``fn`` at shutdown, after main, in reverse order of registration.

        ``fn`` may be sync (run in a worker thread) or async; it gets ``timeout``
        (``"5s"`` or seconds) before it is logged as overrun and left behind.
        """
        self._shutdown.push(fn, seconds(timeout), name)
