"""Service output: capture, framing, rotation, forwarding, tails (docs/logs.md).

One owner: `LogHub` gives children pipes and is the only writer of log files; see
`_pump` (threads, backpressure, drop), `_framing` (lines, timestamps, JSON), `_files`
(rotation, retention, gzip, disk full), `_forward` (journald, syslog, Event Log),
`_ring` (tails), `_console` (the foreground `name |` view), `_own` (herder.log).
"""

from herder.logs._framing import Framer, Record, rfc3339
from herder.logs._hub import LogHub

__all__ = ["LogHub", "Framer", "Record", "rfc3339", "install", "install_foreground"]


def install(sup: object, *, console: bool = False) -> LogHub:
    """Wire capture into a Supervisor: the hub, herder.log and optionally the terminal view."""
    from herder.logs._own import LoopErrors, OwnLog

    hub = LogHub(sup.config, sup.events).install(sup)  # type: ignore[attr-defined]
    sup.logs = hub  # type: ignore[attr-defined]  # the API's /v1/logs finds it here
    sup.events.subscribe(OwnLog(hub))  # type: ignore[attr-defined]
    sup.components.append(LoopErrors(sup.events))  # type: ignore[attr-defined]  # loop errors: events, bounded
    if console:
        from herder.logs._console import ConsoleTap

        hub.console = ConsoleTap(list(sup.instances))  # type: ignore[attr-defined]
        hub.add_tap(hub.console)
    return hub


def install_foreground(sup: object) -> LogHub:
    """`herder up` in the foreground: files, herder.log, and `name |` lines on the terminal."""
    return install(sup, console=True)
