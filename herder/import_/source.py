"""Reading another tool's config file without trusting it.

An imported file is input like any other (fault-checklist.md): it may be empty, huge,
binary, a FIFO that never delivers, /dev/zero that never ends, or text in a wrong
encoding. Every importer reads through `read_source`, so each of those gets one clear
`FILE:LINE: problem; expected …` (a ConfigError, exit 2) instead of a hang or a traceback.

The file is opened with O_NONBLOCK and checked with fstat *after* opening, so a path
swapped for a FIFO between a check and the open still cannot block the import.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from herder.errors import ConfigError

MAX_BYTES = 16 * 1024 * 1024
"""Larger files are refused: no config of supervisord, PM2, foreman or systemd is this big."""


@dataclass(frozen=True)
class Source:
    """One file's text, with the path used in messages (as the user wrote it)."""

    path: Path
    text: str

    @property
    def dir(self) -> Path:
        return self.path.resolve().parent

    def where(self, line: int | None) -> str:
        return f"{self.path}:{line}" if line else f"{self.path}"


def display(path: Path) -> Path:
    """A path as messages show it: relative to the current folder when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()) if path.is_absolute() else path
    except ValueError:
        return path


def fail(where: str, problem: str) -> ConfigError:
    """The one error shape of an import: `FILE[:LINE]: problem`, exit 2."""
    return ConfigError([f"{where}: {problem}"])


def read_source(path: str | os.PathLike[str], what: str) -> Source:
    """Read a regular UTF-8 text file of at most MAX_BYTES. `what` names the expected
    content for messages ("a supervisord config"). A UTF-8 byte-order mark is dropped."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise fail(str(p), f"cannot open: {e.strerror or e}; expected {what}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise fail(str(p), f"{kind}; expected {what}")
        if st.st_size > MAX_BYTES:
            raise fail(str(p), f"too large ({st.st_size} bytes); expected {what} under {MAX_BYTES // 2**20} MiB")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_BYTES:
                raise fail(str(p), f"too large (over {MAX_BYTES // 2**20} MiB); expected {what}")
            chunks.append(chunk)
    except OSError as e:
        raise fail(str(p), f"cannot read: {e.strerror or e}; expected {what}") from None
    finally:
        os.close(fd)
    return Source(p, decode(b"".join(chunks), str(p), what))


def decode(data: bytes, where: str, what: str) -> str:
    """UTF-8 text (BOM dropped) with no NUL byte, else an error naming the line."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise fail(f"{where}:{line}", f"NUL byte in the file; expected {what} (text)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise fail(f"{where}:{line}", f"not UTF-8 text ({e.reason} at byte {e.start}); expected {what}") from None
