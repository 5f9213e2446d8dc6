"""Service output: capture, framing, rotation, forwarding, tails (docs/logs.md).

One owner: the keeper (herder.keeper.capture) holds every pipe and is the only writer of
log files; see `_pump` (threads, backpressure, drop), `_framing` (lines, timestamps,
JSON), `_files` (rotation, retention, gzip, disk full), `_forward` (journald, syslog,
Event Log), `_ring` (tails), `_console` (the foreground `name |` view), `_stdio` (every
line on herder's stdout/stderr: a container's logs; the keeper writes them too). The
decision process sees it through `LogHub` (herder.logs._hub): pipes at spawn, tails,
followers, exit tails and counters; `_own` writes herder.log through it.

Nothing is imported here eagerly: the keeper imports the capture modules of this
package and must not pay for the decision process's side (asyncio, the config schema).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from herder.logs._framing import Framer, Record, rfc3339
    from herder.logs._hub import LogHub
    from herder.runtime.ports import Host

__all__ = ["Framer", "LogHub", "Record", "install", "install_foreground", "rfc3339"]


def __getattr__(name: str) -> Any:
    if name in ("Framer", "Record", "rfc3339"):
        from herder.logs import _framing

        return getattr(_framing, name)
    if name == "LogHub":
        from herder.logs._hub import LogHub

        return LogHub
    raise AttributeError(name)


def install(sup: Host, *, console: bool | str = False, files: bool = True) -> LogHub:
    """herder.log (every supervisor event), the loop's own errors as rate-limited events, and
    what goes to herder's stdout, which the keeper writes: `console` True or "view" is the
    terminal view, "text" / "json" every line on stdout/stderr (herder.logs._stdio.console_mode
    chooses); `files` False keeps `auto` outputs in memory only (no per-service files)."""
    from herder.logs._own import LoopErrors, OwnLog

    hub = sup.logs
    hub.files = files
    sup.events.subscribe(OwnLog(hub))
    sup.components.append(LoopErrors(sup.events))
    hub.console = "view" if console is True else (str(console) if console else "off")
    return hub


def install_foreground(sup: Host) -> LogHub:
    """`herder up` in the foreground: files, herder.log, and `name |` lines on the terminal."""
    return install(sup, console=True)
