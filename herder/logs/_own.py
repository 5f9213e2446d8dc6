"""herder's own log: every supervisor event as one JSON object per line in {state_dir}/herder.log.

Structured so it can be searched (`jq 'select(.kind=="exit")'`), and written by the
keeper's writer thread (never the loop, and never lost with a crashed decision process
once handed over), rotated like service logs.
"""

from __future__ import annotations

import json

from herder.logs._framing import rfc3339
from herder.logs._hub import LogHub
from herder.runtime.events import LIVE_ONLY, Event

_LEVELS = {"exit": "warning", "failed": "error", "stop_timeout": "warning", "spawn_failed": "error", "bug": "error",
           "log_disk_full": "error", "log_write_error": "error", "log_dropped": "warning",
           "supervisor_restart": "warning", "keeper_lost": "error", "adopted": "info", "log_lost": "error"}


class OwnLog:
    """Subscribe to the event bus and hand each event to the keeper for herder.log."""

    def __init__(self, hub: LogHub) -> None:
        self.hub = hub

    def __call__(self, ev: Event) -> None:
        if ev.kind in LIVE_ONLY:   # STATUS= texts: streamed live, never written down
            return
        rec = {"ts": rfc3339(ev.ts), "level": _LEVELS.get(ev.kind, "info"), "instance": ev.instance,
               "kind": ev.kind, "message": ev.message, **ev.data}
        self.hub.write_own((json.dumps(rec, default=str, ensure_ascii=False) + "\n").encode())
