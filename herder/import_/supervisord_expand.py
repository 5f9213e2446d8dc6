"""supervisord's value expansion and its value types, and how `%(process_num)` becomes
herder's `{replica}`.

supervisord expands a value with Python's `%` operator against a table of names
(`here`, `program_name`, `group_name`, `host_node_name`, `ENV_X`, and per process
`process_num` and `numprocs`); `environment` is then split by a posix shlex whose word
characters also include `/.+-():`, into KEY=value pairs separated by one token (a comma).
This module applies those rules; supervisord's own messages guided the wording of ours.

Each process of a `numprocs` program gets its own expansion. herder has one spec per
service with `{replica}` (0 … N-1) substituted, so a value is carried as a template:
`%(process_num)…` is swapped for a marker before expanding, the marker becomes
`{replica}`, and the template is checked against supervisord's value for every process.
A mismatch (zero padding such as `%(process_num)02d`, or `numprocs_start` ≠ 0) is
reported as approximated, with both values.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from herder.import_.source import fail

if TYPE_CHECKING:
    from herder.import_.supervisord_ini import Value

MARK = "HERDERxREPLICAx7"  # word characters only, so shlex keeps it inside its word
_PROCESS_NUM = re.compile(r"%\(process_num\)[#0\- +]*\d*(?:\.\d*)?[diouxXeEfFgGcrsa]")
_SPEC_WIDTH = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\d*)(?:\.(\d*))?")
MAX_WIDTH = 4096


def expand(raw: str, names: Mapping[str, Any], v: Value, key: str) -> str:
    """`raw % names` as supervisord does it, with its failures as FILE:LINE messages."""
    where = f"{v.file}:{v.line}" if v.line else str(v.file)
    for m in _SPEC_WIDTH.finditer(raw):  # "%(x)999999999s" would build a gigabyte string
        if any((g and len(g) > 4) or (g and int(g) > MAX_WIDTH) for g in m.groups()):
            raise fail(where, f"{key}: a %-format width above {MAX_WIDTH}; expected a value such as %(here)s")
    try:
        return raw % names
    except KeyError as e:
        raise fail(where, f"{key}: %({e.args[0]})s cannot be expanded; expected one of "
                   f"{', '.join(sorted(n for n in names if not n.startswith('ENV_')))} or ENV_<variable>"
                   + (" (set it in the environment of `herder import`)" if str(e.args[0]).startswith("ENV_")
                      else "")) from None
    except (ValueError, TypeError, OverflowError) as e:
        raise fail(where, f"{key}: badly formatted %-expansion ({e}); expected %(name)s, and %% for a literal "
                   "%") from None


def key_value_pairs(text: str, v: Value, key: str) -> dict[str, str]:
    """supervisord's `KEY=val,KEY2="val 2"` (datatypes.dict_of_key_value_pairs)."""
    lexer = shlex.shlex(text, posix=True)
    lexer.wordchars += "/.+-():"
    try:
        tokens = list(lexer)
    except ValueError as e:
        raise fail(f"{v.file}:{v.line}", f"{key}: {e}; expected KEY=value pairs separated by commas") from None
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        kv = tokens[i:i + 3]
        if len(kv) != 3 or kv[1] != "=":
            raise fail(f"{v.file}:{v.line}", f"{key}: unexpected end of KEY=value pairs at {' '.join(kv)!r}; "
                       "expected KEY=value,KEY2=\"value 2\" (quote values with other characters)")
        out[kv[0]] = kv[2]
        i += 4
    return out


# ---- supervisord's value types (supervisor/datatypes.py), as errors with lines --------------

TRUTHY = ("yes", "true", "on", "1")
FALSY = ("no", "false", "off", "0")


@dataclass(frozen=True)
class Typed:
    """A value after expansion, converted the way supervisord converts it."""

    v: Value
    text: str

    @property
    def where(self) -> str:
        return f"{self.v.file}:{self.v.line}" if self.v.line else str(self.v.file)

    def boolean(self, key: str) -> bool:
        s = self.text.lower()
        if s in TRUTHY or s in FALSY:
            return s in TRUTHY
        raise fail(self.where, f'{key}: "{self.text}" is not a boolean; expected true or false '
                   "(also yes/no, on/off, 1/0)")

    def integer(self, key: str, lo: int | None = None, hi: int | None = None) -> int:
        try:
            n = int(self.text)
        except ValueError:
            raise fail(self.where, f'{key}: "{self.text}" is not a whole number; expected one') from None
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            bound = f"from {lo} to {hi}" if lo is not None and hi is not None else f"at least {lo}"
            raise fail(self.where, f"{key}: {n} is out of range; expected a number {bound}")
        return n

    def byte_size(self, key: str) -> int:
        s = self.text.strip().lower()
        for suffix, mult in (("kb", 1024), ("mb", 1024**2), ("gb", 1024**3)):
            if s.endswith(suffix):
                s, m = s[:-2], mult
                break
        else:
            m = 1
        try:
            n = int(s) * m
        except ValueError:
            raise fail(self.where, f'{key}: "{self.text}" is not a size; expected bytes or a number with '
                       "KB, MB or GB such as 50MB") from None
        if n < 0:
            raise fail(self.where, f"{key}: {self.text} is negative; expected a size of 0 or more")
        return n

    def signal(self, key: str) -> str:
        from herder.units import parse_signal

        try:
            return parse_signal(int(self.text) if self.text.strip().isdigit() else self.text).name
        except ValueError:
            raise fail(self.where, f'{key}: "{self.text}" is not a signal; expected a name such as TERM, '
                       "INT, QUIT, HUP, KILL, USR1") from None

    def exit_codes(self, key: str) -> list[int]:
        try:
            codes = [int(x) for x in self.text.split(",")] if self.text else []
        except ValueError:
            codes = [-1]
        if any(not 0 <= c <= 255 for c in codes):
            raise fail(self.where, f'{key}: "{self.text}" is not a list of exit codes; expected numbers '
                       "from 0 to 255 separated by commas")
        return codes


def template(raw: str, per_process: Callable[[str], str], n: int) -> str:
    """The herder template of a per-process value: `raw` expanded (through `per_process`)
    with every `%(process_num)…` replaced by `{replica}`."""
    return per_process(_PROCESS_NUM.sub(MARK, raw)).replace(MARK, "{replica}")


def uses_process_num(raw: str) -> bool:
    return "%(process_num)" in raw
