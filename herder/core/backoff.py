"""Restart delays and start limits, as pure functions of counts and times.

delay(n) = min(max, initial × factor^n), spread by ± jitter × delay with a caller-given
random number in [-1, 1] so the curve is deterministic under test.
"""

from __future__ import annotations

from collections import deque

from herder.config.model import Backoff, StartLimit


def delay(cfg: Backoff, n: int, spread: float = 0.0) -> float:
    """Delay before restart number n (0-based); `spread` in [-1, 1] picks the jitter."""
    base = cfg.initial
    for _ in range(n):
        base *= cfg.factor
        if base >= cfg.max:
            base = cfg.max
            break
    base = min(base, cfg.max)
    return max(0.0, base * (1.0 + cfg.jitter * max(-1.0, min(1.0, spread))))


def over_start_limit(cfg: StartLimit, failures: deque[float], now: float) -> bool:
    """Record a failed start at `now`; True when more than `burst` fall inside `interval`."""
    failures.append(now)
    while failures and failures[0] <= now - cfg.interval:
        failures.popleft()
    return len(failures) > cfg.burst
