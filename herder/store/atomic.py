"""Atomic file replacement: write a temporary file, fsync it, rename it over the old one.

A crash at any moment leaves either the old file or the new one, never a torn one.
Portable: Windows has no O_CLOEXEC (its handles are not inherited unless asked), needs
O_BINARY (else every "\n" is written as "\r\n"), and cannot open a directory to fsync
it (``os.replace`` is MoveFileEx with MOVEFILE_REPLACE_EXISTING there).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, _FLAGS, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    """The decoded file, or None when it is missing or unreadable (never half-written)."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
