"""The runtime side of schedules: the wall clock told to the core, last runs kept on disk.

The core arms schedule timers on the monotonic time line from a wall-clock offset it is
told (herder.core.calendar). This adapter tells it: once at start (with the last run of
each scheduled service, read from `{state_dir}/schedules.json`, so runs missed while
herder was down can be told), and again before any event when the wall clock has moved
more than DRIFT seconds against the monotonic one (NTP, a resume from suspend). The core
asks for runs to be remembered with RecordRun; the file is replaced atomically.

`local_zone()` is the machine's time zone for schedules without `timezone`: $TZ, else
/etc/localtime (with its daylight-saving rules, not just today's offset), else UTC. It is
read at its first use: zoneinfo (which imports sysconfig) is ~0.2-0.3 MB that a decision
process whose config has no schedule would hold for nothing (issue 20; docs/performance.md).
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from herder.core.effects import RecordRun
from herder.core.events import WallClock
from herder.core.world import World
from herder.runtime.clock import Clock
from herder.store.atomic import load_json, write_json

DRIFT = 1.0          # seconds of wall-clock change (against monotonic) that re-arms the schedules
FILE = "schedules.json"


def local_zone() -> tzinfo:
    return LocalZone()


class LocalZone(tzinfo):
    """The machine's zone, found (`_find`) the first time a schedule asks; until then no
    zoneinfo. Every answer is the found zone's; `fromutc` hands it a datetime of its own
    (ZoneInfo and timezone insist) and gives the result back in this zone."""

    def __init__(self) -> None:
        super().__init__()
        self._zone: tzinfo | None = None

    def _z(self) -> tzinfo:
        if self._zone is None:
            self._zone = _find()
        return self._zone

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return self._z().utcoffset(dt)

    def dst(self, dt: datetime | None) -> timedelta | None:
        return self._z().dst(dt)

    def tzname(self, dt: datetime | None) -> str | None:
        return self._z().tzname(dt)

    def fromutc(self, dt: datetime) -> datetime:
        z = self._z()
        return z.fromutc(dt.replace(tzinfo=z)).replace(tzinfo=self)

    def __repr__(self) -> str:
        return f"LocalZone({self._zone!r})"


def _find() -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    tz = os.environ.get("TZ", "").lstrip(":")
    for key in ([tz] if tz else []):
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError, OSError):
            return ZoneInfo(key)
    with contextlib.suppress(OSError, ValueError), open("/etc/localtime", "rb") as f:
        return ZoneInfo.from_file(f, key="localtime")
    local = datetime.now().astimezone().tzinfo      # Windows and the like: today's offset only
    return local if local is not None else UTC


class Calendar:
    def __init__(self, clock: Clock, state_dir: Path) -> None:
        self.clock = clock
        self.path = state_dir / FILE
        self.last: dict[str, float] = {}

    def offset(self) -> float:
        return self.clock.wall() - self.clock.now()

    def first(self, world: World) -> WallClock:
        """The first WallClock, with the last runs of the scheduled services."""
        scheduled = {s for s, spec in world.config.services.items() if spec.schedule is not None}
        if scheduled:
            data = load_json(self.path).value     # a corrupt file is set aside: no missed runs told
            runs = data.get("last", {}) if isinstance(data, dict) else {}
            if isinstance(runs, dict):
                self.last = {k: float(v) for k, v in runs.items()
                             if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)}
        return WallClock(self.offset(), tuple((s, t) for s, t in sorted(self.last.items()) if s in scheduled))

    def drifted(self, world: World) -> WallClock | None:
        """A WallClock when the wall clock moved against what the core was told."""
        if not world.alarms or world.wall_offset is None:
            return None
        offset = self.offset()
        return WallClock(offset) if abs(offset - world.wall_offset) > DRIFT else None

    def record(self, eff: RecordRun) -> None:
        self.last[eff.service] = eff.wall
        write_json(self.path, {"version": 1, "last": self.last})
