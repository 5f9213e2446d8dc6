"""PM2's app keys: their aliases, PM2's value rules, and the translation table.

PM2 validates an app against its schema (lib/API/schema.json, lib/tools/Config.js): each
key has aliases (`interpreter` for `exec_interpreter`, every key in camelCase), numbers
may be given as numeric strings, `min_uptime` accepts "10s"/"5m"/"1h" (else ms),
`max_memory_restart` "150M"/"1G"/"500K" (else bytes), and a string given where a list is
expected is split into words. Those rules are applied here, and a value PM2 would refuse
is refused with its file and line.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from herder.import_.draft import rules
from herder.import_.source import fail

ALIASES = {
    "script": ("exec", "cmd", "command"),
    "exec_interpreter": ("interpreter",),
    "node_args": ("interpreterArgs", "interpreter_args"),
    "out_file": ("out", "output", "out_log"),
    "error_file": ("error", "err", "err_file", "err_log"),
    "log_file": ("log",),
    "pid_file": ("pid",),
    "cron_restart": ("cron",),
    "merge_logs": ("combine_logs",),
    "uid": ("user",),
}
KNOWN = (
    "script", "name", "name_prefix", "filter_env", "namespace", "install_url", "cwd", "args", "exec_interpreter",
    "node_args", "out_file", "error_file", "log_file", "disable_logs", "log_type", "log_date_format", "time",
    "env", "max_memory_restart", "pid_file", "restart_delay", "exp_backoff_restart_delay", "source_map_support",
    "disable_source_map_support", "wait_ready", "instances", "kill_timeout", "shutdown_with_message",
    "listen_timeout", "cron_restart", "merge_logs", "vizion", "autostart", "autorestart", "stop_exit_codes",
    "watch_delay", "watch", "ignore_watch", "watch_options", "min_uptime", "max_restarts", "execute_command",
    "exec_mode", "force", "append_env_to_name", "post_update", "trace", "disable_trace", "v8",
    "event_loop_inspector", "deep_monitoring", "increment_var", "instance_var", "pmx", "automation", "treekill",
    "port", "username", "uid", "gid", "windowsHide", "kill_retry_time", "write", "io",
)


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[0].upper() + p[1:] if len(p) > 1 else p for p in rest)


CANONICAL: dict[str, str] = {}
for _k in KNOWN:
    CANONICAL.setdefault(_k, _k)
    CANONICAL.setdefault(_camel(_k), _k)
    for _a in ALIASES.get(_k, ()):
        CANONICAL.setdefault(_a, _k)

RULES = rules(
    ("apps[]", "[services.NAME]", "one service per app; also a bare list of apps, or `pm2: [...]`"),
    ("name", "NAME", "default: the script's file name without extension, as PM2 names it"),
    ("script", "command", "with its interpreter (`exec_interpreter`, else by extension: .js node, .py python, "
     ".sh bash, .rb ruby, .php php, .pl perl …); a script with a space runs as `bash -c SCRIPT`, as PM2 runs it"),
    ("args", "command", "after the script; a string is split into words as PM2 splits it"),
    ("exec_interpreter", "command", "`none` runs the script itself"),
    ("node_args", "command", "between the interpreter and the script"),
    ("cwd", "cwd", "unset: PM2 uses the folder `pm2 start` runs in; taken as the ecosystem file's folder"),
    ("env", "env", "numbers and booleans as node writes them; objects as JSON"),
    ("env_*", "env", "with --env NAME: env_NAME merged over env, as `pm2 start --env NAME`"),
    ("instances", "replicas", "\"max\" or 0: this machine's CPU count now; -1: one less"),
    ("exec_mode", "replicas", "fork: exact; cluster (the default for node with instances): approximated, herder "
     "runs separate processes, which cannot share a listening port through node's cluster module"),
    ("instance_var", "env", "NODE_APP_INSTANCE (or the name given) = \"{replica}\", as PM2 numbers instances from 0"),
    ("increment_var", "env", "the variable + replica number; exact up to 10 replicas on a base ending in 0"),
    ("port", "env.PORT", ""),
    ("autostart", "autostart", ""),
    ("autorestart", "restart", "true (PM2's default) → always; false → never"),
    ("stop_exit_codes", "success_exit_codes", "with restart = \"on-failure\": these exits are not restarted"),
    ("max_restarts", "start_limit.burst", "PM2 counts restarts of runs shorter than min_uptime; herder counts "
     "those within start_limit.interval (60s)"),
    ("min_uptime", "min_uptime", ""),
    ("restart_delay", "backoff", "a constant delay: initial, factor 1, no jitter"),
    ("exp_backoff_restart_delay", "backoff", "PM2's curve: ×1.5 per restart up to 15s, reset after 30s of run"),
    ("kill_timeout", "stop_timeout", ""),
    ("treekill", "kill", "false → main"),
    ("max_memory_restart", "limits.max_memory_restart", "herder samples the RSS every 5s (PM2: every 30s)"),
    ("uid", "user", ""),
    ("gid", "group", ""),
    ("out_file", "logs.stdout", "/dev/null → null; with replicas, herder adds .N to the name (PM2: -ID)"),
    ("error_file", "logs.stderr", "/dev/null → null; with replicas, herder adds .N to the name (PM2: -ID)"),
    ("log_file", "—", "PM2's extra combined file; herder keeps one stdout and one stderr file "
     "(logs.stderr = \"merge\" gives one file)"),
    ("merge_logs", "—", "herder never lets replicas share a file"),
    ("disable_logs", "logs", "stdout and stderr → null"),
    ("log_date_format", "logs.timestamps", "herder stamps every line in RFC 3339 (UTC, ms)"),
    ("time", "logs.timestamps", "herder stamps every line in RFC 3339 (UTC, ms)"),
    ("log_type", "logs.format", "json: herder's JSON lines (ts, service, instance, stream, line)"),
    ("cron_restart", "—", "herder has no schedules yet (issue 18 adds restart_schedule)"),
    ("watch", "—", "herder does not watch files (no herder issue yet)"),
    ("ignore_watch", "—", "herder does not watch files (no herder issue yet)"),
    ("watch_options", "—", "herder does not watch files (no herder issue yet)"),
    ("watch_delay", "—", "herder does not watch files (no herder issue yet)"),
    ("wait_ready", "—", "PM2's signal is process.send('ready'); herder's is READY=1 on $NOTIFY_SOCKET "
     "(ready.notify), or a probe (ready.http, ready.tcp)"),
    ("listen_timeout", "—", "goes with wait_ready; herder's is ready.timeout"),
    ("shutdown_with_message", "—", "herder stops with a signal"),
    ("append_env_to_name", "NAME", "with --env NAME: the service is named APP-NAME"),
    ("namespace", "—", "herder has no namespaces: one herder.toml is one set of services"),
    ("pid_file", "—", "herder keeps pids in its state, not in files"),
    ("filter_env", "—", "herder passes its whole environment"),
    ("*", "—", "PM2's own features (monitoring, versioning, source maps, deploy hooks): nothing to carry"),
    ("deploy", "—", "herder does not deploy"),
    ("static", "—", "PM2's static file server: run a server program as a service"),
    ("(PM2 default)", "[defaults]", "PM2's defaults where they differ from herder's: restart = \"always\", "
     "stop_signal = \"INT\", stop_timeout = \"1600ms\", start_limit.burst = 16 (max_restarts), backoff.initial = "
     "\"0s\" (restart at once), logs.stderr = \"auto\" (own file)"),
)


def canonical(key: str) -> str | None:
    return CANONICAL.get(key)


def pm2_words(s: str) -> list[str]:
    """PM2's split of a string given where a list is expected (lib/tools/Config.js)."""
    words = re.findall(r"""[^\s"'=]+="[^"]*"|[^\s"'=]+='[^']*'|"[^"]*"|'[^']*'|\S+""", s)
    out = []
    for w in words:
        if len(w) >= 2 and w[0] == w[-1] and w[0] in "\"'":
            w = w[1:-1]
        if w.strip():
            out.append(w)
    return out


