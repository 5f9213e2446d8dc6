"""herder's own log: every supervisor event as one JSON object per line in {state_dir}/herder.log.

Structured so it can be searched (`jq 'select(.kind=="exit")'`), written by the log
writer thread (never the loop) and rotated like service logs.
"""

from __future__ import annotations

import json

from herder.config.model import Logs
from herder.logs._files import RotatingFile
from herder.logs._framing import rfc3339
from herder.logs._hub import LogHub
from herder.runtime.events import LIVE_ONLY, Event

_LEVELS = {"exit": "warning", "failed": "error", "stop_timeout": "warning", "spawn_failed": "error", "bug": "error",
           "log_disk_full": "error", "log_write_error": "error", "log_dropped": "warning"}


class OwnLog:
    """Subscribe to the event bus and append each event to herder.log through the hub's writer."""

    def __init__(self, hub: LogHub, settings: Logs | None = None) -> None:
        s = settings or Logs()
        self.hub = hub
        self.file = RotatingFile(hub.config.state_dir / "herder.log", max_size=s.max_size, max_files=s.max_files,
                                 rotate_every=s.rotate_every, compress=s.compress, clock=hub.clock,
                                 compressor=hub.compressor, label="herder")
        hub.sinks[self.file.path] = self.file

    def __call__(self, ev: Event) -> None:
        if ev.kind in LIVE_ONLY:   # STATUS= texts: streamed live, never written down
            return
        rec = {"ts": rfc3339(ev.ts), "level": _LEVELS.get(ev.kind, "info"), "instance": ev.instance,
               "kind": ev.kind, "message": ev.message, **ev.data}
        line = (json.dumps(rec, default=str, ensure_ascii=False) + "\n").encode()
        self.hub.pump.in_writer(lambda: self.file.write([line]))
