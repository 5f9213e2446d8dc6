"""`{state_dir}/intent.json`: instances an operator stopped by hand — kept twice.

A service stopped with `herder stop` stays stopped across a herder restart (and a reboot)
until someone starts it by hand. Losing that is not harmless: a service someone stopped
on purpose (a broken release, a runaway job) would come back. So the intent survives the
loss of any single file: every save writes `intent.json`, then the same record to
`intent.prev.json`, each atomically, each numbered (`generation`). Reading takes the
valid copy with the highest generation; a copy that is corrupt, empty, truncated or not
herder's is moved aside (`NAME.corrupt-<time>`) and reported, and the next save writes
both again. A crash between the two writes leaves one copy a generation ahead: the newer
one wins. Written off the loop by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from herder.store.atomic import load_json, write_json

FILES = ("intent.json", "intent.prev.json")


def check(doc: Any) -> str | None:
    """Why doc is not an intent record herder wrote, or None."""
    if not isinstance(doc, dict):
        return "is not an intent record (expected an object)"
    stopped, gen = doc.get("stopped"), doc.get("generation", 0)
    if not isinstance(stopped, list) or not all(isinstance(n, str) for n in stopped):
        return "\"stopped\" is not a list of instance names"
    if not isinstance(gen, int) or isinstance(gen, bool) or gen < 0:
        return "\"generation\" is not a count"
    return None


class Intent:
    def __init__(self, path: Path) -> None:
        """`path` is intent.json; its twin lives next to it. Nothing is read yet (`load`)."""
        self.path = path
        self.twin = path.with_name(FILES[1])
        self.held: set[str] = set()
        self.generation = 0
        self.problems: list[str] = []     # copies that could not be trusted (moved aside)

    def load(self) -> Intent:
        """Read both copies; keep the newest valid one; note (and move aside) the bad ones."""
        best: dict[str, Any] | None = None
        for path in (self.path, self.twin):
            got = load_json(path, check)
            if got.problem:
                self.problems.append(got.report(path))
            elif got.value is not None and (best is None or got.value.get("generation", 0) > best["generation"]):
                best = {**got.value, "generation": got.value.get("generation", 0)}
        if best is not None:
            self.held = set(best["stopped"])
            self.generation = int(best.get("generation", 0))
        if self.problems:
            self.problems[-1] += ("; using the other copy" if best is not None
                                  else "; no copy was left: every service counts as not stopped by hand")
        return self

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

    def snapshot(self) -> dict[str, Any]:
        self.generation += 1
        return {"stopped": sorted(self.held), "generation": self.generation}

    def save(self, snapshot: dict[str, Any]) -> None:
        write_json(self.path, snapshot)
        write_json(self.twin, snapshot)
