"""`{state_dir}/intent.json`: instances an operator stopped by hand.

A service stopped with `herder stop` stays stopped across a herder restart (and a reboot)
until someone starts it by hand; a crash of herder while writing leaves the old file
(write_json is atomic), never a torn one. Written off the loop by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from herder.store.atomic import read_json, write_json


class Intent:
    def __init__(self, path: Path) -> None:
        self.path = path
        raw = read_json(path)
        held = raw.get("stopped") if isinstance(raw, dict) else None
        self.held: set[str] = {str(n) for n in held} if isinstance(held, list) else set()

    def hold(self, names: Iterable[str]) -> bool:
        """Mark instances as stopped by hand; True when that changed anything."""
        before = len(self.held)
        self.held.update(names)
        return len(self.held) != before

    def release(self, names: Iterable[str]) -> bool:
        names = set(names)
        changed = bool(self.held & names)
        self.held -= names
        return changed

    def snapshot(self) -> dict[str, list[str]]:
        return {"stopped": sorted(self.held)}

    def save(self, snapshot: dict[str, list[str]]) -> None:
        write_json(self.path, snapshot)
