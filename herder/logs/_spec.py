"""What the decision process and the keeper's capture say to each other about a stream.

A ChannelSpec is how the decision process describes one captured stream at spawn, and
`pack`/`unpack` carry a log record over the wire. They live here, not in
herder.keeper.capture, so that the decision process (herder.logs._hub) does not import the
keeper's capture machinery (pump threads, fast path, forwarding, rings) it never runs:
each module imported is memory held by a process that idles with its services
(docs/performance.md, issue 20).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from herder.logs._framing import Record


@dataclass(frozen=True)
class ChannelSpec:
    """One captured stream, as the decision process describes it (plain data)."""

    stream: str
    service: str
    sink: str | None = None          # the log file; None: captured for tails only (stderr = "null")
    max_size: int = 0
    max_files: int = 0
    rotate_every: float | None = None
    compress: bool = False
    timestamps: bool = True
    format: str = "text"
    max_line: int = 32 * 1024
    drop: bool = False
    limit: int = 4 << 20
    forward: tuple[str, ...] = ()
    file_mode: int = 0o640
    dir_mode: int = 0o750
    marker: str = ""                 # put before every line (a hook's output: "[hook pre_start] ")

    @classmethod
    def of(cls, raw: dict[str, Any]) -> ChannelSpec:
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        known["forward"] = tuple(known.get("forward", ()))
        return cls(**known)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def pack(r: Record) -> list[Any]:
    return [r.seq, r.ts, r.instance, r.stream, r.line.decode("utf-8", "surrogateescape")]


def unpack(x: list[Any]) -> Record:
    return Record(float(x[1]), str(x[2]), str(x[3]), str(x[4]).encode("utf-8", "surrogateescape"), int(x[0]))
