"""sd_notify, written out: one AF_UNIX datagram per message, no dependency.

The protocol is small enough that a library (python-systemd, sdnotify) would cost more
than it saves, and the herder supervisor serves the same protocol, so this client is
also how a program talks to herder. Send errors are logged once and never raised: a
manager that went away must not crash the service it was supervising.
"""

from __future__ import annotations

import logging
import socket
import time

from herder.service._report import NullReporter

log = logging.getLogger("herder.service")


def _address(notify_socket: str) -> str:
    """``@name`` is an abstract socket (leading NUL), anything else a filesystem path."""
    if notify_socket.startswith("@"):
        return "\0" + notify_socket[1:]
    return notify_socket


class Notifier:
    """Sends sd_notify messages to one socket; keeps the socket open between sends."""

    def __init__(self, notify_socket: str) -> None:
        self._address = _address(notify_socket)
        self._display = notify_socket
        self._sock: socket.socket | None = None
        self._warned = False

    def send(self, message: str) -> bool:
        """Send ``message`` (``KEY=VALUE`` lines); return whether it was delivered."""
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.sendto(message.encode("utf-8"), self._address)
        except OSError as exc:
            if not self._warned:
                log.warning(
                    "cannot notify the service manager at %s: %s (further errors are not logged)",
                    self._display,
                    exc,
                )
                self._warned = True
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class NotifyReporter(NullReporter):
    """Reports to systemd or herder. Steps and ticks need no message: the manager's
    stop timeout already covers the whole shutdown."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    def ready(self) -> None:
        self._notifier.send("READY=1")

    def status(self, text: str) -> None:
        self._notifier.send("STATUS=" + " ".join(text.splitlines()))

    def watchdog(self) -> None:
        self._notifier.send("WATCHDOG=1")

    def reloading(self) -> None:
        # systemd >= 253 (Type=notify-reload) wants the monotonic timestamp with it.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._notifier.send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def reloaded(self) -> None:
        self._notifier.send("READY=1")

    def stopping(self, budget: float | None) -> None:
        self._notifier.send("STOPPING=1")

    def stopped(self, exit_code: int) -> None:
        self._notifier.close()
