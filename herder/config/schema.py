"""The declarative schema: config tables are dataclasses whose fields carry their parser,
their documentation and their default. One declaration drives parsing, defaults,
validation (every error at once, with its key path), docs/config.md and the JSON Schema.

A field is declared with `opt(...)` (a value) or `table(...)` (a nested table). Parsers
are plain functions `raw -> value` that raise ValueError("...; expected ...").
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, field, fields
from typing import Any, TypeVar

from herder.config.units import parse_duration, parse_signal, parse_size

T = TypeVar("T")
Parser = Callable[[Any], Any]


def opt(default: Any = MISSING, parse: Parser | None = None, doc: str = "", *,
        factory: Callable[[], Any] | None = None, example: str | None = None,
        required: bool = False) -> Any:
    """Declare a config value: its parser, its built-in default and its documentation."""
    meta = {"parse": parse, "doc": doc, "example": example, "required": required}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def table(cls: type, doc: str = "") -> Any:
    """Declare a nested table; every key in it is optional and falls back to defaults."""
    return field(default_factory=cls, metadata={"table": cls, "doc": doc})


# ---- parsers -------------------------------------------------------------------------

def p_str(v: Any) -> str:
    """string"""
    if not isinstance(v, str):
        raise ValueError(f"expected a string; got {_show(v)}")
    return v


def p_opt_str(v: Any) -> str | None:
    """string"""
    return None if v == "" else p_str(v)


def p_bool(v: Any) -> bool:
    """`true` or `false`"""
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false; got {_show(v)}")
    return v


INT_MAX = 2**63 - 1    # what the OS, SQLite and cgroup files take; TOML itself allows more


def p_auto_switch(v: Any) -> str:
    """`true`, `false` or `"auto"`"""
    if v is True or v == "on":
        return "on"
    if v is False or v == "off":
        return "off"
    if v == "auto":
        return "auto"
    raise ValueError(f'expected true, false or "auto"; got {_show(v)}')


def p_int(lo: int | None = None, hi: int | None = None) -> Parser:
    def parse(v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"expected a whole number; got {_show(v)}")
        if lo is not None and v < lo:
            raise ValueError(f"{v} is too small; expected at least {lo}")
        if v > (hi if hi is not None else INT_MAX):
            raise ValueError(f"{v} is too large; expected at most {hi if hi is not None else INT_MAX}")
        return v
    parse.__doc__ = "whole number" + (f" ≥ {lo}" if lo is not None else "")
    return parse


def p_float(lo: float | None = None, hi: float | None = None) -> Parser:
    def parse(v: Any) -> float:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"expected a finite number; got {_show(v)}")
        if lo is not None and v < lo:
            raise ValueError(f"{v} is too small; expected at least {lo}")
        if hi is not None and v > hi:
            raise ValueError(f"{v} is too large; expected at most {hi}")
        return float(v)
    parse.__doc__ = "number" + (f" from {lo}" if lo is not None else "") + (f" to {hi}" if hi is not None else "")
    return parse


def p_enum(*choices: str) -> Parser:
    def parse(v: Any) -> str:
        if v not in choices:
            raise ValueError(f"unknown value {_show(v)}{did_you_mean(str(v), choices)}; "
                             f"expected one of {', '.join(choices)}")
        return str(v)
    parse.__doc__ = "one of " + ", ".join(f"`{c}`" for c in choices)
    return parse


MAX_DURATION = 100 * 365 * 86400.0   # longer is a typo (and overflows timers)


def p_duration(v: Any) -> float:
    """duration such as `"250ms"`, `"10s"`, `"5m"`"""
    d = parse_duration(v)
    if not d <= MAX_DURATION:
        raise ValueError(f"{_show(v)} is too long; expected at most 100 years")
    return d


def p_opt_duration(v: Any) -> float | None:
    """duration, or `""` for none"""
    return None if v == "" else p_duration(v)


def p_size(v: Any) -> int:
    """size such as `"512KB"`, `"50MB"`"""
    n = parse_size(v)
    if n > INT_MAX:
        raise ValueError(f"{_show(v)} is too large; expected at most {INT_MAX} bytes")
    return n


def p_mode(v: Any) -> int:
    """file mode: `"0640"` (octal text) or `0o640`"""
    if isinstance(v, str) and v.strip() and all(c in "01234567" for c in v.strip()):
        v = int(v.strip(), 8)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 0o777:
        raise ValueError(f'expected a file mode such as "0640" or 0o640 (permission bits only); got {_show(v)}')
    return v


def p_signal(v: Any) -> str:
    """signal name such as `TERM`, `INT`, `HUP`"""
    return parse_signal(v).name


def p_argv(v: Any) -> tuple[str, ...]:
    """argv list, or a string split like a shell would (shlex)"""
    if isinstance(v, str):
        try:
            argv = shlex.split(v)
        except ValueError as e:
            raise ValueError(f"cannot split the command string ({e}); expected shell-like quoting") from None
    elif isinstance(v, list) and all(isinstance(a, str) for a in v):
        argv = list(v)
    else:
        raise ValueError(f"expected a list of strings or a string; got {_show(v)}")
    if not argv or not argv[0]:
        raise ValueError("the command is empty; expected a program and its arguments")
    return tuple(argv)


def p_env(v: Any) -> dict[str, str]:
    """table of NAME = value (strings, numbers and booleans become strings)"""
    if not isinstance(v, Mapping):
        raise ValueError(f"expected a table of NAME = value; got {_show(v)}")
    out = {}
    for k, val in v.items():
        if not k or "=" in k:
            raise ValueError(f"{_show(k)} is not a variable name; expected a NAME without \"=\"")
        if isinstance(val, bool):
            val = "true" if val else "false"
        if not isinstance(val, (str, int, float)):
            raise ValueError(f"{k}: expected a string, number or boolean; got {_show(val)}")
        out[k] = str(val)
    return out


def p_int_list(v: Any) -> tuple[int, ...]:
    """list of whole numbers from 0 to 255 (exit codes)"""
    if not isinstance(v, list) or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= 255 for i in v):
        raise ValueError(f"expected a list of exit codes (whole numbers from 0 to 255); got {_show(v)}")
    return tuple(v)


def p_output(*words: str) -> Parser:
    """Where a stream goes: one of `words`, "inherit", "null", or a file path."""
    def parse(v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"expected {', '.join(words)}, inherit, null or a file path; got {_show(v)}")
        return v
    parse.__doc__ = ", ".join(f"`{w}`" for w in words) + ", `inherit`, `null` or a path"
    return parse


FORWARD_KINDS = ("journald", "syslog", "eventlog")


def p_forward(v: Any) -> tuple[str, ...]:
    """list of `journald`, `syslog`, `syslog:HOST:PORT`, `syslog:/PATH`, `eventlog`"""
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError(f"expected a list such as [\"journald\"]; got {_show(v)}")
    for x in v:
        kind, _, where = x.partition(":")
        if kind not in FORWARD_KINDS or (where and kind != "syslog"):
            raise ValueError(f"unknown log forwarding target {_show(x)}; expected journald, syslog, "
                             "syslog:HOST:PORT, syslog:/PATH or eventlog")
        if kind == "syslog" and where and not where.startswith("/"):
            host, _, port = where.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{_show(x)}: expected syslog:HOST:PORT with a port from 1 to 65535, or syslog:/PATH")
    return tuple(v)


DEPENDENCY_CONDITIONS = ("started", "ready", "healthy", "completed")


def p_depends(v: Any) -> dict[str, str]:
    """table of SERVICE = condition (`started`, `ready`, `healthy`, `completed`), or a list of names (= started)"""
    if isinstance(v, list) and all(isinstance(n, str) for n in v):
        return {n: "started" for n in v}
    if not isinstance(v, Mapping):
        raise ValueError(f"expected a table such as {{ db = \"healthy\" }} or a list of names; got {_show(v)}")
    for name, cond in v.items():
        if cond not in DEPENDENCY_CONDITIONS:
            raise ValueError(f"{name}: unknown condition {_show(cond)}; "
                             f"expected one of {', '.join(DEPENDENCY_CONDITIONS)}")
    return dict(v)


def _show(v: Any) -> str:
    if isinstance(v, str):
        return f'"{v}"' if len(v) <= 80 else f'"{v[:60]}…" ({len(v)} characters)'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "a list"
    return repr(v)


# ---- building ------------------------------------------------------------------------

class Problems:
    """Collects every error of one config file as (key path, message)."""

    def __init__(self) -> None:
        self.items: list[tuple[tuple[str, ...], str]] = []

    def add(self, path: tuple[str, ...], message: str) -> None:
        if (path, message) not in self.items:
            self.items.append((path, message))


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """' (did you mean "command"?)' for a near miss among `known`, else ""."""
    import difflib

    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.7)
    return f' (did you mean "{close[0]}"?)' if close else ""


def build(cls: type[T], raw: Any, path: tuple[str, ...], problems: Problems,
          where: Callable[[tuple[str, ...]], tuple[str, ...]] = lambda p: p) -> T:
    """Turn the raw table `raw` into `cls`, recording every problem instead of stopping.

    `where` maps a key path to the path the user wrote (a key merged in from [defaults] is
    reported at its place in [defaults]). Values that fail keep their default so that the
    rest of the file is still checked. A table class may define `check(self)` returning
    (key path, message) pairs for rules that span several keys; it runs only when every
    key of the table parsed.
    """
    if not isinstance(raw, Mapping):
        problems.add(where(path), f"expected a table; got {_show(raw)}")
        raw = {}
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        if key not in known:
            problems.add(where((*path, key)), f"unknown key{did_you_mean(str(key), known)}; "
                         f"expected one of {', '.join(sorted(known))}")
    kwargs: dict[str, Any] = {}
    before = len(problems.items)
    for f in fields(cls):  # type: ignore[arg-type]
        sub = f.metadata.get("table")
        if f.name not in raw:
            if f.metadata.get("required"):
                problems.add(where(path), f"missing key \"{f.name}\"; expected {_describe(f)}")
            continue
        value = raw[f.name]
        if sub is not None:
            kwargs[f.name] = build(sub, value, (*path, f.name), problems, where)
            continue
        try:
            kwargs[f.name] = f.metadata["parse"](value)
        except ValueError as e:
            problems.add(where((*path, f.name)), str(e))
    try:
        obj = cls(**kwargs)
    except TypeError:  # a required field failed; the problem is already recorded
        return cls(**{**_placeholders(cls), **kwargs})
    check = getattr(obj, "check", None)
    if callable(check) and len(problems.items) == before:
        for sub_path, message in check():  # rules across keys ("set only one of …")
            problems.add(where(path + tuple(sub_path)), message)
    return obj


def _placeholders(cls: type) -> dict[str, Any]:
    return {f.name: None for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}


def _describe(f: dataclasses.Field[Any]) -> str:
    parse = f.metadata.get("parse")
    return (parse.__doc__ or "a value").strip() if parse else "a table"


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`; tables merge key by key, everything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def describe_fields(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, kind, default, doc) rows for the generated reference, depth first."""
    rows = []
    for f in fields(cls):
        sub = f.metadata.get("table")
        key = prefix + f.name
        if sub is not None:
            rows.append((key, "table", "", f.metadata.get("doc", "")))
            rows.extend(describe_fields(sub, key + "."))
            continue
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        rows.append((key, _describe(f), _show_default(f, default), f.metadata.get("doc", "")))
    return rows


