"""The config of a service's lifecycle around its process: hooks, least privilege, calendars
and the exit codes that override the restart policy (docs/hooks.md).

Kept apart from model.py because each value here is checked against something outside
TOML: a cron expression against the cron parser that will run it (cronsim), a time zone
against the zone database, a capability against the kernel's names, a umask against octal.
A mistake is found by `herder check` with its file and line, not by a service that never
starts or a job that never runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from herder.config.schema import _show, opt, p_argv, p_bool
from herder.config.units import parse_duration, parse_signal
from herder.process.capabilities import CAPABILITIES

HOOK_KINDS = ("pre_start", "post_start", "pre_stop", "post_stop")
DEFAULT_HOOK_TIMEOUT = 30.0

# Vixie cron's shorthands (cronsim takes the five or six fields only).
CRON_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
               "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
OVERLAP_POLICIES = ("skip", "queue", "replace")
MISSED_POLICIES = ("skip", "run")


# ---- hooks -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hook:
    """One hook: an argv run with the service's account, environment and working directory."""

    command: tuple[str, ...]
    timeout: float = DEFAULT_HOOK_TIMEOUT
    privileged: bool = False     # run as herder's own user, without [security] (systemd's "+" prefix)

    def __str__(self) -> str:
        return shlex.join(self.command)


def p_hook(v: Any) -> Hook | None:
    """argv list or string, or `{ command = [...], timeout = "30s", privileged = false }`"""
    if isinstance(v, (str, list)):
        return Hook(p_argv(v))
    if not isinstance(v, Mapping):
        raise ValueError(f'expected a command (a list or a string) or {{ command = [...], timeout = "30s" }}; '
                         f"got {_show(v)}")
    unknown = sorted(set(v) - {"command", "timeout", "privileged"})
    if unknown:
        raise ValueError(f"unknown key {unknown[0]}; expected command, timeout, privileged")
    if "command" not in v:
        raise ValueError('missing key "command"; expected { command = [...], timeout = "30s" }')
    timeout = DEFAULT_HOOK_TIMEOUT
    if "timeout" in v:
        try:
            timeout = parse_duration(v["timeout"])
        except ValueError as e:
            raise ValueError(f"timeout: {e}") from None
        if not 0 < timeout <= 7 * 86400:
            raise ValueError(f"timeout: {_show(v['timeout'])} is out of range; expected a duration above zero, "
                             "at most 7 days")
    try:
        privileged = p_bool(v.get("privileged", False))
    except ValueError as e:
        raise ValueError(f"privileged: {e}") from None
    try:
        argv = p_argv(v["command"])
    except ValueError as e:
        raise ValueError(f"command: {e}") from None
    return Hook(argv, timeout, privileged)


@dataclass(frozen=True)
class Hooks:
    """Commands around the service's process (docs/hooks.md), each with its own timeout
    (default 30s). Their output goes to the service's log, each line marked `[hook NAME]`."""

    pre_start: Hook | None = opt(None, p_hook, "before each spawn; a failure (exit ≠ 0, timeout) is a failed start "
                                 "(backoff, start_limit)", example='["python", "manage.py", "migrate"]')
    post_start: Hook | None = opt(None, p_hook, "once the instance is ready, before it counts as running; a failure "
                                  "stops it as a failed start", example='["curl", "-fsS", "http://lb/add"]')
    pre_stop: Hook | None = opt(None, p_hook, "before the stop signal, when the instance was ready (drain); a failure "
                                "is reported and the stop goes on", example='["curl", "-fsS", "http://lb/drain"]')
    post_stop: Hook | None = opt(None, p_hook, "after the process ended (stop, crash or failed start), before a "
                                 "restart; a failure is reported", example='["rm", "-f", "/run/web.sock"]')

    def get(self, kind: str) -> Hook | None:
        hook: Hook | None = getattr(self, kind)
        return hook


# ---- least privilege ---------------------------------------------------------------------------

def p_capabilities(v: Any) -> tuple[str, ...] | None:
    """list of capability names (`NET_BIND_SERVICE` or `CAP_NET_BIND_SERVICE`); `[]` drops all"""
    if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
        raise ValueError(f'expected a list of capability names such as ["NET_BIND_SERVICE"]; got {_show(v)}')
    out = []
    for c in v:
        name = c.strip().upper().removeprefix("CAP_")
        if name not in CAPABILITIES:
            raise ValueError(f'unknown capability "{c}"; expected a Linux capability name such as NET_BIND_SERVICE, '
                             "CHOWN, SETUID or SYS_NICE (see capabilities(7))")
        if name not in out:
            out.append(name)
    return tuple(out)


