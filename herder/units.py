"""Parsing of durations, sizes and signal names, shared by the config and the library.

Top-level and stdlib-only (re, signal) so `herder.service` can use it without importing
the config package into every service process.

Durations are strings with a unit ("250ms", "10s", "1m30s"); a bare number is refused so
that "10" can never silently mean ten milliseconds in one place and ten seconds in another.
Each parser raises ValueError with a message that says what was expected.
"""

from __future__ import annotations

import re
import signal
from datetime import UTC

_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h|d)")
_SIZE_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4,
               "K": 1024, "M": 1024**2, "G": 1024**3, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)")


def _clip(text: object) -> str:
    """A value for an error message: a huge one (a fuzzed config) shortened."""
    s = str(text)
    return s if len(s) <= 80 else f"{s[:60]}… ({len(s)} characters)"


def parse_duration(text: object) -> float:
    """'1m30s' -> 90.0 seconds. Raises ValueError naming the accepted form."""
    if not isinstance(text, str):
        raise ValueError(f'expected a duration string such as "10s" or "250ms"; got {_clip(repr(text))}')
    s = text.strip()
    pos, total = 0, 0.0
    if not s:
        raise ValueError('expected a duration such as "10s" or "250ms"; got an empty string')
    while pos < len(s):
        m = _DURATION_RE.match(s, pos)
        if not m:
            raise ValueError(f'expected a duration such as "10s", "250ms", "5m" or "1h"; got "{_clip(text)}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return total


def seconds(value: float | int | str) -> float:
    """A duration given in code: a number of seconds (≥ 0) or a duration string."""
    if isinstance(value, bool):
        raise ValueError(f'expected a duration such as "5s"; got {value!r}')
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative; got {value!r}")
        return float(value)
    return parse_duration(value)


def parse_size(text: object) -> int:
    """'50MB' -> 52428800 bytes (binary multiples, as every log tool uses)."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    if not isinstance(text, str):
        raise ValueError(f'expected a size such as "512KB" or "50MB"; got {_clip(repr(text))}')
    m = _SIZE_RE.fullmatch(text.strip())
    unit = m.group(2).upper() if m else None
    if not m or unit not in _SIZE_UNITS:
        raise ValueError(f'expected a size such as "512KB", "50MB" or "1GB"; got "{_clip(text)}"')
    value = float(m.group(1)) * _SIZE_UNITS[unit]
    if value >= 2**63:   # also inf, from hundreds of digits
        raise ValueError(f'"{_clip(text)}" is too large; expected a size below 8 EB')
    return int(value)


def parse_signal(text: object) -> signal.Signals:
    """'TERM', 'SIGTERM' or 15 -> signal.SIGTERM."""
    if isinstance(text, int) and not isinstance(text, bool):
        try:
            return signal.Signals(text)
        except ValueError:
            raise ValueError(f"expected a signal name such as TERM, INT, HUP or QUIT; got {_clip(text)}") from None
    if isinstance(text, str):
        name = text.strip().upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        try:
            return signal.Signals[name]
        except KeyError:
            pass
    raise ValueError(f'expected a signal name such as TERM, INT, HUP or QUIT; got "{_clip(text)}"')


def format_duration(seconds: float) -> str:
    """90.0 -> '1m30s'; used in messages and generated docs."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    out, rest = [], seconds
    for unit, size in (("h", 3600), ("m", 60)):
        if rest >= size:
            n = int(rest // size)
            out.append(f"{n}{unit}")
            rest -= n * size
    if rest:
        out.append(f"{rest:g}s")
    return "".join(out)


def parse_since(text: str) -> float:
    """A point in time as users type it -> unix seconds.

    "10m" (that long ago), unix seconds ("1700000000"), an RFC 3339 time
    ("2026-05-01T12:00:00Z", "…+02:00") or a bare date / date and time, read as local time
    (as a person typing it means). Raises ValueError saying what is accepted.
    """
    import time
    from datetime import datetime

    t = text.strip()
    try:
        return float(t)
    except ValueError:
        pass
    try:
        return time.time() - parse_duration(t)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f'expected a duration such as "10m", an RFC 3339 time such as 2026-05-01T12:00:00Z, '
                         f'or unix seconds; got "{_clip(text)}"') from None
    if dt.tzinfo is None:
        dt = dt.astimezone()
    return dt.astimezone(UTC).timestamp()


def stamp_ms(ts: float, fmt: str = "%Y-%m-%dT%H:%M:%S", utc: bool = True) -> str:
    """`fmt` plus ".mmm" for a unix time; seconds and milliseconds come from one integer so a
    time just before a second boundary never prints as the start of that second."""
    import time

    ms = int(ts * 1000)
    t = time.gmtime(ms // 1000) if utc else time.localtime(ms // 1000)
    return time.strftime(fmt, t) + f".{ms % 1000:03d}"
