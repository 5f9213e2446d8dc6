"""One exception tree for herder, with the CLI's fixed exit codes.

Every error a user can see derives from HerderError and carries the exit code the CLI
returns for it (interface.md: 0 ok, 1 operation failed, 2 usage or config error,
3 supervisor not running). Messages name the service, its state and the next step.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


class HerderError(Exception):
    """Base of every error herder reports to a user."""

    exit_code = EXIT_FAILED


class UsageError(HerderError):
    """Bad command-line arguments."""

    exit_code = EXIT_USAGE


class ConfigError(HerderError):
    """A configuration with one or more errors; `problems` lists every one of them."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class NotRunning(HerderError):
    """No supervisor answers on the socket."""

    exit_code = EXIT_NOT_RUNNING


class AlreadyRunning(HerderError):
    """Another supervisor owns this state_dir."""

    exit_code = EXIT_FAILED


class SpawnError(HerderError):
    """A command could not be started (the OS error is in the message)."""


class TransitionError(HerderError):
    """An (observed state, event) pair that the state machine does not allow.

    Raised by the pure core; reaching it is a bug in herder, never a user error.
    """


class UnknownService(HerderError):
    """A command named services that the config does not have (a usage error: exit 2)."""

    exit_code = EXIT_USAGE

    def __init__(self, unknown: list[str], known: list[str]) -> None:
        self.unknown, self.known = unknown, known
        super().__init__(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(known) or 'none'}")
