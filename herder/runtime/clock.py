"""The monotonic clock every deadline uses, injected so tests can replace it.

Wall-clock time is for display and logs only: a clock step (NTP, a VM resume) must never
fire or stall a restart or a stop timeout.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()
