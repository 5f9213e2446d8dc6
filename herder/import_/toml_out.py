"""Write a Draft as herder.toml text, with its comments.

A small emitter rather than a TOML library: the output needs comment lines placed above
particular keys and at the end of tables (tomli-w writes no comments), and golden tests
need byte-stable output that does not move with a library's formatting choices (tomlkit
changes its spacing across versions). What it writes is narrow — strings, integers,
floats, booleans, lists of those and flat inline tables — and exactness is proven by a
property test: for any such value, tomllib reads back exactly what was written
(tests/import_/test_toml_out.py).
"""

from __future__ import annotations

import math
import re
from typing import Any

from herder.import_.draft import Draft, Table

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
INLINE_ENV_MAX = 3
"""An env table with more variables than this is written as its own [services.X.env] table."""


def string(s: str) -> str:
    out = []
    for c in s:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        elif 0xD800 <= ord(c) <= 0xDFFF:
            raise ValueError(f"a lone surrogate (U+{ord(c):04X}) cannot be written to TOML")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def key(k: str) -> str:
    return k if _BARE_KEY.match(k) else string(k)


def value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{v} cannot be written to herder.toml")
        return repr(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise TypeError(f"cannot write {type(v).__name__} to herder.toml")


def comment(text: str) -> str:
    """A comment line; TOML forbids control characters in comments, so they are shown escaped."""
    flat = "".join(c if c == "\t" or (ord(c) >= 0x20 and ord(c) != 0x7F and not 0xD800 <= ord(c) <= 0xDFFF)
                   else ascii(c)[1:-1] for c in text)
    return f"# {flat}".rstrip()


def _grouped(values: dict[str, Any]) -> list[tuple[str, Any, list[str]]]:
    """Dotted keys folded into inline tables at the place of their first key: (key, value, dotted keys)."""
    out: list[tuple[str, Any, list[str]]] = []
    groups: dict[str, dict[str, Any]] = {}
    for k, v in values.items():
        head, dot, rest = k.partition(".")
        if not dot:
            out.append((k, v, [k]))
            continue
        if head not in groups:
            groups[head] = {}
            out.append((head, groups[head], []))
        groups[head][rest] = v
        next(item for item in out if item[0] == head)[2].append(k)
    return out


def table(header: str, t: Table, lines: list[str]) -> None:
    lines.append(f"[{header}]")
    lines.extend(comment(c) for c in t.intro)
    trailer: list[str] = []
    for k, v, dotted in _grouped(t.values):
        for d in dotted:
            lines.extend(comment(c) for c in t.comments.get(d, []))
        if k == "env" and isinstance(v, dict) and len(v) > INLINE_ENV_MAX:
            trailer += ["", f"[{header}.env]"] + [f"{key(name)} = {value(x)}" for name, x in v.items()]
            continue
        lines.append(f"{key(k)} = {value(v)}")
    for k, texts in t.comments.items():  # comments about keys that were not set (approximated to nothing)
        if k not in t.values:
            lines.extend(comment(c) for c in texts)
    lines.extend(comment(n) for n in t.notes)
    lines.extend(trailer)
    lines.append("")


def render(draft: Draft) -> str:
    lines = [comment(h) for h in draft.header]
    if lines:
        lines.append("")
    if draft.herder.values or draft.herder.notes or draft.herder.intro:
        table("herder", draft.herder, lines)
    if draft.defaults.values or draft.defaults.notes or draft.defaults.intro:
        table("defaults", draft.defaults, lines)
    for name, t in draft.services.items():
        table(f"services.{key(name)}", t, lines)
    return "\n".join(lines).rstrip("\n") + "\n"
