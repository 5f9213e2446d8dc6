"""Signals and console events in, one callback out; handlers restored on the way out.

Handlers do no work: they record the signal and hand it to the loop (the callback uses
``call_soon_threadsafe``), except the second SIGINT, which must work even when the loop
is stuck, so it calls ``on_force`` right in the handler.

Python runs signal handlers on the main thread only, but the kernel may deliver the
signal to any thread (a sync main, a shutdown step). The main thread, asleep in the
loop's select(), would then not notice until something else woke it. So a wakeup fd
(``signal.set_wakeup_fd``) is registered with the loop: the C-level handler writes to
it, select() returns, and the Python handler runs at once. Not on Windows: asyncio's
proactor loop registers a wakeup fd of its own there (and has no ``add_reader``).

Restoration follows uvicorn's ``capture_signals``: on exit the previous handlers are put
back and the signals that were not consumed are raised again, so a program that embeds
``run(exit=False)`` sees its own SIGINT/SIGTERM handling (KeyboardInterrupt, its own
handler, or the default action) after the graceful stop. With ``exit=True`` the stop
signal *is* consumed: it became the exit code.

On Windows, Ctrl+C and Ctrl+Break arrive as SIGINT/SIGBREAK; console close, logoff and
shutdown only through ``SetConsoleCtrlHandler``, whose handler must block until the
shutdown has run (Windows ends the process when it returns).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, ClassVar

log = logging.getLogger("herder.service")

STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGBREAK")
RELOAD_SIGNALS = ("SIGHUP",)


def _available(names: tuple[str, ...]) -> list[signal.Signals]:
    return [getattr(signal.Signals, n) for n in names if hasattr(signal.Signals, n)]


class SignalCatcher:
    """Context manager: installs the handlers on enter, restores (and re-raises) on exit."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_signal: Callable[[str], None],
        on_force: Callable[[], None],
        *,
        redeliver: bool,
    ) -> None:
        self._loop = loop
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._previous_wakeup = -1
        self._on_signal = on_signal
        self._on_force = on_force
        self._redeliver = redeliver
        self._previous: dict[signal.Signals, Any] = {}
        self._received: list[signal.Signals] = []
        self._console: _ConsoleEvents | None = None
        self.done = threading.Event()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        if sig == signal.SIGINT and signal.SIGINT in self._received:
            self._on_force()
            return
        self._received.append(sig)
        self._on_signal(sig.name)

    def _drain(self) -> None:
        """The wakeup bytes only serve to end select(); the handlers do the work."""
        assert self._wakeup is not None
        try:
            while self._wakeup[0].recv(512):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def __enter__(self) -> SignalCatcher:
        if threading.current_thread() is not threading.main_thread():
            log.debug("not on the main thread: signals are left to the host program")
            return self
        if sys.platform != "win32":   # Windows: the proactor loop has no add_reader, and wakes itself
            reader, writer = socket.socketpair()
            reader.setblocking(False)
            writer.setblocking(False)
            self._wakeup = (reader, writer)
            self._loop.add_reader(reader.fileno(), self._drain)
            self._previous_wakeup = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        for sig in _available(STOP_SIGNALS + RELOAD_SIGNALS):
            self._previous[sig] = signal.signal(sig, self._handle)
        if sys.platform == "win32":
            self._console = _ConsoleEvents(self._on_signal, self.done)
            self._console.install()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.done.set()
        if self._console is not None:
            self._console.remove()
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        if self._wakeup is not None:
            signal.set_wakeup_fd(self._previous_wakeup)
            if not self._loop.is_closed():
                self._loop.remove_reader(self._wakeup[0].fileno())
            for sock in self._wakeup:
                sock.close()
            self._wakeup = None
        if self._redeliver and exc is None:
            for sig in dict.fromkeys(self._received):
                if sig.name in STOP_SIGNALS:
                    signal.raise_signal(sig)


class _ConsoleEvents:
    """CTRL_CLOSE / CTRL_LOGOFF / CTRL_SHUTDOWN → stop. Windows only (ctypes, no pywin32).

    Installed by a console run under the Windows CPython in the Windows tier; the events
    themselves (closing the window, logging off) are not sent there.
    """

    _NAMES: ClassVar[dict[int, str]] = {2: "CTRL_CLOSE_EVENT", 5: "CTRL_LOGOFF_EVENT", 6: "CTRL_SHUTDOWN_EVENT"}

    def __init__(self, on_signal: Callable[[str], None], done: threading.Event) -> None:
        import ctypes
        from ctypes import wintypes

        self._kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined]
        prototype = ctypes.WINFUNCTYPE(wintypes.BOOL, wintypes.DWORD)  # type: ignore[attr-defined]
        self._callback = prototype(self._handle)
        self._on_signal = on_signal
        self._done = done

    def _handle(self, event: int) -> bool:
        name = self._NAMES.get(event)
        if name is None:
            return False  # Ctrl+C / Ctrl+Break: Python's own handler turns them into signals
        self._on_signal(name)
        self._done.wait(20.0)  # Windows kills us when we return; let the shutdown finish first
        return True

    def install(self) -> None:
        self._kernel32.SetConsoleCtrlHandler(self._callback, True)

    def remove(self) -> None:
        self._kernel32.SetConsoleCtrlHandler(self._callback, False)
