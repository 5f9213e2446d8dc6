"""Critical services: the exit policy, and the health verdict of `herder health`.

`critical = true` marks a service the deployment cannot do without (php-fpm behind
nginx, the database of a mail stack, the migration everything else waits for). Two
decisions follow, both from the World alone:

- **The exit policy** (what s6-overlay calls S6_BEHAVIOUR_IF_STAGE2_FAILS=2 and
  supervisord does not have): when a critical instance has *failed for good* while
  herder supervises, herder stops everything in reverse dependency order (the same stop
  as `down`) and exits with that service's `critical_exit_code`, so the container
  engine's or the service manager's restart policy takes over. Failed for good means
  parked as `failed` by its start limit, `exited` without completing and not to be
  restarted (restart = "never"), or waiting on a dependency that itself failed for good
  (a failed migration keeps the web server from ever starting: that fails the start).
  A stop by hand is no failure. The reconcile runs the rule after every event while
  herder is up; it fires once, since the phase then becomes DOWN.
- **The verdict**: healthy when every critical instance is ready and healthy, or a job
  that completed; with no critical service, every instance herder wants up. A critical
  service stopped by hand is unhealthy (the engine may act on it) but herder keeps going.
"""

from __future__ import annotations

from dataclasses import dataclass

from herder.core import graph, shutdown
from herder.core.context import Ctx
from herder.core.effects import Kind
from herder.core.instance import READY_STATES, State
from herder.core.probe import counts_healthy
from herder.core.world import Phase, World


def lost(world: World, name: str) -> str | None:
    """Why instance `name` has failed for good ("failed: …", "exited (exit 1) …",
    "cannot start: …"), or None while it may still get there."""
    return _lost(world, name, set())


def _lost(world: World, name: str, seen: set[str]) -> str | None:
    inst = world.instances[name]
    if inst.state is State.FAILED:
        return f"failed ({inst.reason})" if inst.reason else "failed"
    if inst.state is State.EXITED and not inst.completed:
        ended = inst.reason or str(inst.last_exit or "exited")
        return f"exited ({ended}) and is not restarted (restart = \"{inst.spec.restart}\")"
    if inst.state is not State.WAITING or name in seen:
        return None
    seen.add(name)   # the graph is acyclic (config validation); this only bounds the walk
    for dep, cond in world.deps.get(inst.service, {}).items():
        members = world.by_service.get(dep, [])
        if graph.condition_met(cond, [world.facts(n) for n in members]):
            continue
        for n in members:
            why = _lost(world, n, seen)
            if why is not None:
                return f"cannot start: it waits for {dep} ({cond}), and {n} {why}"
    return None


def exit_policy(ctx: Ctx) -> bool:
    """Begin the ordered stop when a critical instance failed for good; True if it did."""
    world = ctx.world
    if world.phase is not Phase.UP:
        return False
    for name, inst in world.instances.items():
        if not inst.spec.critical:
            continue
        why = lost(world, name)
        if why is None:
            continue
        code = inst.spec.critical_exit_code
        ctx.out.note(inst, Kind.CRITICAL, f"herder: {name} is critical and {why}; stopping everything, then "
                     f"exiting with code {code}", {"code": code, "why": why})
        shutdown.begin(ctx, code, f"{name} {why}")
        return True
    return False


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: tuple[str, ...]        # the instances judged
    problems: tuple[str, ...]       # one line per instance that is not ready and healthy


def verdict(world: World) -> Verdict:
    if world.phase is not Phase.UP:
        why = f": {world.exit_reason}" if world.exit_reason else ""
        return Verdict(False, (), (f"herder is stopping{why}",))
    names = [n for n, i in world.instances.items() if i.spec.critical]
    if not names:
        names = [n for n, i in world.instances.items() if i.want_up]
    problems = []
    for n in names:
        inst = world.instances[n]
        if inst.state is State.EXITED and inst.completed:
            continue
        if inst.state in READY_STATES and counts_healthy(inst.spec.health, inst.healthy):
            continue
        what = inst.state.value
        if inst.state in READY_STATES:
            what += ", unhealthy" if inst.healthy is False else ", health not known yet"
        if inst.state is State.STOPPED and n in world.held:
            what += " (stopped by hand)"
        elif inst.reason:
            what += f" ({inst.reason})"
        problems.append(f"{n}: {what}")
    return Verdict(not problems, tuple(names), tuple(problems))
