"""Exceptions raised by herder.service.

Kept inside the package (not in a project-wide errors module) so the library can be
imported on its own; messages name the service and say what to do next.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A misuse of the library or a start-up condition the service cannot get past."""


class AlreadyRunning(ServiceError):
    """Another instance holds the single-instance lock.

    ``pid`` is the holder's pid when it could be read from the lock file, else ``None``.
    """

    def __init__(self, name: str, lock_path: str, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "another process (pid unknown)"
        super().__init__(
            f"{name} is already running as {who} (lock {lock_path} is held). "
            f"Stop that instance first, or give this one a different pidfile."
        )
        self.name = name
        self.lock_path = lock_path
        self.pid = pid
