"""Service output: capture, framing, rotation, forwarding, tails (docs/logs.md).

One owner: `LogHub` (the supervisor's runtime owns one) gives children pipes and is the
only writer of log files; see `_pump` (threads, backpressure, drop), `_framing` (lines,
timestamps, JSON), `_files` (rotation, retention, gzip, disk full), `_forward`
(journald, syslog, Event Log), `_ring` (tails), `_console` (the foreground `name |`
view), `_own` (herder.log), `paths` (where each instance's files are).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from herder.logs._framing import Framer, Record, rfc3339
from herder.logs._hub import LogHub

if TYPE_CHECKING:
    from herder.runtime.ports import Host

__all__ = ["Framer", "LogHub", "Record", "install", "install_foreground", "rfc3339"]


def install(sup: Host, *, console: bool = False) -> LogHub:
    """herder.log (every supervisor event), the loop's own errors as rate-limited events, and
    optionally the terminal view, on the supervisor's hub."""
    from herder.logs._own import LoopErrors, OwnLog

    hub = sup.logs
    sup.events.subscribe(OwnLog(hub))
    sup.components.append(LoopErrors(sup.events))
    if console:
        from herder.logs._console import ConsoleTap

        hub.console = ConsoleTap(list(sup.instances))
        hub.add_tap(hub.console)
    return hub


def install_foreground(sup: Host) -> LogHub:
    """`herder up` in the foreground: files, herder.log, and `name |` lines on the terminal."""
    return install(sup, console=True)
