"""Service output: capture, framing, rotation, forwarding, tails (docs/logs.md).

One owner: `LogHub` (the supervisor's runtime owns one) gives children pipes and is the
only writer of log files; see `_pump` (threads, backpressure, drop), `_framing` (lines,
timestamps, JSON), `_files` (rotation, retention, gzip, disk full), `_forward`
(journald, syslog, Event Log), `_ring` (tails), `_console` (the foreground `name |`
view), `_stdio` (every line on herder's stdout/stderr: a container's logs), `_own`
(herder.log), `paths` (where each instance's files are).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from herder.logs._framing import Framer, Record, rfc3339
from herder.logs._hub import LogHub

if TYPE_CHECKING:
    from herder.runtime.ports import Host

__all__ = ["Framer", "LogHub", "Record", "install", "install_foreground", "rfc3339"]


def install(sup: Host, *, console: bool | str = False, files: bool = True) -> LogHub:
    """herder.log (every supervisor event), the loop's own errors as rate-limited events, and
    what goes to herder's stdout, on the supervisor's hub: `console` True or "view" is the
    terminal view, "text" / "json" every line on stdout/stderr (herder.logs._stdio.console_mode
    chooses); `files` False keeps `auto` outputs in memory only (no per-service files)."""
    from herder.logs._own import LoopErrors, OwnLog

    hub = sup.logs
    hub.files = files
    sup.events.subscribe(OwnLog(hub))
    sup.components.append(LoopErrors(sup.events))
    if console is True or console == "view":
        from herder.logs._console import ConsoleTap

        hub.console = ConsoleTap(list(sup.instances))
        hub.add_tap(hub.console)
    elif console in ("text", "json"):
        from herder.logs._stdio import StdioTap

        hub.stdio = StdioTap(list(sup.instances), str(console))
        hub.add_tap(hub.stdio)
    return hub


def install_foreground(sup: Host) -> LogHub:
    """`herder up` in the foreground: files, herder.log, and `name |` lines on the terminal."""
    return install(sup, console=True)
