"""``Service``: the decorators, and ``run()``, which wires the pieces in a fixed order.

Order matters in ``run()``: detect the mode (and take the manager's variables out of
the environment, so our own children do not inherit them), take the single-instance
lock *before* daemonizing (so "already running" reaches the terminal), daemonize, write
the pidfile with the final pid, then run; on the way out remove the pidfile and release
the lock whatever happened.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from herder.service._errors import AlreadyRunning, ServiceError
from herder.service._host import run_under_scm
from herder.service._modes import Detected, Mode, detect
from herder.service._notify import Notifier, NotifyReporter
from herder.service._pidfile import InstanceLock, PidFile, default_lock_path
from herder.service._report import NullReporter, Reporter
from herder.service._runtime import EXIT_FAILURE, EXIT_FORCED, Hooks, Runtime, Timing
from herder.service._windows import PyWin32Seam, is_scm_child
from herder.units import seconds

log = logging.getLogger("herder.service")

F = TypeVar("F", bound=Callable[..., Any])

#: Variables meant for this process only (sd_notify(3)'s unset_environment).
_OWN_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _configure_logging(mode: Mode) -> None:
    """Log to stderr when the program has not set up logging itself.

    Managers (systemd, herder, launchd) timestamp each line, so only the console gets
    a timestamp of ours.
    """
    if logging.getLogger().handlers or log.handlers:
        return
    handler = logging.StreamHandler()
    stamp = "%(asctime)s " if mode is Mode.CONSOLE else ""
    handler.setFormatter(logging.Formatter(stamp + "%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


class Service:
    """A program that behaves as a service under whichever manager runs it.

    ``stop_timeout`` overrides the manager's (see docs/service.md for how it is found);
    ``start_timeout`` bounds how long the SCM is kept in START_PENDING without
    ``ctx.ready()``; ``exit_timeout`` is how long main gets to return once stopping is
    set; ``auto_watchdog=False`` leaves watchdog pings to ``ctx.watchdog()``.
    """

    def __init__(
        self,
        name: str,
        *,
        stop_timeout: float | str | None = None,
        start_timeout: float | str = "30s",
        exit_timeout: float | str = "5s",
        auto_watchdog: bool = True,
    ) -> None:
        if not name or any(c in name for c in "/\\\0"):
            raise ServiceError(f"a service name must be a plain word, got {name!r}")
        self.name = name
        self.stop_timeout = None if stop_timeout is None else seconds(stop_timeout)
        self.start_timeout = seconds(start_timeout)
        self.exit_timeout = seconds(exit_timeout)
        self.auto_watchdog = auto_watchdog
        self._main: Callable[..., Any] | None = None
        self._on_reload: Callable[..., Any] | None = None
        self._on_pause: Callable[..., Any] | None = None
        self._on_continue: Callable[..., Any] | None = None

    # ---- decorators ------------------------------------------------------------------

    def main(self, fn: F) -> F:
        """The service's body: ``fn(ctx)``, sync (run in a thread) or async."""
        self._main = fn
        return fn

    def on_reload(self, fn: F) -> F:
        """Called on SIGHUP or SCM PARAMCHANGE."""
        self._on_reload = fn
        return fn

    def on_pause(self, fn: F) -> F:
        """Called on SCM PAUSE (needs ``on_continue`` too)."""
        self._on_pause = fn
        return fn

    def on_continue(self, fn: F) -> F:
        """Called on SCM CONTINUE (needs ``on_pause`` too)."""
        self._on_continue = fn
        return fn

    # ---- run ----------------------------------------------------------------------

    def _hooks(self) -> Hooks:
        if self._main is None:
            raise ServiceError(f"{self.name}: no main function; decorate one with @svc.main")
        if (self._on_pause is None) != (self._on_continue is None):
            raise ServiceError(
                f"{self.name}: on_pause and on_continue go together; define both or neither"
            )
        return Hooks(self._main, self._on_reload, self._on_pause, self._on_continue)

    def detect(self) -> Detected:
        """The mode and manager settings this process would run with."""
        windows = sys.platform == "win32"
        return detect(
            os.environ,
            platform=sys.platform,
            pid=os.getpid(),
            # Only launchd detection needs the parent pid. On Windows, is_scm_child finds the
            # parent itself: os.getppid() aborts a Wine process that has no Windows parent.
            ppid=0 if windows else os.getppid(),
            scm_child=windows and is_scm_child(),
        )

    def run(
        self,
        *,
        pidfile: str | os.PathLike[str] | None = None,
        single_instance: bool = False,
        daemonize: bool = False,
        exit: bool = True,
    ) -> int:
        """Run until fully stopped.

        With ``exit=True`` (the default) the process exits with the service's exit code
        (``sys.exit``); with ``exit=False`` the code is returned, and the stop signal
        is re-raised to the handlers that were there before, for embedding.
        A pidfile implies a single instance.
        """
        hooks = self._hooks()
        detected = self.detect()
        for key in _OWN_VARIABLES:
            os.environ.pop(key, None)
        if detected.mode is not Mode.WINDOWS_SCM:
            _configure_logging(detected.mode)

        lock: InstanceLock | None = None
        pid_file = PidFile(Path(pidfile).absolute()) if pidfile is not None else None
        if pid_file is not None or single_instance:
            path = (
                pid_file.path.with_name(pid_file.path.name + ".lock")
                if pid_file is not None
                else default_lock_path(self.name)
            )
            lock = InstanceLock(self.name, path)
            try:
                lock.acquire()
            except AlreadyRunning as exc:
                if not exit:
                    raise
                log.error("%s", exc)
                sys.exit(EXIT_FAILURE)
        try:
            if daemonize:
                from herder.service._daemon import daemonize as detach

                detach([lock.fd] if lock is not None and lock.fd is not None else [])
                if lock is not None:
                    lock.write_pid()
            if pid_file is not None:
                pid_file.write()
            code = self._run_in_mode(hooks, detected, pid_file, exit)
        finally:
            if pid_file is not None:
                pid_file.remove()
            if lock is not None:
                lock.release()
        if exit:
            sys.exit(code)
        return code

    def _timing(self, detected: Detected) -> Timing:
        return Timing(
            stop_timeout=self.stop_timeout if self.stop_timeout is not None else detected.stop_timeout,
            start_timeout=self.start_timeout,
            exit_timeout=self.exit_timeout,
            watchdog_interval=detected.watchdog_interval,
        )

    def _run_in_mode(
        self, hooks: Hooks, detected: Detected, pid_file: PidFile | None, exit: bool
    ) -> int:
        if detected.mode is Mode.WINDOWS_SCM:
            return run_under_scm(self.name, hooks, self._timing(detected), PyWin32Seam(self.name),
                                 auto_watchdog=self.auto_watchdog)

        reporter: Reporter = NullReporter()
        if detected.notify_socket:
            reporter = NotifyReporter(Notifier(detected.notify_socket))

        def force() -> None:
            if pid_file is not None:
                pid_file.remove()
            logging.shutdown()
            os._exit(EXIT_FORCED)

        runtime = Runtime(
            self.name,
            detected.mode,
            hooks,
            reporter,
            self._timing(detected),
            auto_watchdog=self.auto_watchdog,
            on_force=force,
        )
        return runtime.run(signals=True, redeliver=not exit)
