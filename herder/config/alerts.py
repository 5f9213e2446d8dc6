"""The [alerts] and [hooks] tables: who is told when something goes wrong (docs/hooks.md).

[alerts] sends rate-limited, de-duplicated notifications (and "resolved" messages) for a
few conditions to apprise URLs and `exec:` commands; [hooks] `on_event` runs a command for
every event of the kinds it names, like supervisord's event listeners. Only the syntax is
checked here; whether apprise can parse a URL is asked of apprise itself by the loader
(herder.alerts.targets), so this module stays light to import.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from herder.config.schema import _show, opt, p_argv, p_bool, p_duration, p_int
from herder.config.units import parse_duration

# What an alert can be about: each is raised by some event and (but the one-shot ones)
# cleared by another, which sends the "resolved" message.
CONDITIONS = {
    "failed": "an instance gave up: start limit reached (resolved: running again)",
    "exited": "an instance ended unsuccessfully and is not restarted (restart = never, restart_prevent_exit_codes, "
              "a scheduled job) (resolved: it runs or completes again)",
    "unhealthy": "the liveness probe or watchdog says unhealthy (resolved: healthy)",
    "oom": "the kernel's OOM killer ended an instance",
    "restart_storm": "storm_restarts restarts of one instance within storm_window (resolved: a window without)",
    "adopted": "herder started and found instances a previous (crashed) herder left running",
    "hook_failed": "a hook failed or timed out (resolved: that hook succeeds again)",
    "spawn_failed": "the program could not be started at all",
    "stop_timeout": "an instance ignored its stop signal and was killed",
}
DEFAULT_ON = ("failed", "exited", "unhealthy", "oom", "restart_storm", "adopted")

# Kinds of the events herder publishes (the journal's `kind`), for on_event filters.
EVENT_KINDS = (
    "state", "spawn", "spawn_failed", "exit", "restart", "failed", "failing", "stop_timeout", "health", "mainpid",
    "extend", "waiting", "bind", "ready_check", "status", "notify_stopping", "notify_warning", "errno", "rolling",
    "supervisor", "bug", "hook", "schedule", "restart_prevented", "alert", "alert_failed", "on_event_failed",
    "log_dropped", "log_reopen", "log_forward_error", "limit_warning", "operator", "reload", "reload_failed",
    "adopted", "left_running")


def p_targets(v: Any) -> tuple[str, ...]:
    """list of apprise URLs (`json://host/path`, `slack://…`, `mailto://…`) and `exec:COMMAND ARGS`"""
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
        raise ValueError(f'expected a list such as ["json://127.0.0.1:9000/hook", "exec:/usr/local/bin/page-me"]; '
                         f"got {_show(v)}")
    for t in v:
        if t.startswith("exec:"):
            try:
                argv = shlex.split(t[5:])
            except ValueError as e:
                raise ValueError(f'"{t}": cannot split the command ({e}); expected shell-like quoting') from None
            if not argv:
                raise ValueError(f'"{t}": the command is empty; expected exec:/path/to/program ARGS')
        elif "://" not in t or not t.partition("://")[0].replace("+", "").isalnum():
            raise ValueError(f'"{t}" is not a notification URL; expected SCHEME://… as apprise knows it '
                             '(json://, slack://, mailto://, ntfy:// …) or exec:COMMAND')
    return tuple(dict.fromkeys(v))


def p_conditions(v: Any) -> tuple[str, ...]:
    """list of `failed`, `exited`, `unhealthy`, `oom`, `restart_storm`, `adopted`, `hook_failed`, `spawn_failed`,
    `stop_timeout`"""
    if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
        raise ValueError(f'expected a list such as ["failed", "unhealthy"]; got {_show(v)}')
    for c in v:
        if c not in CONDITIONS:
            raise ValueError(f'unknown alert condition "{c}"; expected some of {", ".join(CONDITIONS)}')
    return tuple(dict.fromkeys(v))


def p_service_names(v: Any) -> tuple[str, ...]:
    """list of service names; `[]` = every service"""
    if not isinstance(v, list) or not all(isinstance(c, str) and c for c in v):
        raise ValueError(f'expected a list of service names such as ["web"]; got {_show(v)}')
    return tuple(dict.fromkeys(v))


@dataclass(frozen=True)
class Alerts:
    """Notifications when something goes wrong, and when it is resolved (docs/hooks.md#alerts).
    Delivery never blocks supervision: it runs in the background, is retried with backoff,
    and a delivery that fails for good is itself an event (`alert_failed`)."""

    targets: tuple[str, ...] = opt((), p_targets, "where alerts go: apprise URLs and exec:COMMAND ARGS")
    on: tuple[str, ...] = opt(DEFAULT_ON, p_conditions, "conditions that raise an alert: "
                              + "; ".join(f"`{k}`: {d}" for k, d in CONDITIONS.items()),
                              example='["failed", "unhealthy", "oom", "restart_storm", "adopted"]')
    services: tuple[str, ...] = opt((), p_service_names, "only about these services; [] = all")
    storm_restarts: int = opt(5, p_int(2, 10000), "restart_storm: this many restarts of one instance …")
    storm_window: float = opt(600.0, p_duration, "… within this long", example='"10m"')
    min_interval: float = opt(300.0, p_duration, "the same alert (condition and instance) is sent at most once per "
                              "this long; repeats are counted into the next one", example='"5m"')
    max_per_hour: int = opt(60, p_int(1, 100000), "at most this many messages per hour in all; the rest are counted "
                            "and summed up in the next one that goes")
    resolved: bool = opt(True, p_bool, "also send a message when the condition clears")
    retries: int = opt(5, p_int(0, 100), "delivery attempts after the first (backoff 1s, 2s, 4s … at most 5 min)")
    timeout: float = opt(10.0, p_duration, "longest one delivery attempt may take", example='"10s"')

    def check(self) -> list[tuple[tuple[str, ...], str]]:
        if self.storm_window <= 0:
            return [(("storm_window",), "expected a duration above zero")]
        if self.timeout <= 0:
            return [(("timeout",), "expected a duration above zero")]
        return []


@dataclass(frozen=True)
class OnEvent:
    """A command run for each event of the given kinds (the event as HERDER_EVENT_* variables)."""

    command: tuple[str, ...]
    on: tuple[str, ...] = ()       # event kinds; () = every event
    timeout: float = 30.0


def _on_event(v: Any) -> OnEvent:
    if not isinstance(v, Mapping):
        raise ValueError(f'expected {{ command = [...], on = ["failed"] }}; got {_show(v)}')
    unknown = sorted(set(v) - {"command", "on", "timeout"})
    if unknown:
        raise ValueError(f"unknown key {unknown[0]}; expected command, on, timeout")
    if "command" not in v:
        raise ValueError('missing key "command"; expected { command = [...], on = ["failed"] }')
    try:
        argv = p_argv(v["command"])
    except ValueError as e:
        raise ValueError(f"command: {e}") from None
    kinds = v.get("on", [])
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise ValueError(f'on: expected a list of event kinds such as ["exit", "failed"]; got {_show(kinds)}')
    for k in kinds:
        if k not in EVENT_KINDS:
            raise ValueError(f'on: unknown event kind "{k}"; expected some of {", ".join(EVENT_KINDS)}')
    timeout = 30.0
    if "timeout" in v:
        try:
            timeout = parse_duration(v["timeout"])
        except ValueError as e:
            raise ValueError(f"timeout: {e}") from None
        if not 0 < timeout <= 86400:
            raise ValueError("timeout: expected a duration above zero, at most a day")
    return OnEvent(argv, tuple(dict.fromkeys(kinds)), timeout)


def p_on_event(v: Any) -> tuple[OnEvent, ...]:
    """`{ command = [...], on = ["exit", "failed"], timeout = "30s" }`, or a list of them"""
    items = v if isinstance(v, list) else [v]
    out = []
    for i, item in enumerate(items):
        try:
            out.append(_on_event(item))
        except ValueError as e:
            raise ValueError(f"[{i}]: {e}" if isinstance(v, list) else str(e)) from None
    return tuple(out)


@dataclass(frozen=True)
class SupervisorHooks:
    """The [hooks] table: commands run by the supervisor itself."""

    on_event: tuple[OnEvent, ...] = opt((), p_on_event, "run a command for each event of these kinds, one at a "
                                        "time in order (the event in HERDER_EVENT_KIND, HERDER_EVENT_INSTANCE, "
                                        "HERDER_EVENT_MESSAGE, HERDER_EVENT_JSON)")