def _show_default(f: dataclasses.Field[Any], default: Any) -> str:
    if default == "(required)":
        return "(required)"
    if default is None:
        return "—"
    if isinstance(default, bool):
        return "true" if default else "false"
    if f.metadata.get("example"):
        return str(f.metadata["example"])
    if isinstance(default, (tuple, list)):
        return "[" + ", ".join(str(x) for x in default) + "]"
    if isinstance(default, dict):
        return "{}"
    return f'"{default}"' if isinstance(default, str) else str(default)


def rebuild(cls: type[T], data: Mapping[str, Any]) -> T:
    """Inverse of dataclasses.asdict for schema classes (JSON records such as install
    records, the running config a restarted decision process takes over): nested tables
    and dataclass values (a hook, an on_event entry) become their classes again, lists
    become tuples where the field is a tuple, keys the class does not know (an older or
    newer record) are skipped."""
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value = data[f.name]
        sub = f.metadata.get("table")
        if sub is not None and isinstance(value, Mapping):
            value = rebuild(sub, value)
        else:
            value = _rebuilt(hints.get(f.name), value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _hints(cls: type) -> dict[str, Any]:
    import typing

    got = _HINTS.get(cls)
    if got is None:
        got = _HINTS[cls] = typing.get_type_hints(cls)
    return got


_HINTS: dict[type, dict[str, Any]] = {}


def _rebuilt(hint: Any, value: Any) -> Any:
    """`value` (JSON data) as the type `hint` says: dataclasses rebuilt, lists made tuples."""
    import types
    import typing

    if hint is None or value is None:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(hint) if a is not type(None)]
        for arm in arms:
            if dataclasses.is_dataclass(arm) and isinstance(value, Mapping):
                return rebuild(arm, value)  # type: ignore[arg-type]
        for arm in arms:
            if typing.get_origin(arm) is tuple and isinstance(value, list):
                return _rebuilt(arm, value)
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type) and isinstance(value, Mapping):
        return rebuild(hint, value)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        return tuple(_rebuilt(item, v) for v in value)
    if origin is dict and isinstance(value, Mapping):
        args = typing.get_args(hint)
        return {k: _rebuilt(args[1] if len(args) == 2 else None, v) for k, v in value.items()}
    return value
