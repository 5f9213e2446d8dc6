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


def _shown(ev: Event) -> bool:
    """herder's own lines in the foreground: spawns, exits, decisions, stops. The routine
    steps of a start (-> waiting, -> starting) are left to `herder events` and the journal."""
    to, why = ev.data.get("to"), ev.data.get("reason")
    return not (ev.kind == "state" and (to == "starting" or (to == "waiting" and why == "dependencies")))


def _print_event(ev: Event) -> None:
    if _shown(ev):
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
              ready: Callable[[], None] | None = None, console: bool | None = False, print_events: bool = True) -> int:
    """Build the supervisor with its components and run it to the end (foreground or daemon).

    `console` is --console / --no-console (None: neither). What reaches herder's stdout
    follows [herder] console and log_files, whose `auto` depends on whether herder is a
    container's init (herder.runtime.container, docs/container.md)."""
    from herder.control.component import Control, ControlOptions
    from herder.logs import install as install_logs
    from herder.logs._stdio import HerderLines, console_mode, files_on
    from herder.runtime import container
    from herder.runtime.supervisor import Supervisor

    init = container.detect()
    mode = console_mode(cfg.herder.console, console, init.container_init, sys.stdout.isatty())
    sup = Supervisor(cfg, init=init)   # with readiness, probes, watchdog, $NOTIFY_SOCKET, limits and log capture
    from herder.process import usage

    usage.attach(sup)       # cpu / rss / procs in status records, sampled per request
    hub = install_logs(sup, console=mode, files=files_on(cfg.herder.log_files, init.container_init))
    if hub.stdio is not None:   # a container's logs: herder's lines among the services' (always shown)
        sup.events.subscribe(HerderLines(hub, hub.stdio, _shown))
    elif print_events:      # the foreground's lines; a daemon has them in herder.log (JSON) already
        sup.events.subscribe(_print_event)
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
        code = asyncio.run(sup.run(services or None, ready=started))
    finally:
        note.remove()
    if code and init.container_init:
        container.write_termination_message(sup.world.exit_reason or f"herder exited with code {code}")
    return code


def run_up(config_path: str | None, services: list[str], *, socket_group: str | None = None,
           console: bool | None = None) -> int:
    """Foreground. The `name | line` view is on when stdout is a terminal: under systemd
    (stdout = the journal) or redirected to a file it would copy every service's output a
    second time, and it costs the capture path a Python step per line (4x slower floods).
    As a container's init, every line goes to stdout/stderr instead (the engine's logs)."""
    cfg = load_for_up(config_path, services)
    if isinstance(cfg, int):
        return cfg
    return supervise(cfg, services, socket_group=socket_group, console=console)
