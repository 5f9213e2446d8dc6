"""Which manager runs us, and what it told us through the environment.

Detection is a pure function of the environment (plus two facts about the process that
are passed in), so every mode is testable on any OS. The rest of the library never asks
"which mode?" to decide *what* to do: it only picks the reporter that tells the manager
(sd_notify datagrams, SCM status calls, or nothing). That is how one code path serves
the console, herder, systemd, launchd and the Windows SCM.

The environment contract (docs/service.md):

- ``NOTIFY_SOCKET``: sd_notify datagram socket (path, or ``@abstract``). systemd sets it
  for Type=notify units; the herder supervisor sets it for every child.
- ``HERDER_INSTANCE`` / ``HERDER_SERVICE``: set by herder; their presence means herder mode.
- ``HERDER_STOP_TIMEOUT_USEC``: the manager's stop timeout. herder sets it from
  ``stop_timeout``; units written by ``herder install`` set it too, because systemd does
  not export ``TimeoutStopUSec`` to the service.
- ``WATCHDOG_USEC`` / ``WATCHDOG_PID``: systemd watchdog semantics (herder uses the same).
- ``INVOCATION_ID``: set by systemd for every unit, notify or not.
- ``XPC_SERVICE_NAME`` with parent pid 1 on macOS: a launchd job.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

# What a manager does when it does not tell us its stop timeout: systemd's
# DefaultTimeoutStopSec and launchd's ExitTimeOut defaults.
SYSTEMD_DEFAULT_STOP_TIMEOUT = 90.0
LAUNCHD_DEFAULT_STOP_TIMEOUT = 20.0


class Mode(enum.Enum):
    """The manager in charge of this process."""

    CONSOLE = "console"
    HERDER = "herder"
    SYSTEMD = "systemd"
    LAUNCHD = "launchd"
    WINDOWS_SCM = "windows-scm"


@dataclass(frozen=True)
class Detected:
    """What :func:`detect` learned. Durations are seconds; ``None`` means unknown."""

    mode: Mode
    notify_socket: str | None = None
    watchdog_interval: float | None = None
    stop_timeout: float | None = None
    instance: str | None = None


def _usec(environ: Mapping[str, str], key: str) -> float | None:
    raw = environ.get(key, "").strip()
    if not raw.isdigit() or int(raw) == 0:
        return None
    return int(raw) / 1_000_000


def _watchdog(environ: Mapping[str, str], pid: int) -> float | None:
    """WATCHDOG_USEC, unless WATCHDOG_PID says the watchdog is for another process."""
    owner = environ.get("WATCHDOG_PID", "").strip()
    if owner and owner != str(pid):
        return None
    return _usec(environ, "WATCHDOG_USEC")


def detect(
    environ: Mapping[str, str],
    *,
    platform: str,
    pid: int,
    ppid: int,
    scm_child: bool = False,
) -> Detected:
    """Decide the mode. ``scm_child`` is computed by the Windows seam (parent is services.exe)."""
    if platform == "win32" and scm_child:
        return Detected(Mode.WINDOWS_SCM)
    notify = environ.get("NOTIFY_SOCKET") or None
    watchdog = _watchdog(environ, pid)
    stop = _usec(environ, "HERDER_STOP_TIMEOUT_USEC")
    if environ.get("HERDER_INSTANCE"):
        return Detected(Mode.HERDER, notify, watchdog, stop, environ["HERDER_INSTANCE"])
    if notify or environ.get("INVOCATION_ID"):
        return Detected(
            Mode.SYSTEMD, notify, watchdog, stop or SYSTEMD_DEFAULT_STOP_TIMEOUT
        )
    xpc = environ.get("XPC_SERVICE_NAME", "")
    if platform == "darwin" and ppid == 1 and xpc not in ("", "0"):
        return Detected(Mode.LAUNCHD, None, None, stop or LAUNCHD_DEFAULT_STOP_TIMEOUT)
    return Detected(Mode.CONSOLE, None, None, stop)
