"""systemd's value types (systemd.time(7), systemd.resource-control(5), systemd.exec(5)):
time spans, byte sizes, booleans, resource limits, CPU quotas. Each parser raises
ValueError saying what systemd accepts; the importer adds the file and line."""

from __future__ import annotations

import re

INFINITY = float("inf")
_TIME_UNITS = {
    "usec": 1e-6, "us": 1e-6, "µs": 1e-6, "msec": 1e-3, "ms": 1e-3, "seconds": 1.0, "second": 1.0, "sec": 1.0,
    "s": 1.0, "minutes": 60.0, "minute": 60.0, "min": 60.0, "m": 60.0, "hours": 3600.0, "hour": 3600.0,
    "hr": 3600.0, "h": 3600.0, "days": 86400.0, "day": 86400.0, "d": 86400.0, "weeks": 604800.0,
    "week": 604800.0, "w": 604800.0, "months": 2629800.0, "month": 2629800.0, "M": 2629800.0,
    "years": 31557600.0, "year": 31557600.0, "y": 31557600.0,
}
_TIME_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Zµ]*)")


def timespan(text: str, default_unit: float = 1.0) -> float:
    """Seconds; a bare number is in `default_unit` seconds. `infinity` → inf."""
    t = text.strip()
    if t == "infinity":
        return INFINITY
    if not t:
        raise ValueError("empty; expected a time span such as 90s, 5min or 1h 30min")
    total, pos = 0.0, 0
    while pos < len(t):
        m = _TIME_PART.match(t, pos)
        if not m or m.end() == pos:
            raise ValueError(f'"{text}" is not a time span; expected such as 90s, 500ms, 5min, 1h 30min or infinity')
        unit = m.group(2)
        if unit and unit not in _TIME_UNITS:
            raise ValueError(f'unknown time unit "{unit}" in "{text}"; expected us, ms, s, min, h, d, w, M or y')
        total += float(m.group(1)) * (_TIME_UNITS[unit] if unit else default_unit)
        pos = m.end()
    return total


def boolean(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "yes", "y", "true", "t", "on"):
        return True
    if t in ("0", "no", "n", "false", "f", "off"):
        return False
    raise ValueError(f'"{text}" is not a boolean; expected yes or no (also true/false, on/off, 1/0)')


_SIZE = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5, "E": 1024**6}


def size(text: str) -> int | float | str:
    """Bytes (K, M, G, T … are powers of 1024), `infinity` → inf, or a percentage kept as "N%"."""
    t = text.strip()
    if t == "infinity":
        return INFINITY
    if re.fullmatch(r"\d+(\.\d+)?%", t):
        return t
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGTPE]?)B?", t, flags=re.I)
    if not m:
        raise ValueError(f'"{text}" is not a size; expected bytes with K, M, G or T, a percentage, or infinity')
    return int(float(m.group(1)) * _SIZE[m.group(2).upper()])


def rlimit(text: str) -> tuple[int | float, int | float]:
    """(soft, hard) of a Limit*= value: `N`, `SOFT:HARD`, `infinity`."""
    parts = text.strip().split(":")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f'"{text}" is not a limit; expected a number, SOFT:HARD or infinity')
    vals: list[int | float] = []
    for p in parts:
        s = size(p)
        if isinstance(s, str):
            raise ValueError(f'"{text}" is not a limit; expected a number, SOFT:HARD or infinity')
        vals.append(s)
    return vals[0], vals[-1]


def cpu_quota(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)%", text.strip())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f'"{text}" is not a CPU quota; expected a percentage above 0 such as 50% or 200%')
    return float(m.group(1)) / 100


def exit_statuses(text: str) -> tuple[list[int], list[str]]:
    """SuccessExitStatus=: (exit codes, signal names)."""
    codes: list[int] = []
    signals: list[str] = []
    for word in text.split():
        if word.isdigit() and int(word) <= 255:
            codes.append(int(word))
        elif re.fullmatch(r"(SIG)?[A-Z0-9+]+", word):
            signals.append(word)
        else:
            raise ValueError(f'"{word}" is not an exit status; expected numbers 0-255 or signal names')
    return codes, signals
