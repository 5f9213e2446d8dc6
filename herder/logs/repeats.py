"""Repeats: identical messages rate-limited with a count, as syslog's "last message repeated
N times".

Why: an error that recurs at the rate of a loop (an accept() failing for want of file
descriptors retried hundreds of times a second) turned herder.log into 55 MB of the same
traceback in 20 s, crowding out everything else on the disk it shares with the services.
The first few of each kind in a window are let through; the rest are counted, and one
line says how many were held back when the window closes. Pure (the caller passes the
monotonic time) and used on the loop only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOW = 10.0      # seconds
BURST = 3          # identical messages let through per window


@dataclass
class _Seen:
    start: float
    passed: int = 0
    held: int = 0


@dataclass
class Repeats:
    window: float = WINDOW
    burst: int = BURST
    _seen: dict[str, _Seen] = field(default_factory=dict)

    def allow(self, key: str, now: float) -> tuple[bool, int]:
        """(let this one through?, how many identical ones were held back in the window that
        just closed — to be reported now, before it)."""
        s = self._seen.get(key)
        closed = 0
        if s is None or now - s.start >= self.window:
            closed = s.held if s is not None else 0
            s = self._seen[key] = _Seen(now)
            if len(self._seen) > 1000:     # bounded: forget the oldest kinds
                for old in sorted(self._seen, key=lambda k: self._seen[k].start)[:500]:
                    self._seen.pop(old)
                self._seen[key] = s
        if s.passed < self.burst:
            s.passed += 1
            return True, closed
        s.held += 1
        return False, closed

    def due(self, now: float) -> list[tuple[str, int]]:
        """Windows that closed with messages held back: (key, count); they are forgotten."""
        out = []
        for key, s in list(self._seen.items()):
            if now - s.start >= self.window:
                if s.held:
                    out.append((key, s.held))
                del self._seen[key]
        return out


def summary(count: int, message: str, window: float = WINDOW) -> str:
    return f"the previous message was repeated {count} more time{'s' if count != 1 else ''} within " \
           f"{window:g}s (held back): {message}"
