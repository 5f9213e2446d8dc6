"""The Windows SCM status protocol, as pure logic over a small seam.

The SCM expects: START_PENDING with a checkpoint that keeps increasing and a wait hint
saying how long until the next change, then RUNNING; STOP_PENDING likewise while the
shutdown runs; STOPPED with the exit code. A service that stops advancing its
checkpoint within the wait hint is considered hung. This module decides *what* to
report; :mod:`herder.service._windows` is the only place that calls pywin32. It runs
for real under Wine's SCM in the Windows tier; a fake seam (tests/service/test_svc_scm.py)
keeps only what Wine cannot do: SHUTDOWN, PRESHUTDOWN, the start-timeout fallback.

RUNNING is reported at ``ctx.ready()``. If main has not called it when
``start_timeout`` is up, RUNNING is reported anyway with a warning: the SCM never flags a
service that dispatched but stays START_PENDING, so one that never calls ready() would
otherwise sit in "Starting" for ever, blocking ``sc start``, ``net start`` and its
dependents.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("herder.service")

# winsvc.h values, spelled out so the logic and its tests need no pywin32.
STOPPED, START_PENDING, STOP_PENDING, RUNNING = 1, 2, 3, 4
CONTINUE_PENDING, PAUSE_PENDING, PAUSED = 5, 6, 7
PENDING = {START_PENDING, STOP_PENDING, CONTINUE_PENDING, PAUSE_PENDING}

CONTROL_STOP, CONTROL_PAUSE, CONTROL_CONTINUE, CONTROL_INTERROGATE = 1, 2, 3, 4
CONTROL_SHUTDOWN, CONTROL_PARAMCHANGE, CONTROL_PRESHUTDOWN = 5, 6, 0x0F

ACCEPT_STOP, ACCEPT_PAUSE_CONTINUE, ACCEPT_SHUTDOWN = 0x1, 0x2, 0x4
ACCEPT_PARAMCHANGE, ACCEPT_PRESHUTDOWN = 0x8, 0x100

NO_ERROR = 0
ERROR_CALL_NOT_IMPLEMENTED = 120
ERROR_SERVICE_SPECIFIC_ERROR = 1066

#: The least wait hint we ever send: the SCM must not think us hung between two ticks.
MIN_WAIT_HINT = 2.0

CONTROL_NAMES = {
    CONTROL_STOP: "SCM STOP",
    CONTROL_SHUTDOWN: "SCM SHUTDOWN",
    CONTROL_PRESHUTDOWN: "SCM PRESHUTDOWN",
    CONTROL_PAUSE: "SCM PAUSE",
    CONTROL_CONTINUE: "SCM CONTINUE",
    CONTROL_PARAMCHANGE: "SCM PARAMCHANGE",
}
_KIND = {
    CONTROL_STOP: "stop",
    CONTROL_SHUTDOWN: "stop",
    CONTROL_PRESHUTDOWN: "stop",
    CONTROL_PAUSE: "pause",
    CONTROL_CONTINUE: "continue",
    CONTROL_PARAMCHANGE: "reload",
}


@dataclass(frozen=True)
class ScmStatus:
    """The fields of SERVICE_STATUS we set (the service type is always own-process)."""

    state: int
    controls_accepted: int
    win32_exit_code: int = NO_ERROR
    service_exit_code: int = 0
    checkpoint: int = 0
    wait_hint_ms: int = 0


class ScmSeam(Protocol):
    """What we need from pywin32; ``_windows.PyWin32Seam`` is the real one."""

    def set_status(self, status: ScmStatus) -> None: ...

    def log_event(self, level: int, message: str) -> None: ...

    def host(
        self,
        service_main: Callable[[], int],
        on_control: Callable[[int], int],
    ) -> int:
        """Run ``service_main`` as the SCM's service; ``on_control`` gets control codes."""
        ...


