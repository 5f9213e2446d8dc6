"""What follows from the world as it now is, run at the end of every step until nothing
changes: operator jobs move on, `down` stops what nothing alive depends on any more,
waiting instances whose dependencies meet their conditions are spawned (the others get
their "waiting for" reason), a critical service that failed for good begins `down`
(herder.core.critical), and a finished `down` says so.

Dependencies gate starts only: a dependent that runs keeps running when its dependency
restarts (unless `bind = true`, see herder.core.context).
"""

from __future__ import annotations

from herder.core import calendar, critical, jobs, reconfigure, shutdown
from herder.core import effects as fx
from herder.core.context import Ctx
from herder.core.effects import Kind
from herder.core.events import DepsMet, Stop
from herder.core.instance import IDLE, UP, State
from herder.core.world import JobKind, Phase

_MAX_PASSES = 10_000   # each pass changes at least one instance; a bound against a bug, never reached


def reconcile(ctx: Ctx) -> None:
    for _ in range(_MAX_PASSES):
        if ctx.world.phase is Phase.UP:
            changed = _jobs(ctx) | calendar.release_queued(ctx) | _dependencies(ctx) | critical.exit_policy(ctx)
        else:
            changed = _down(ctx)
        if not changed:
            break
    _finish(ctx)


def _jobs(ctx: Ctx) -> bool:
    changed = False
    for job in list(ctx.world.jobs.values()):
        if job.id not in ctx.world.jobs:
            continue
        if job.kind is JobKind.RELOAD:
            changed |= reconfigure.advance(ctx, job)
        else:
            changed |= jobs.advance(ctx, job)
    return changed


def _dependencies(ctx: Ctx) -> bool:
    world, changed = ctx.world, False
    held = [j for j in world.jobs.values() if j.kind is JobKind.RESTART and not j.released]
    for name, inst in list(world.instances.items()):
        if inst.state is not State.WAITING or any(jobs.holds(j, name) for j in held):
            continue
        reasons = world.unmet(inst)
        if not reasons:
            changed |= ctx.apply(DepsMet(name))
        elif inst.reason != "; ".join(reasons):
            inst.reason = "; ".join(reasons)
            ctx.out.note(inst, Kind.WAITING, f"{name}: {inst.reason}")
    return changed


def _down(ctx: Ctx) -> bool:
    """Stop in reverse dependency order: an instance goes once nothing that depends on it is alive."""
    world, changed = ctx.world, False
    for name, inst in list(world.instances.items()):
        if inst.state is State.STOPPING or inst.state in IDLE:    # the common case of a stop first (issue 20)
            continue
        if inst.state in UP and world.dependents_alive(inst.service):
            continue
        changed |= ctx.apply(Stop(name))
    return changed


def _finish(ctx: Ctx) -> None:
    world = ctx.world
    if world.phase is Phase.DOWN and world.all_idle():
        world.phase = Phase.DONE
        ctx.out.publish("", Kind.SUPERVISOR, shutdown.finished_message(world.exit_code, world.exit_reason),
                        {"code": world.exit_code})
        ctx.out.add(fx.Finished(world.exit_code, world.exit_reason))
