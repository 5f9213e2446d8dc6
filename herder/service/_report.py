"""The one seam between the lifecycle and whichever manager is in charge.

The runtime calls a :class:`Reporter` at each lifecycle point and never branches on the
mode itself. Implementations: :class:`NullReporter` (console, launchd: nobody listens),
``NotifyReporter`` (sd_notify: systemd and herder) and ``ScmReporter`` (Windows).
All methods are called from the event-loop thread only.
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """Lifecycle notifications, in the order the runtime makes them."""

    #: Seconds between :meth:`tick` calls while a pending state lasts; None: no ticks.
    tick_interval: float | None

    def starting(self, start_timeout: float) -> None: ...
    def ready(self) -> None: ...
    def status(self, text: str) -> None: ...
    def watchdog(self) -> None: ...
    def reloading(self) -> None: ...
    def reloaded(self) -> None: ...
    def pausing(self, pause: bool) -> None: ...
    def paused(self, pause: bool) -> None: ...
    def stopping(self, budget: float | None) -> None: ...
    def step(self, name: str, timeout: float) -> None: ...
    def stopped(self, exit_code: int) -> None: ...
    def tick(self) -> None: ...


class NullReporter:
    """No manager listens (console, launchd): every notification is a no-op."""

    tick_interval: float | None = None

    def starting(self, start_timeout: float) -> None:
        pass

    def ready(self) -> None:
        pass

    def status(self, text: str) -> None:
        pass

    def watchdog(self) -> None:
        pass

    def reloading(self) -> None:
        pass

    def reloaded(self) -> None:
        pass

    def pausing(self, pause: bool) -> None:
        pass

    def paused(self, pause: bool) -> None:
        pass

    def stopping(self, budget: float | None) -> None:
        pass

    def step(self, name: str, timeout: float) -> None:
        pass

    def stopped(self, exit_code: int) -> None:
        pass

    def tick(self) -> None:
        pass
