"""How components see the supervisor: typed protocols instead of its private attributes.

The API (herder.control), the log views (herder.logs), herder's report to its own
service manager (herder.runtime.upward) and the test harness depend on `Host`, never on
the Supervisor class: they read the core's World (read-only), post typed events, ask
questions that have answers (`ask` carries a ticket to the core and awaits its Reply),
and publish informational events on the bus. Nothing but the core writes instance state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio

    from herder.config import Config
    from herder.core.effects import Reply
    from herder.core.events import Event
    from herder.core.instance import Instance
    from herder.core.world import World
    from herder.logs._hub import LogHub
    from herder.runtime.clock import Clock
    from herder.runtime.events import EventBus


class Component(Protocol):
    """Something that lives as long as the supervisor (the API server, herder's report to
    its manager): entered in order before any service starts, exited in reverse after the
    last one stopped."""

    async def __aenter__(self) -> Any: ...
    async def __aexit__(self, *exc: object) -> Any: ...


class Host(Protocol):
    @property
    def config(self) -> Config: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def events(self) -> EventBus: ...
    @property
    def world(self) -> World: ...
    @property
    def instances(self) -> Mapping[str, Instance]: ...
    @property
    def logs(self) -> LogHub: ...
    @property
    def shutting_down(self) -> bool: ...
    @property
    def exit_code(self) -> int: ...
    @property
    def components(self) -> list[Component]: ...

    def post(self, event: Event) -> None:
        """An input for the core (applied on the loop, in order)."""
        ...

    def when_started(self, fn: Callable[[], None]) -> None:
        """Call `fn` once the start (or the adoption of what a killed herder left) has been
        applied: every instance `up` starts wants up by then. At once if that is past."""
        ...

    def request(self, make: Callable[[int], Event]) -> asyncio.Future[Reply]:
        """Post `make(ticket)` now; the future gets the core's Reply(ticket)."""
        ...

    async def ask(self, make: Callable[[int], Event]) -> Reply:
        """Post `make(ticket)` and wait for the core's Reply(ticket)."""
        ...

    def take_stored(self, name: str) -> int | None:
        """An fd a previous decision process kept with the keeper (a listening socket), once."""
        ...

    def store(self, name: str, fd: int) -> None:
        """Keep a copy of fd with the keeper, for the next decision process."""
        ...

    def upgrade_refused(self) -> str:
        """Why `upgrade` cannot be done now ("" when it can)."""
        ...

    def upgrade(self) -> None:
        """Hand over to the installed version (herder.keeper.upgrade); this process exits."""
        ...

    def started_by(self) -> tuple[str, int]:
        """Why this decision process started (start, restart, upgrade, upgrade_failed,
        keeper_lost) and its generation under the keeper."""
        ...

    def resolve(self, names: Iterable[str]) -> list[str]: ...
    def status(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]: ...
