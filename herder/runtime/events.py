"""The supervisor's event stream: every state change, spawn, exit and decision.

Subscribers (the console in the foreground, the journal, API streams) get each event in
order, on the loop. A subscriber must not block; one that raises is dropped from the bus
and the failure is reported once, so a broken consumer never stops supervision.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    ts: float                 # wall clock, for display
    instance: str             # "" for the supervisor itself
    kind: str                 # state | spawn | exit | restart | failed | stop_timeout | supervisor …
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "instance": self.instance, "kind": self.kind, "message": self.message, **self.data}


Subscriber = Callable[[Event], None]

# Kinds that are streamed live (and the last one kept in the status record) but never written
# to the journal or herder.log: a STATUS= text (ctx.status()) may change many times a second,
# and systemd keeps STATUS= out of its journal too (docs/api.md).
LIVE_ONLY = frozenset({"status"})


class EventBus:
    def __init__(self) -> None:
        self._subs: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subs.append(fn)
        return lambda: self._subs.remove(fn) if fn in self._subs else None

    def emit(self, instance: str, kind: str, message: str, data: dict[str, Any] | None = None) -> Event:
        ev = Event(time.time(), instance, kind, message, data or {})
        for fn in list(self._subs):
            try:
                fn(ev)
            except Exception as e:  # noqa: BLE001 - a consumer's bug must not stop supervision
                self._subs.remove(fn)
                print(f"herder: event consumer {fn!r} failed and was removed: {e!r}", file=sys.stderr)
        return ev
