"""Running the lifecycle as a Windows service: the runtime on the SCM's service thread.

Separate from ``_windows`` (the pywin32 calls) so that this wiring runs against a fake
seam too, which records SetServiceStatus calls (tests/service/test_svc_scm.py); the real
seam runs it under Wine's SCM in the Windows tier (tests/platform/test_windows_scm.py).
It takes the service's name and settings, not the ``Service`` object, so that
``_service`` can import it and nothing here imports ``_service`` back.
"""

from __future__ import annotations

import logging

from herder.service._modes import Mode
from herder.service._runtime import Hooks, Runtime, Timing
from herder.service._scm import (
    ERROR_CALL_NOT_IMPLEMENTED,
    NO_ERROR,
    EventLogHandler,
    ScmReporter,
    ScmSeam,
    accepted_controls,
    control_event,
)


def run_under_scm(
    name: str,
    hooks: Hooks,
    timing: Timing,
    seam: ScmSeam,
    *,
    auto_watchdog: bool = True,
    tick_interval: float = 1.0,
) -> int:
    """Host the service ``name`` through ``seam``; return its exit code."""
    accepted = accepted_controls(
        pausable=hooks.on_pause is not None, reloadable=hooks.on_reload is not None
    )
    reporter = ScmReporter(seam, accepted=accepted, tick_interval=tick_interval)
    runtime = Runtime(name, Mode.WINDOWS_SCM, hooks, reporter, timing, auto_watchdog=auto_watchdog)
    root = logging.getLogger()
    handler: logging.Handler | None = None
    if not root.handlers:  # a service has no console: the Event Log is where logs go
        handler = EventLogHandler(seam.log_event)
        root.addHandler(handler)
        root.setLevel(min(root.level or logging.INFO, logging.INFO))

    def on_control(control: int) -> int:
        event = control_event(control, accepted)
        if event is None:
            return ERROR_CALL_NOT_IMPLEMENTED
        runtime.post(*event)
        return NO_ERROR

    try:
        # No signal handlers: the SCM's service thread is not the main thread, and a
        # service has no console to send it Ctrl+C.
        return seam.host(lambda: runtime.run(signals=False, redeliver=False), on_control)
    finally:
        if handler is not None:
            root.removeHandler(handler)
