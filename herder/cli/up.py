"""`herder up` in the foreground: supervise until Ctrl+C / SIGTERM, then stop in order."""

from __future__ import annotations

import asyncio
import sys
import time

from herder.cli.check import load_or_report
from herder.errors import UsageError
from herder.runtime.events import Event


def _print_event(ev: Event) -> None:
    stamp = time.strftime("%H:%M:%S", time.localtime(ev.ts)) + f".{int(ev.ts * 1000) % 1000:03d}"
    print(f"{stamp} {ev.message}", file=sys.stderr, flush=True)


def run_up(config_path: str | None, services: list[str]) -> int:
    from herder.runtime.supervisor import Supervisor

    _, cfg = load_or_report(config_path)
    if isinstance(cfg, int):
        return cfg
    unknown = [s for s in services if s not in cfg.services]
    if unknown:
        raise UsageError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(sorted(cfg.services)) or 'none'}")
    sup = Supervisor(cfg)
    from herder.health import install as install_health

    install_health(sup)   # readiness, probes, watchdog, $NOTIFY_SOCKET, limits
    sup.events.subscribe(_print_event)
    return asyncio.run(sup.run(services or None))
