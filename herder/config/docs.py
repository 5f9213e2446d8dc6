"""Generate docs/config.md from the schema (`python -m herder.config.docs`).

The reference is produced from the same dataclasses that parse and validate the file, so
it cannot drift from what herder accepts. The default column is the built-in default as
TOML (a test parses each one back with the key's own parser); examples go to the meaning.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import MISSING, fields
from typing import Any

from herder.config.alerts import Alerts, SupervisorHooks
from herder.config.model import HerderSettings, ServiceSpec

INTRO = """\
# herder.toml reference

Generated from `herder/config/model.py` by `python -m herder.config.docs`; do not edit.

herder reads `-c FILE`, else `./herder.toml`, else `$HERDER_CONFIG`. Durations are strings
with a unit (`"250ms"`, `"10s"`, `"5m"`, `"1h"`, combinable: `"1m30s"`); a bare number is an
error, so `10` can never mean milliseconds in one place and seconds in another. Sizes are
`"512KB"`, `"50MB"`, `"1GB"` (binary multiples). Signals are names (`TERM` or `SIGTERM`).

Every table may be partial: a key not given in `[services.NAME]` comes from `[defaults]`,
then from the built-in default below; nested tables merge key by key
(`backoff = { initial = "0s" }` keeps the other backoff keys). Unknown keys and tables are
errors, with the nearest known name when one is close (`unknown key (did you mean
"stop_timeout"?)`, also for enum values such as `"allways"`). `herder check` prints every
error at once, in file order, as `FILE:LINE: key.path: what is wrong; what is expected` and
exits 2; a config with any error changes nothing that is running.

Any file content gets such a message (docs/security.md): only regular files up to 4 MB are
read (a FIFO or `/dev/zero` is refused), a UTF-8 byte order mark is allowed, nesting deeper
than 16 levels, NUL characters, NaN and infinity are errors. `check` also looks at the
machine: an unknown `user` or `group`, a `command` that is not installed, not executable or
in a folder the service's account cannot enter, and a missing `cwd` are errors — warnings
(printed, exit 0) for a service with `depends_on`, since what it waits for may create them.

Paths (`state_dir`, `log_dir`, `cwd`, `env_file`) are relative to the config file's folder.
`{replica}` in `command`, `env` values and `cwd` becomes the instance number (0 when
`replicas = 1`). Instances are named `NAME` (one replica) or `NAME.0` … `NAME.N-1`.

Every child gets herder's environment, then `env_file`, then `env` (later wins), plus
`HERDER_INSTANCE`, `HERDER_SERVICE`, `HERDER_INSTANCE_ID` (a per-instance cookie),
`HERDER_STOP_TIMEOUT_USEC` and, for replicas, `HERDER_REPLICA`.
"""


def _sizes(n: int) -> list[str]:
    return [f'"{n // m}{unit}"' for unit, m in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)) if n and n % m == 0]


def _durations(v: float) -> list[str]:
    if v == 0:
        return ['"0s"']
    out = [f'"{v * 1000:g}ms"'] if v < 1 else []
    out += [f'"{v / m:g}{unit}"' for unit, m in (("d", 86400), ("h", 3600), ("m", 60)) if v and v % m == 0]
    return [*out, f'"{v:g}s"']


def toml_default(f: dataclasses.Field[Any]) -> str:
    """The built-in default of a key as TOML text that the key's own parser turns back into
    exactly that default (tests/core/test_config.py checks every key). Examples are never
    shown here: they go to the meaning column."""
    value = f.default if f.default is not MISSING else (
        f.default_factory() if f.default_factory is not MISSING else MISSING)
    if value is MISSING:
        return "(required)"
    if value is None:
        return "—"
    parse = f.metadata.get("parse")
    candidates: list[str] = []
    if isinstance(value, bool):
        candidates = ["true" if value else "false"]
    elif isinstance(value, int | float):
        candidates = [*(_sizes(value) if isinstance(value, int) else []), *_durations(float(value)), f"{value!r}"]
    elif isinstance(value, str):
        candidates = [json.dumps(value)]
    elif isinstance(value, tuple | list):
        candidates = ["[" + ", ".join(json.dumps(x) for x in value) + "]"]
    elif isinstance(value, dict):
        candidates = ["{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + "}" if value else "{}"]
    for text in candidates:
        try:
            raw = tomllib.loads(f"x = {text}")["x"]
            if parse is None or parse(raw) == value:
                return text
        except (ValueError, TypeError, KeyError, tomllib.TOMLDecodeError):
            continue
    return candidates[-1] if candidates else str(value)


def rows(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, accepts, default, meaning) for every key of cls, depth first."""
    out = []
    for f in fields(cls):
        sub = f.metadata.get("table")
        key = prefix + f.name
        doc = f.metadata.get("doc", "")
        if sub is not None:
            out.append((key, "table", "", doc))
            out.extend(rows(sub, key + "."))
            continue
        parse = f.metadata.get("parse")
        kind = (parse.__doc__ or "a value").strip() if parse else "a value"
        example, default = f.metadata.get("example"), toml_default(f)
        if example and example != default:
            doc += f" (e.g. `{example}`)"
        out.append((key, kind, default, doc))
    return out


def _table(title: str, rows: list[tuple[str, str, str, str]], note: str = "") -> list[str]:
    out = [f"## {title}", ""]
    if note:
        out += [note, ""]
    out += ["| key | accepts | default | meaning |", "|---|---|---|---|"]
    for key, kind, default, doc in rows:
        if kind == "table":
            out.append(f"| **`{key}`** | table | | {doc} |")
        else:
            row = f"| `{key}` | {kind} | `{default}` | {doc} |"
            out.append(row.replace("`—`", "—").replace("`(required)`", "**required**"))
    return [*out, ""]


def render() -> str:
    lines = [INTRO]
    lines += _table("[herder]", rows(HerderSettings), "The supervisor itself.")
    lines += _table("[services.NAME] and [defaults]", rows(ServiceSpec),
                    "`NAME` is letters, digits, `-` and `_`. `[defaults]` takes the same keys and is merged under "
                    "every service.")
    lines += _table("[alerts]", rows(Alerts), "Notifications when something goes wrong "
                    "(docs/hooks.md#alerts).")
    lines += _table("[hooks]", rows(SupervisorHooks), "Commands the supervisor runs on its events "
                    "(docs/hooks.md#on_event).")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
