"""Classic Unix daemonizing, through python-daemon (PEP 3143's reference implementation).

Why python-daemon and not a hand-written double fork: the details it gets right are the
ones hand-written versions forget (fork, setsid, second fork so we can never reacquire a
controlling terminal, chdir /, umask, closing inherited fds, stdio to /dev/null, core
dumps off). It is imported only when ``daemonize=True`` is asked for.

We keep our own pidfile and lock rather than python-daemon's ``pidfile=`` hook: ours is
acquired *before* forking, so "already running" is reported on the terminal that ran the
command, and the lock's fd is passed through ``files_preserve``; the daemon then
rewrites the pid (the parent's pid is not the daemon's).
"""

from __future__ import annotations

import logging
import signal
import sys

from herder.service._errors import ServiceError


def _log_file_fds() -> list[int]:
    """Files open by logging handlers: python-daemon would close them otherwise."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    fds = []
    for logger in loggers:
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.FileHandler) and stream is not None:
                fds.append(stream.fileno())
    return fds


def daemonize(preserve: list[int]) -> None:
    """Detach from the terminal; returns in the daemon (the original process exits 0)."""
    if sys.platform == "win32":
        raise ServiceError("daemonize=True is Unix only; on Windows install it as a service")
    try:
        import daemon  # python-daemon ships no types (pyproject: ignore_missing_imports)
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ServiceError(
            "daemonize=True needs the python-daemon package: pip install python-daemon"
        ) from exc
    context = daemon.DaemonContext(
        detach_process=True,
        working_directory="/",
        umask=0o022,
        files_preserve=preserve + _log_file_fds(),
        # Job-control signals are ignored; stop and reload are ours, installed after this.
        signal_map={signal.SIGTSTP: None, signal.SIGTTIN: None, signal.SIGTTOU: None},
    )
    # If we lead the terminal's session, our exit sends SIGHUP to the foreground process
    # group, which still holds the first child until it calls setsid(): ignore SIGHUP
    # across the forks, as daemon(3) recipes do; our own handler is installed after.
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        context.open()
    finally:
        signal.signal(signal.SIGHUP, previous)
