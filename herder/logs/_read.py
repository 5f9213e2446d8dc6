"""Reading log files back for `herder logs`: last lines of each instance, merged by time.

Works without a running supervisor (the files are the record). Lines carry their time
when the service logs with timestamps (text prefix) or as JSON; raw lines have no time of
their own and are shown after the timed ones of the same file, in file order.
"""

from __future__ import annotations

import base64
import calendar
import heapq
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from herder.config import Config
from herder.core.instance import instance_names
from herder.logs.paths import output_path

_TS_RE = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z ")


@dataclass(frozen=True)
class Line:
    ts: float | None
    instance: str
    stream: str
    text: bytes


def parse_ts(stamp: str) -> float:
    """'2024-05-01T12:00:00.123Z' → epoch seconds."""
    base, _, ms = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(ms or 0) / 1000


def instance_files(cfg: Config, only: list[str] | None = None) -> list[tuple[str, str, Path]]:
    """(instance, stream, path) for every captured file the config describes."""
    out = []
    config_dir = cfg.path.resolve().parent
    for svc, spec in cfg.services.items():
        if only and svc not in only and not any(o.startswith(svc + ".") for o in only):
            continue
        for name, replica in instance_names(svc, spec.replicas):
            if only and svc not in only and name not in only:
                continue
            for stream, mode in (("stdout", spec.logs.stdout), ("stderr", spec.logs.stderr)):
                path = output_path(mode, name, replica, stream, log_dir=cfg.log_dir, config_dir=config_dir)
                if path is None:
                    continue
                out.append((name, stream if spec.logs.stderr != "merge" else "", path))
    return out


def last_lines(path: Path, n: int, block: int = 64 * 1024) -> list[bytes]:
    """The last n lines of a file, reading backwards (n <= 0: all)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the `with f` below; a missing file is no error
    except FileNotFoundError:
        return []
    with f:
        size = os.fstat(f.fileno()).st_size
        if n <= 0:
            return f.read().splitlines()
        data, pos = b"", size
        while pos > 0 and data.count(b"\n") <= n:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
        lines = data.splitlines()
        return lines[-n:]


def parse_line(raw: bytes, instance: str, stream: str) -> Line:
    if raw.startswith(b"{"):
        try:
            obj = json.loads(raw)
            text = obj.get("line", "")
            data = (base64.b64decode(obj["line_b64"]) if "line_b64" in obj
                    else text.encode("utf-8", "surrogateescape"))
            return Line(parse_ts(obj["ts"]), obj.get("instance", instance), obj.get("stream", stream), data)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    m = _TS_RE.match(raw)
    if m:
        return Line(parse_ts(f"{m.group(1).decode()}.{m.group(2).decode()}Z"), instance, stream, raw[m.end():])
    return Line(None, instance, stream, raw)


def read_tail(cfg: Config, only: list[str] | None, n: int, since: float | None) -> list[Line]:
    """The last n lines of each selected instance (n <= 0: all), merged oldest first.

    n is per instance (docs/logs.md), like `tail -n` on each file: `herder logs -n 5` of a
    service with three replicas shows up to 15 lines, so a chatty replica cannot hide the
    others. An instance's stdout and stderr files together give its n."""
    by_instance: dict[str, list[list[Line]]] = {}
    for instance, stream, path in instance_files(cfg, only):
        lines = [parse_line(x, instance, stream or "stdout") for x in last_lines(path, n)]
        if since is not None:
            lines = [x for x in lines if x.ts is not None and x.ts >= since]
        by_instance.setdefault(instance, []).append(lines)
    streams = []
    for files in by_instance.values():
        mine = [x for _, _, x in heapq.merge(*(_with_order(f) for f in files), key=lambda t: (t[0], t[1]))]
        streams.append(_with_order(mine[-n:] if n > 0 else mine))
    return [x for _, _, x in heapq.merge(*streams, key=lambda t: (t[0], t[1]))]


def _with_order(lines: list[Line]) -> Iterator[tuple[float, int, Line]]:
    last = float("-inf")
    for i, x in enumerate(lines):
        if x.ts is not None:
            last = x.ts
        yield (last, i, x)