def accepted_controls(*, pausable: bool, reloadable: bool) -> int:
    """Controls accepted while running: PAUSE/CONTINUE and PARAMCHANGE only with handlers."""
    accepted = ACCEPT_STOP | ACCEPT_SHUTDOWN | ACCEPT_PRESHUTDOWN
    if pausable:
        accepted |= ACCEPT_PAUSE_CONTINUE
    if reloadable:
        accepted |= ACCEPT_PARAMCHANGE
    return accepted


def control_event(control: int, accepted: int) -> tuple[str, str] | None:
    """(kind, reason) for the runtime, or None for a control we do not take."""
    kind = _KIND.get(control)
    if kind is None:
        return None
    if kind in ("pause", "continue") and not accepted & ACCEPT_PAUSE_CONTINUE:
        return None
    if kind == "reload" and not accepted & ACCEPT_PARAMCHANGE:
        return None
    return kind, CONTROL_NAMES[control]


class ScmReporter:
    """Turns lifecycle points into SetServiceStatus calls. Loop thread only."""

    def __init__(
        self,
        seam: ScmSeam,
        *,
        accepted: int,
        tick_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seam = seam
        self._accepted = accepted
        self.tick_interval: float | None = tick_interval
        self._clock = clock
        self._state: int | None = None
        self._checkpoint = 0
        self._until: float | None = None

    def _report(self, state: int, seconds: float | None = None, exit_code: int = 0) -> None:
        now = self._clock()
        if seconds is not None:
            self._until = now + seconds
        pending = state in PENDING
        self._checkpoint = self._checkpoint + 1 if pending else 0
        hint = 0
        if pending:
            left = (self._until - now) if self._until is not None else 0.0
            hint = round(max(left, MIN_WAIT_HINT) * 1000)
        # No controls while starting or stopping: the SCM queues nothing, and a stop
        # that arrives while starting is refused until we are RUNNING.
        controls = 0 if state in (START_PENDING, STOP_PENDING, STOPPED) else self._accepted
        self._state = state
        self._seam.set_status(
            ScmStatus(
                state=state,
                controls_accepted=controls,
                win32_exit_code=ERROR_SERVICE_SPECIFIC_ERROR if exit_code else NO_ERROR,
                service_exit_code=exit_code,
                checkpoint=self._checkpoint,
                wait_hint_ms=hint,
            )
        )

    def starting(self, start_timeout: float) -> None:
        self._report(START_PENDING, start_timeout)

    def ready(self) -> None:
        if self._state == START_PENDING:
            self._report(RUNNING)

    def status(self, text: str) -> None:
        pass  # the SCM has no status text

    def watchdog(self) -> None:
        pass

    def reloading(self) -> None:
        pass

    def reloaded(self) -> None:
        pass

    def pausing(self, pause: bool) -> None:
        self._report(PAUSE_PENDING if pause else CONTINUE_PENDING, MIN_WAIT_HINT)

    def paused(self, pause: bool) -> None:
        if self._state != STOP_PENDING:
            self._report(PAUSED if pause else RUNNING)

    def stopping(self, budget: float | None) -> None:
        self._report(STOP_PENDING, budget)

    def step(self, name: str, timeout: float) -> None:
        self._report(STOP_PENDING, timeout)

    def stopped(self, exit_code: int) -> None:
        self._report(STOPPED, exit_code=exit_code)

    def tick(self) -> None:
        """Advance the checkpoint while pending; the start-timeout fallback lives here."""
        if self._state not in PENDING:
            return
        if (
            self._state == START_PENDING
            and self._until is not None
            and self._clock() >= self._until
        ):
            log.warning(
                "main has not called ctx.ready() within start_timeout; reporting RUNNING "
                "to the SCM anyway. Call ctx.ready() once the service accepts work."
            )
            self._report(RUNNING)
            return
        assert self._state is not None
        self._report(self._state)


class EventLogHandler(logging.Handler):
    """Logs to the Windows Event Log through the seam, when nothing else is configured."""

    def __init__(self, write: Callable[[int, str], None]) -> None:
        super().__init__()
        self._write = write

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(record.levelno, self.format(record))
        except Exception:  # noqa: BLE001 - logging's own error path
            self.handleError(record)
