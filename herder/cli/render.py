"""How the CLI shows things to a person: the status table, durations, sizes, colour.

Colour only on a terminal, never in a pipe, and never when NO_COLOR is set (no-color.org)
or `--no-color` is given: a script that greps `herder status` must see plain text. On a
terminal the last column (why an instance is waiting or failed) wraps under itself to the
terminal's width; in a pipe or with `--wide` every instance stays on one line, so nothing
is ever cut (the issue an operator hit: "Fix it, then `" cut at 80 characters).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False   # not `from typing import …`: typing costs `herder status` ~3 ms; mypy reads this block
if TYPE_CHECKING:
    from collections.abc import Sequence  # collections: ~2 ms of `herder status`
    from typing import Any, TextIO

RESET = "\x1b[0m"
STYLES = {"green": "32", "red": "31", "yellow": "33", "blue": "34", "dim": "2", "bold": "1", "cyan": "36"}
STATE_STYLE = {"running": "green", "reloading": "green", "starting": "yellow", "waiting": "yellow",
               "backoff": "yellow", "stopping": "yellow", "failed": "red", "stopped": "dim", "exited": "dim"}
HEALTH_STYLE = {"healthy": "green", "unhealthy": "red", "unknown": "yellow"}


def use_colour(stream: TextIO, flag: bool | None = None) -> bool:
    """Colour for `stream`: never when told not to or NO_COLOR is set; else only on a terminal."""
    if flag is False or os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def paint(text: str, style: str | None, on: bool) -> str:
    if not on or not style or not text:
        return text
    return f"\x1b[{STYLES[style]}m{text}{RESET}"


def terminal_width(stream: TextIO) -> int | None:
    """The terminal's width for `stream` (COLUMNS wins), or None when it is not a terminal."""
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except OSError:
        return 80


def human_duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}T"  # pragma: no cover - the loop returns


def human_cpu(pct: float | None) -> str:
    return "-" if pct is None else f"{pct:.1f}%"


def note_of(r: dict[str, Any]) -> str:
    """Why an instance is where it is: the waiting/failure reason, STATUS=, or a manual stop."""
    note = str(r.get("reason") or r.get("status") or "")
    if r.get("held") and r["state"] == "stopped":
        note = note or "stopped by hand (stays stopped until `herder start`)"
    return note


def failed_stderr(r: dict[str, Any]) -> str:
    """The last stderr line of an instance that failed or exited badly ("" otherwise)."""
    bad = r["state"] in ("failed", "backoff") or (r["state"] == "exited" and r.get("exit") not in (0, None))
    return str(r.get("last_stderr") or "") if bad else ""


HEAD = ("NAME", "STATE", "PID", "UPTIME", "RESTARTS", "HEALTH", "CPU", "MEM", "EXIT")


def _cells(r: dict[str, Any]) -> tuple[str, ...]:
    return (r["name"], r["state"], str(r["pid"] or "-"), human_duration(r.get("uptime")), str(r["restarts"]),
            r.get("health") or "-", human_cpu(r.get("cpu")), human_bytes(r.get("rss")),
            "-" if r.get("exit") is None else str(r["exit"]))


def status_table(rows: Sequence[dict[str, Any]], *, colour: bool = False, width: int | None = None,
                 wide: bool = False) -> str:
    """Aligned columns, one instance a line, plus the note (reason) column.

    `width` (a terminal's) wraps the note under itself; None (a pipe) or `wide` keeps one
    line per instance with the whole note and, for a failed instance, its last stderr line."""
    table = [HEAD] + [_cells(r) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEAD))]
    indent = sum(widths) + 2 * len(widths)
    out = []
    for i, row in enumerate(table):
        r = rows[i - 1] if i else None
        styles: list[str | None] = ["bold"] * len(HEAD) if r is None else \
            [None, STATE_STYLE.get(row[1]), None, None, "yellow" if row[4] != "0" else None,
             HEALTH_STYLE.get(row[5]), None, None, "red" if row[8] not in ("-", "0") else None]
        cells = [paint(c.ljust(w), s, colour) if c.strip() else c.ljust(w)
                 for c, w, s in zip(row, widths, styles, strict=True)]
        line = "  ".join(cells)
        notes = [note_of(r), *(["stderr: " + failed_stderr(r)] if failed_stderr(r) else [])] if r else []
        notes = [n for n in notes if n]
        if width is None or wide:
            out.append((line + "  " + "; ".join(notes)).rstrip())
            continue
        import textwrap  # only on a terminal: piped output never wraps

        room = width - indent
        if room < 30:  # too narrow to wrap beside the columns: the note goes under the row
            out.append(line.rstrip())
            for n in notes:
                out.extend("    " + x for x in textwrap.wrap(n, max(20, width - 4)))
            continue
        parts = [x for n in notes for x in textwrap.wrap(n, room, subsequent_indent="  ")]
        out.append((line + "  " + (parts[0] if parts else "")).rstrip())
        out.extend(" " * indent + x for x in parts[1:])
    return "".join(x + "\n" for x in out)


def print_table(rows: Sequence[dict[str, Any]], *, no_colour: bool = False, wide: bool = False,
                stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    stream.write(status_table(rows, colour=use_colour(stream, False if no_colour else None),
                              width=terminal_width(stream), wide=wide))
