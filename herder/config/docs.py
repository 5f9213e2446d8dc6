"""Generate docs/config.md from the schema (`python -m herder.config.docs`).

The reference is produced from the same dataclasses that parse and validate the file, so
it cannot drift from what herder accepts.
"""

from __future__ import annotations

from herder.config.alerts import Alerts, SupervisorHooks
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
    return out + [""]


def render() -> str:
    lines = [INTRO]
    lines += _table("[herder]", describe_fields(HerderSettings), "The supervisor itself.")
    lines += _table("[services.NAME] and [defaults]", describe_fields(ServiceSpec),
                    "`NAME` is letters, digits, `-` and `_`. `[defaults]` takes the same keys and is merged under "
                    "every service.")
    lines += _table("[alerts]", describe_fields(Alerts), "Notifications when something goes wrong "
                    "(docs/hooks.md#alerts).")
    lines += _table("[hooks]", describe_fields(SupervisorHooks), "Commands the supervisor runs on its events "
                    "(docs/hooks.md#on_event).")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