def p_umask(v: Any) -> int | None:
    """octal text such as `"027"` or `"0077"`"""
    if isinstance(v, str) and v.strip() and len(v.strip()) <= 4 and all(c in "01234567" for c in v.strip()):
        return int(v.strip(), 8)
    raise ValueError(f'expected a umask in octal text such as "027" or "0077"; got {_show(v)}')


def p_paths(v: Any) -> tuple[str, ...]:
    """list of absolute paths"""
    if not isinstance(v, list) or not all(isinstance(p, str) for p in v):
        raise ValueError(f'expected a list of absolute paths such as ["/etc", "/usr"]; got {_show(v)}')
    for p in v:
        if not p.startswith("/") or "\0" in p:
            raise ValueError(f'"{p}" is not an absolute path; expected a path starting with /')
    return tuple(dict.fromkeys(v))


@dataclass(frozen=True)
class Security:
    """Least privilege, applied between fork and exec (docs/hooks.md#least-privilege). What
    herder cannot apply on this machine fails the start with the reason; it never runs the
    program unprotected."""

    no_new_privileges: bool = opt(False, p_bool, "the program and its children can never gain privileges "
                                  "(setuid binaries, file capabilities): PR_SET_NO_NEW_PRIVS")
    capabilities: tuple[str, ...] | None = opt(None, p_capabilities,
                                               "the only capabilities kept (bounding, permitted, effective, "
                                               "inheritable and ambient sets, also after the switch to `user`); "
                                               "[] drops all; unset leaves them as they are",
                                               example='["NET_BIND_SERVICE"]')
    umask: int | None = opt(None, p_umask, "file mode creation mask of the process", example='"027"')
    clear_env: bool = opt(False, p_bool, "start from an empty environment: only env_file, env and herder's own "
                          "variables (PATH is kept unless env sets it)")
    private_tmp: bool = opt(False, p_bool, "a /tmp and /var/tmp of its own (a fresh tmpfs in a mount namespace; "
                            "needs herder as root)")
    read_only_paths: tuple[str, ...] = opt((), p_paths, "these paths are mounted read-only for the service (mount "
                                           "namespace; needs herder as root)")

    @property
    def any(self) -> bool:
        return self != Security()

    @property
    def mounts(self) -> bool:
        return self.private_tmp or bool(self.read_only_paths)


# ---- calendars and exit codes ------------------------------------------------------------------

def cron_fields(expr: str) -> str:
    """The five or six fields of an expression (a Vixie cron shorthand expanded)."""
    text = expr.strip()
    return CRON_MACROS.get(text.lower(), text)


def p_cron(v: Any) -> str | None:
    """cron expression: `MIN HOUR DOM MONTH DOW` (or six fields, seconds first), or @daily, @hourly …"""
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f'expected a cron expression such as "0 3 * * *" (03:00 every day); got {_show(v)}')
    from datetime import datetime

    from cronsim import CronSim, CronSimError

    fields = cron_fields(v)
    if fields.startswith("@"):
        raise ValueError(f'unknown shorthand "{v}"; expected one of {", ".join(CRON_MACROS)}')
    try:
        next(CronSim(fields, datetime(2000, 1, 1, tzinfo=UTC)))
    except (CronSimError, ValueError, StopIteration) as e:
        raise ValueError(f'"{v}" is not a cron expression herder can run ({e}); expected five fields '
                         'MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK such as "0 3 * * *", or @daily, @hourly …') from None
    return v.strip()


def p_timezone(v: Any) -> str | None:
    """IANA time zone name such as `Europe/Paris` or `UTC`"""
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f'expected a time zone name such as "Europe/Paris" or "UTC"; got {_show(v)}')
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f'unknown time zone "{v}"; expected an IANA name such as "Europe/Paris", '
                         '"America/New_York" or "UTC"') from None
    return v.strip()


def p_exit_statuses(v: Any) -> tuple[int | str, ...]:
    """list of exit codes (0 to 255) and signal names (`"SIGKILL"`)"""
    if not isinstance(v, list):
        raise ValueError(f'expected a list of exit codes and signal names such as [78, "SIGABRT"]; got {_show(v)}')
    out: list[int | str] = []
    for x in v:
        if isinstance(x, int) and not isinstance(x, bool):
            if not 0 <= x <= 255:
                raise ValueError(f"{x} is not an exit code; expected whole numbers from 0 to 255 or signal names")
            out.append(x)
        elif isinstance(x, str):
            try:
                out.append(parse_signal(x).name)
            except ValueError:
                raise ValueError(f'"{x}" is not a signal name; expected exit codes (0 to 255) or signal names '
                                 'such as "SIGKILL"') from None
        else:
            raise ValueError(f"expected exit codes (0 to 255) and signal names; got {_show(x)}")
    return tuple(dict.fromkeys(out))
