"""The import report: one entry per source setting, with what became of it.

A translation that silently drops `umask` or turns a linear retry delay into an
exponential one is how behaviour changes without anyone noticing. So every setting an
importer reads is recorded here as exactly one of:

- **carried**: herder does the same thing (the entry names the herder key and value);
- **approximated**: herder does something close; the note says how it differs;
- **not carried**: herder has no equivalent (yet: the note names the issue that adds it);
- **unknown**: the source tool does not know the key either (a typo, or a newer version).

Entries keep the source file and line, so the report reads like compiler output and an
editor can jump to each one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["carried", "approximated", "not carried", "unknown"]
STATUSES: tuple[Status, ...] = ("carried", "approximated", "not carried", "unknown")


@dataclass(frozen=True)
class Entry:
    """What became of one source setting."""

    file: str
    line: int | None
    scope: str      # where in the source: "[program:web]", "apps[0] (api)", "web.service [Service]"
    key: str        # the source key, as the source spells it
    value: str      # the source value, shortened for display
    status: Status
    target: str     # the herder key and value it became ("services.web.replicas = 2"), or ""
    note: str       # how it differs, or why it was not carried

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        what = f"{self.scope} {self.key}".strip()
        if self.value:
            what = f"{what} = {self.value}" if what else f'"{self.value}"'  # a whole line the source tool ignores
        text = f"{where}: {what}: {self.status}"
        if self.target:
            text += f" → {self.target}"
        if self.note:
            text += f" ({self.note})" if self.status == "carried" else f": {self.note}"
        return text


def shorten(value: str, limit: int = 80) -> str:
    """A source value as shown in reports and comments: one line, printable, bounded."""
    flat = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in value.replace("\n", " "))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def counts(entries: list[Entry]) -> dict[Status, int]:
    out: dict[Status, int] = dict.fromkeys(STATUSES, 0)
    for e in entries:
        out[e.status] += 1
    return out


def summary(entries: list[Entry]) -> str:
    c = counts(entries)
    return f"{len(entries)} settings: " + ", ".join(f"{c[s]} {s}" for s in STATUSES)


def render_text(title: str, entries: list[Entry]) -> str:
    lines = [title, summary(entries), ""]
    lines += [e.render() for e in entries]
    return "\n".join(lines) + "\n"


def render_json(title: str, entries: list[Entry]) -> str:
    return json.dumps({"title": title, "counts": counts(entries), "entries": [asdict(e) for e in entries]},
                      indent=1, ensure_ascii=False) + "\n"
