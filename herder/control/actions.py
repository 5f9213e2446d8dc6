"""Operator actions on services: start, stop, restart (rolling for replicas), signal.

A rolling restart takes one instance of a replicated service down at a time and moves to
the next only once the previous one is running (ready) again, waiting on its state
events; if one does not come back, the rest are left alone and the failure is reported.
Services named together restart side by side; replicas of one service, in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from herder.core.machine import State
from herder.runtime.waits import settled_down, settled_up, wait_instances


def _good_up(sup: Any, names: list[str]) -> bool:
    return all(sup.instances[n].state is State.RUNNING or sup.instances[n].completed
               for n in names if n in sup.instances)


async def start_or_stop(sup: Any, verb: str, names: list[str], wait: bool, timeout: float) -> tuple[bool, str]:
    """Post START or STOP; with `wait`, answer once each instance settled (running/failed, or idle)."""
    up = verb == "start"
    (sup.start if up else sup.stop)(names)
    if not wait:
        return True, ""
    if not await wait_instances(sup, names, settled_up if up else settled_down, timeout):
        return False, f"not {'running' if up else 'stopped'} after {timeout:g}s"
    return (_good_up(sup, names) if up else True), ""


async def restart(sup: Any, names: list[str], timeout: float) -> tuple[bool, str]:
    """Restart `names`: replicas of one service one at a time; services in parallel."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(sup.instances[n].service, []).append(n)
    results = await asyncio.gather(*(_rolling(sup, group, timeout) for group in groups.values()))
    problems = [msg for ok, msg in results if not ok]
    return not problems, "; ".join(problems)


async def _rolling(sup: Any, names: list[str], timeout: float) -> tuple[bool, str]:
    if len(names) == 1 or sup.instances[names[0]].replica is None:
        sup.restart(names)
        ok = await wait_instances(sup, names, settled_up, timeout)
        return (ok and _good_up(sup, names)), ("" if ok and _good_up(sup, names) else f"{', '.join(names)} did not come back")
    for i, n in enumerate(names):
        if n not in sup.instances:
            continue
        sup.events.emit(n, "rolling", f"{n}: rolling restart {i + 1}/{len(names)}")
        sup.restart([n])
        if not await wait_instances(sup, [n], settled_up, timeout) or not _good_up(sup, [n]):
            rest = names[i + 1:]
            msg = f"{n} is {sup.instances[n].state.value if n in sup.instances else 'gone'} after restart"
            if rest:
                msg += f"; rolling restart halted, left alone: {', '.join(rest)}"
            sup.events.emit(n, "rolling", f"{n}: {msg}")
            return False, msg
    return True, ""
