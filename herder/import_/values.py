"""Conversions every importer needs: herder durations, sizes and service names, and paths
placed relative to the written herder.toml.

Durations and sizes are written exactly (`1600ms`, not a rounded `2s`): an import that
rounds a timeout has changed behaviour without saying so.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")


def duration(seconds: float) -> str:
    """Exact herder duration text: 90 → "90s", 1.6 → "1600ms", 3600 → "1h"."""
    us = round(seconds * 1_000_000)
    if us == 0:
        return "0s"
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000),
                       ("ms", 1000)):
        if us % size == 0:
            return f"{us // size}{unit}"
    return f"{us}us"


def size(n: int) -> str:
    """Exact herder size text in the largest binary unit that divides it: 52428800 → "50MB"."""
    for unit, mult in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n and n % mult == 0:
            return f"{n // mult}{unit}"
    return f"{n}B"


def service_name(raw: str, taken: set[str]) -> str:
    """A valid, unused herder service name for `raw` (letters, digits, `-`, `_`)."""
    name = _NAME_BAD.sub("-", raw).strip("-_") or "service"
    if not name[0].isalnum():
        name = "s" + name
    base, n = name, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


class Places:
    """Paths as herder.toml should hold them: relative to its folder when inside it, else
    absolute (herder resolves relative paths against the config file's folder)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir.resolve()

    def place(self, path: str | Path, base: Path | None = None) -> str:
        p = Path(os.path.expanduser(str(path)))
        if not p.is_absolute():
            p = (base or self.out_dir) / p
        p = Path(os.path.normpath(p))
        try:
            rel = p.relative_to(self.out_dir)
        except ValueError:
            return str(p)
        return str(rel) if str(rel) != "." else "."
