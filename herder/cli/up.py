"""`herder up` in the foreground: supervise until Ctrl+C / SIGTERM, then stop in order."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable

from herder.cli.check import load_or_report
from herder.config import Config
from herder.errors import UnknownService
from herder.runtime.events import Event
from herder.units import stamp_ms


def _print_event(ev: Event) -> None:
    """herder's own lines in the foreground: spawns, exits, decisions, stops. The routine
    steps of a start (-> waiting, -> starting) are left to `herder events` and the journal."""
    if ev.kind == "state" and (ev.data.get("to") == "starting"
                               or (ev.data.get("to") == "waiting" and ev.data.get("reason") == "dependencies")):
        return
    print(f"{stamp_ms(ev.ts, '%H:%M:%S', utc=False)} {ev.message}", file=sys.stderr, flush=True)


def load_for_up(config_path: str | None, services: list[str]) -> Config | int:
    """The validated config, or the exit code after printing every error; unknown services are a usage error."""
    _, cfg = load_or_report(config_path)
    if isinstance(cfg, int):
        return cfg
    unknown = [s for s in services if s not in cfg.services]
    if unknown:
        raise UnknownService(unknown, sorted(cfg.services))
    return cfg


def supervise(cfg: Config, services: list[str], *, socket_group: str | None = None,
              ready: Callable[[], None] | None = None, console: bool = False, print_events: bool = True) -> int:
    """Build the supervisor with its components and run it to the end (foreground or daemon)."""
    from herder.control.component import Control, ControlOptions
    from herder.logs import install as install_logs
    from herder.runtime.supervisor import Supervisor

    sup = Supervisor(cfg)   # with readiness, probes, watchdog, $NOTIFY_SOCKET, limits and log capture
    from herder.process import usage

    usage.attach(sup)       # cpu / rss / procs in status records, sampled per request
    if print_events:        # the foreground's lines; a daemon has them in herder.log (JSON) already
        sup.events.subscribe(_print_event)
    install_logs(sup, console=console)  # the `name |` view: foreground, on a terminal (or --console)
    sup.components.append(Control(sup, ControlOptions(socket_group=socket_group)))
    # the per-user index (herder.control.discovery) lets `herder status -c CONFIG` find this
    # supervisor whatever its state_dir; noted once it holds the lock and listens
    from herder.control.discovery import SocketNote

    note = SocketNote(str(cfg.path.resolve()), os.path.abspath(cfg.state_dir / "herder.sock"))

    def started() -> None:
        note.write()
        if ready is not None:
            ready()

    try:
        return asyncio.run(sup.run(services or None, ready=started))
    finally:
        note.remove()


def run_up(config_path: str | None, services: list[str], *, socket_group: str | None = None,
           console: bool | None = None) -> int:
    """Foreground. The `name | line` view is on when stdout is a terminal: under systemd
    (stdout = the journal) or redirected to a file it would copy every service's output a
    second time, and it costs the capture path a Python step per line (4x slower floods)."""
    cfg = load_for_up(config_path, services)
    if isinstance(cfg, int):
        return cfg
    if console is None:
        console = sys.stdout.isatty()
    return supervise(cfg, services, socket_group=socket_group, console=console)
