"""Durations as users write them: ``"250ms"``, ``"5s"``, ``"2m"``, or plain seconds.

The config layer has its own parser; this one is tiny and local so that importing
``herder.service`` does not pull the config package into every service process.
"""

from __future__ import annotations

import re

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h)\s*$")


def seconds(value: float | int | str) -> float:
    """Return ``value`` in seconds; raise ``ValueError`` naming the bad value."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '5s', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    match = _PATTERN.match(value)
    if match is None:
        raise ValueError(
            f"expected a duration like '250ms', '5s', '2m' or '1h', got {value!r}"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]