def js_key(k: Any) -> str:
    """A mapping key as a JavaScript property name: YAML allows `~:`, `true:` or `1:` as keys,
    which js-yaml hands PM2 as "null", "true", "1"."""
    if isinstance(k, str):
        return k
    if k is None or isinstance(k, bool | int | float):
        return js_string(k) or "null"
    return str(k)   # a date key, say: a name PM2 does not know either


def js_string(v: Any) -> str | None:
    """A value as node turns it into an environment string (None: not passed)."""
    import json

    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e21:
            return str(int(v))
        text = repr(v)
        return re.sub(r"e([+-])0*(\d)", r"e\1\2", text)
    if isinstance(v, str):
        return v
    _bounded(v)
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


MAX_NODES = 10_000


def _bounded(v: Any) -> None:
    """Refuse a nested value with more than MAX_NODES parts (a YAML alias bomb is tiny on disk
    and billions of values once written out)."""
    todo, n = [v], 0
    while todo:
        x = todo.pop()
        n += 1
        if n > MAX_NODES:
            raise ValueError(f"a nested value with more than {MAX_NODES} parts")
        if isinstance(x, dict):
            todo.extend(x.values())
        elif isinstance(x, list):
            todo.extend(x)


class Val:
    """One app value with its place, checked the way PM2 checks it."""

    def __init__(self, key: str, written: str, value: Any, where: str, line: int | None) -> None:
        self.key, self.written, self.value, self.where, self.line = key, written, value, where, line

    def bad(self, expected: str) -> Exception:
        return fail(self.where, f"{self.written}: {self.value!r} is not valid; expected {expected}")

    def string(self) -> str:
        if not isinstance(self.value, str):
            raise self.bad("a string")
        return self.value

    def boolean(self) -> bool:
        if isinstance(self.value, bool):
            return self.value
        if self.value in ("true", "false"):
            return bool(self.value == "true")
        raise self.bad("true or false")

    def number(self, lo: float | None = None) -> float:
        v = self.value
        if isinstance(v, str):
            with contextlib.suppress(ValueError):
                v = float(v)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
            raise self.bad("a number")
        if lo is not None and v < lo:
            raise self.bad(f"a number of at least {lo:g}")
        return float(v)

    def words(self) -> list[str]:
        if isinstance(self.value, str):
            return pm2_words(self.value)
        if isinstance(self.value, list) and all(isinstance(x, (str, int, float)) and not isinstance(x, bool)
                                                for x in self.value):
            return [js_string(x) or "" for x in self.value]
        raise self.bad("a list of strings, or a string")

    def millis(self, lo: float | None = None) -> float:
        """PM2's "stime": a number of ms, or "10s" / "5m" / "1h"."""
        if isinstance(self.value, str) and re.fullmatch(r"\d+[hms]", self.value):
            return float(self.value[:-1]) * {"h": 3_600_000, "m": 60_000, "s": 1000}[self.value[-1]]
        return self.number(lo)

    def bytes_(self) -> int:
        """PM2's "sbyte": bytes, or "150M" / "1G" / "500K"."""
        if isinstance(self.value, str):
            m = re.fullmatch(r"(\d+)([GMK]?)", self.value)
            if not m:
                raise self.bad('a size such as "150M", "1G" or "500K"')
            return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2)]
        return int(self.number(0))
