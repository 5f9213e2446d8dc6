"""Waiting for instances to reach a condition, on the event bus (never by polling).

Every state change is published on the bus; a waiter re-checks its predicate on each
event and once at the start, and gives up at its deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from herder.core.machine import Instance, State

SETTLED_UP = frozenset({State.RUNNING, State.EXITED, State.FAILED, State.STOPPED})
IDLE = frozenset({State.STOPPED, State.EXITED, State.FAILED})


async def wait_instances(sup: Any, names: Iterable[str], done: Callable[[Instance], bool], timeout: float) -> bool:
    """True once done(instance) holds for every named instance still known; False at the deadline."""
    names = list(names)
    fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def check(_ev: object = None) -> None:
        if not fut.done() and all(done(sup.instances[n]) for n in names if n in sup.instances):
            fut.set_result(True)

    unsubscribe = sup.events.subscribe(check)
    try:
        check()
        async with asyncio.timeout(timeout):
            return await fut
    except TimeoutError:
        return False
    finally:
        unsubscribe()


def settled_up(inst: Instance) -> bool:
    """Running (ready), or an outcome that will not change by itself."""
    return inst.state in SETTLED_UP


def settled_down(inst: Instance) -> bool:
    return inst.state in IDLE
