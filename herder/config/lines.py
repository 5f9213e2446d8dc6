"""Find the line of a key path in a TOML text, for error messages.

tomllib returns plain dicts with no positions, so this module scans the text once and
records, for every table header and every `key = value` line, the dotted path it defines.
A lookup returns the line of the longest recorded prefix of the path, so a key inside an
inline table (`backoff = { factor = 0.5 }`) resolves to the line of `backoff`.
"""

from __future__ import annotations

import re

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"' + r"|'[^']*'"
_KEY = rf"(?:{_BARE}|{_QUOTED})"
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER_RE = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_ASSIGN_RE = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART_RE = re.compile(_KEY)


def _split(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in _PART_RE.findall(dotted))


class LineIndex:
    """Maps dotted key paths of one TOML document to 1-based line numbers."""

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        in_multiline: str | None = None
        depth = 0  # open brackets of a multi-line array/inline table on earlier lines
        for n, line in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if in_multiline in line:
                    in_multiline = None
                continue
            if depth == 0:
                m = _HEADER_RE.match(line)
                if m and not _ASSIGN_RE.match(line):
                    table = _split(m.group(1))
                    for cut in range(1, len(table) + 1):  # `[service.typo]` also defines `service`
                        self._lines.setdefault(table[:cut], n)
                    continue
                m = _ASSIGN_RE.match(line)
                if m:
                    self._lines.setdefault(table + _split(m.group(1)), n)
            code = line.split("#", 1)[0] if '"' not in line and "'" not in line else line
            for quote in ('"""', "'''"):
                if code.count(quote) % 2 == 1:
                    in_multiline = quote
            depth = max(0, depth + code.count("[") + code.count("{") - code.count("]") - code.count("}"))

    def line_of(self, path: tuple[str, ...]) -> int | None:
        """Line of `path`, else of its longest recorded prefix, else of the first key under it, else None."""
        for cut in range(len(path), 0, -1):
            line = self._lines.get(path[:cut])
            if line is not None:
                return line
        # a shortened path (a key nested too deeply is reported by its first parts)
        return next((line for key, line in self._lines.items() if key[:len(path)] == path), None) if path else None
