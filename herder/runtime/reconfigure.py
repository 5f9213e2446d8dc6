"""Applying a reload plan to a running supervisor (herder.core.plan decides, this does).

Order: stop what is removed or changed (all at once, waiting on their state events),
forget the removed instances, swap the config, create the new and changed services'
instances, resize scaled services, then start what should run. Unchanged services are
never touched, so they keep their pids. A changed service comes back up if it was up
(or is autostart and was not stopped by hand); an added one if it is autostart.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from herder.config import Config
from herder.core.plan import Plan
from herder.runtime.waits import settled_down, wait_instances


async def apply(sup: Any, new: Config, plan: Plan) -> list[str]:
    """Carry out `plan`; the problems met (empty when all went well)."""
    problems: list[str] = []
    old_services = sup.config.services
    was_up = {s: any(sup.instances[n].want_up for n in sup.by_service.get(s, [])) for s in plan.restart}
    going: list[str] = []
    for s in (*plan.remove, *plan.restart):
        going += sup.by_service.get(s, [])
    for s, (before, after) in plan.scale.items():
        going += [n for n in sup.by_service.get(s, []) if (sup.instances[n].replica or 0) >= after]
    if going:
        sup.stop(going)
        timeout = max((sup.instances[n].spec.stop_timeout for n in going), default=10.0) + 10.0
        if not await wait_instances(sup, going, settled_down, timeout):
            left = [n for n in going if n in sup.instances and not settled_down(sup.instances[n])]
            problems.append(f"still stopping after {timeout:g}s: {', '.join(left)}")
    for n in going:
        if n in sup.instances and settled_down(sup.instances[n]):
            sup.drop_instance(n)
    sup.config = dataclasses.replace(new, services=dict(new.services))
    for s in plan.remove:
        if sup.by_service.get(s):   # could not stop it: keep its definition so it can still be managed
            sup.config.services[s] = old_services[s]
    to_start: list[str] = []
    for s in (*plan.add, *plan.restart):
        if sup.by_service.get(s):
            continue
        names = sup.add_service(s, new.services[s])
        if (new.services[s].autostart if s in plan.add else was_up.get(s) or new.services[s].autostart):
            to_start += [n for n in names if n not in sup.held]
    for s, (before, after) in plan.scale.items():
        spec = new.services[s]
        for n in sup.by_service.get(s, []):
            sup.instances[n].spec = spec
        up = any(sup.instances[n].want_up for n in sup.by_service.get(s, []))
        added = sup.add_service(s, spec, replicas=range(before, after))
        if up:
            to_start += added
    for s in plan.unchanged:
        sup.deps[s] = dict(new.services[s].depends_on)
    if to_start:
        sup.start(to_start)
    return problems
