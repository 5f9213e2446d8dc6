"""`herder up` in the foreground: supervise until Ctrl+C / SIGTERM, then stop in order."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from herder.cli.check import load_or_report
from herder.errors import UnknownService

if TYPE_CHECKING:   # `herder up` checks the config and execs the keeper: asyncio is the decision process's
    from collections.abc import Callable

    from herder.config import Config
    from herder.runtime.events import Event


def _shown(ev: Event) -> bool:
    """herder's own lines in the foreground: spawns, exits, decisions, stops. The routine
    steps of a start (-> waiting, -> starting) are left to `herder events` and the journal."""
    to, why = ev.data.get("to"), ev.data.get("reason")
    return not (ev.kind == "state" and (to == "starting" or (to == "waiting" and why == "dependencies")))


def _print_event(ev: Event) -> None:
    from herder.units import stamp_ms

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
              ready: Callable[[], None] | None = None, console: bool | None = False, print_events: bool = True,
              keeper: Any = None, welcome: dict[str, Any] | None = None, fresh: bool = False) -> int:
    """Build the supervisor with its components and run it to the end. `keeper`: the link
    to the keeper that runs this process (herder.runtime.dp); without one the supervisor
    starts an attached keeper of its own.

    `console` is --console / --no-console (None: neither). What reaches herder's stdout
    follows [herder] console and log_files, whose `auto` depends on whether herder is a
    container's init (herder.runtime.container, docs/container.md): the keeper, which is
    that init, says so in its welcome and writes the lines (herder.keeper.capture)."""
    import asyncio

    from herder.control.component import Control, ControlOptions
    from herder.logs import install as install_logs
    from herder.logs._stdio import HerderLines, console_mode, files_on
    from herder.runtime import container
    from herder.runtime.keeper_lost import replace_keeper
    from herder.runtime.supervisor import Supervisor

    init = container.of_keeper((welcome or {}).get("init")) if keeper is not None else container.detect()
    mode = console_mode(cfg.herder.console, console, init.container_init, sys.stdout.isatty())
    # with readiness, probes, watchdog, $NOTIFY_SOCKET, limits; capture is the keeper's
    sup = Supervisor(cfg, keeper=keeper, welcome=welcome, fresh=fresh, init=init)
    if keeper is not None:
        sup.on_keeper_lost = lambda: replace_keeper(sup, services, socket_group, console, print_events)
    from herder.process import usage

    usage.attach(sup)       # cpu / rss / procs in status records, sampled per request
    hub = install_logs(sup, console=mode, files=files_on(cfg.herder.log_files, init.container_init))
    if mode in ("text", "json"):   # a container's logs: herder's lines among the services' (always shown)
        sup.events.subscribe(HerderLines(hub, _shown))
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


def dp_args(config_path: str | None, services: list[str], socket_group: str | None, console: bool | None,
            print_events: bool = True) -> list[str]:
    """The decision process's arguments (herder.runtime.dp), as the keeper passes them on."""
    out = ["-c", os.path.abspath(config_path)] if config_path else []
    if socket_group:
        out += ["--socket-group", socket_group]
    if console is not None:
        out.append("--console" if console else "--no-console")
    if not print_events:
        out.append("--quiet")
    return out + ["--", *services] if services else out


def exec_keeper(config_path: str | None, services: list[str], *, socket_group: str | None, console: bool | None,
                ready_fd: int = -1, print_events: bool = True) -> None:
    """Become the keeper (same pid: the terminal's job, systemd's MainPID, a container's PID 1),
    which runs the decision process. Returns only if the exec failed (OSError). What the
    keeper writes to stdout the decision process chooses (`console`, the config, the container)."""
    argv = [sys.executable, "-P", "-m", "herder.keeper"]   # -P: never a herder/ in the cwd
    if ready_fd >= 0:
        os.set_inheritable(ready_fd, True)
        argv += ["--ready-fd", str(ready_fd)]
    sys.stdout.flush()
    sys.stderr.flush()
    from herder.keeper.wire import self_exe

    os.execv(self_exe(), [*argv, "--", *dp_args(config_path, services, socket_group, console, print_events)])


def run_up(config_path: str | None, services: list[str], *, socket_group: str | None = None,
           console: bool | None = None) -> int:
    """Foreground. The `name | line` view is on when stdout is a terminal: under systemd
    (stdout = the journal) or redirected to a file it would copy every service's output a
    second time, and it costs the capture path a Python step per line (4x slower floods).
    The config is checked here first, so a bad one is reported before anything starts. As a
    container's init, every line goes to stdout/stderr instead (the engine's logs)."""
    cfg = load_for_up(config_path, services)
    if isinstance(cfg, int):
        return cfg
    exec_keeper(str(cfg.path), services, socket_group=socket_group, console=console)
    return 1
