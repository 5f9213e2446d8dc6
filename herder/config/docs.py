"""Generate docs/config.md from the schema (`python -m herder.config.docs`).

The reference is produced from the same dataclasses that parse and validate the file, so
it cannot drift from what herder accepts.
"""

from __future__ import annotations

from herder.config.model import HerderSettings, ServiceSpec
from herder.config.schema import describe_fields

INTRO = """\
# herder.toml reference

Generated from `herder/config/model.py` by `python -m herder.config.docs`; do not edit.

herder reads `-c FILE`, else `./herder.toml`, else `$HERDER_CONFIG`. Durations are strings
with a unit (`"250ms"`, `"10s"`, `"5m"`, `"1h"`, combinable: `"1m30s"`); a bare number is an
error, so `10` can never mean milliseconds in one place and seconds in another. Sizes are
`"512KB"`, `"50MB"`, `"1GB"` (binary multiples). Signals are names (`TERM` or `SIGTERM`).

Every table may be partial: a key not given in `[services.NAME]` comes from `[defaults]`,
then from the built-in default below; nested tables merge key by key
(`backoff = { initial = "0s" }` keeps the other backoff keys). Unknown keys are errors.
`herder check` prints every error at once as `FILE:LINE: key.path: what is wrong; what is
expected` and exits 2; a config with any error changes nothing that is running.

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
    lines += _table("[herder]", describe_fields(HerderSettings), "The supervisor itself.")
    lines += _table("[services.NAME] and [defaults]", describe_fields(ServiceSpec),
                    "`NAME` is letters, digits, `-` and `_`. `[defaults]` takes the same keys and is merged under "
                    "every service.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
