"""Parsing sd_notify datagrams: newline-separated VARIABLE=value assignments.

Real programs send several assignments in one datagram (gunicorn: "READY=1\\nSTATUS=…",
daemons: "READY=1\\nMAINPID=…"), so a datagram is a list of messages applied in order.
Unknown variables are kept (and ignored by the runtime) as systemd does; lines that are
not assignments, bad numbers and non-UTF-8 make the datagram count as garbage (a counted
warning, never a crash). Pure: bytes in, records out.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DATAGRAM = 4096   # systemd accepts up to PIPE_BUF-ish payloads; more is refused as oversized


@dataclass(frozen=True)
class Message:
    key: str
    value: str


class Garbage(ValueError):
    """A datagram herder will not act on; the message says why (for the counted warning)."""


_NUMERIC = {"MAINPID", "EXTEND_TIMEOUT_USEC", "ERRNO", "WATCHDOG_USEC"}


def parse(data: bytes) -> list[Message]:
    """Split one datagram into messages; raises Garbage for what must be ignored whole."""
    if len(data) > MAX_DATAGRAM:
        raise Garbage(f"oversized datagram ({len(data)} bytes; at most {MAX_DATAGRAM})")
    if b"\0" in data:
        raise Garbage("datagram contains a NUL byte")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Garbage("datagram is not UTF-8") from None
    out = []
    for line in text.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key or not key.replace("_", "").isalnum() or not key.isupper():
            raise Garbage(f"not a VARIABLE=value line: {line[:60]!r}")
        if key in _NUMERIC and not value.isdigit():
            raise Garbage(f"{key}= needs a whole number; got {value[:30]!r}")
        out.append(Message(key, value))
    if not out:
        raise Garbage("empty datagram")
    return out
