"""Applying a reload plan, as a job of the core (herder.core.plan decides what changes).

Order: stop what is removed or changed, in reverse dependency order among them; once
they are all down (or at the deadline: the longest stop_timeout among them + 10 s),
forget the removed instances, swap the config, create the new and changed services'
instances, resize scaled services, then start what should run. Unchanged services are
never touched, so they keep their pids. A changed service comes back up if it was up
(or is autostart and was not stopped by hand); an added one if it is autostart. The
reply lists the problems met (an instance that would not stop keeps its old definition).
"""

from __future__ import annotations

import dataclasses

from herder.core import calendar, jobs
from herder.core import effects as fx
from herder.core.context import Ctx
from herder.core.events import Reconfigure, Start
from herder.core.instance import IDLE
from herder.core.world import Job, JobKind, add_service, drop_instance

GRACE = 10.0


def begin(ctx: Ctx, ev: Reconfigure) -> None:
    world, plan = ctx.world, ev.plan
    by = world.by_service
    was_up = {s: any(world.instances[n].want_up for n in by.get(s, [])) for s in plan.restart}
    going: list[str] = []
    for s in (*plan.remove, *plan.restart):
        going += by.get(s, [])
    for s, (_before, after) in plan.scale.items():
        going += [n for n in by.get(s, []) if (world.instances[n].replica or 0) >= after]
    jobs.take_over(ctx, going)
    job = jobs.new_job(ctx, JobKind.RELOAD, going, ev.ticket)
    job.config, job.plan, job.was_up, job.pending = ev.config, plan, was_up, list(going)
    job.timeout = max((world.instances[n].spec.stop_timeout for n in going), default=0.0) + GRACE
    if going:
        jobs.arm(ctx, job, job.timeout)
    advance(ctx, job)


def advance(ctx: Ctx, job: Job) -> bool:
    changed = jobs.issue_ordered(ctx, job)
    if not job.pending and all(ctx.world.instances[n].state in IDLE for n in job.names if n in ctx.world.instances):
        finish(ctx, job, ())
        return True
    return changed


def deadline(ctx: Ctx, job: Job) -> None:
    left = [n for n in job.names if n in ctx.world.instances and ctx.world.instances[n].state not in IDLE]
    finish(ctx, job, (f"still stopping after {job.timeout:g}s: {', '.join(left)}",))


def finish(ctx: Ctx, job: Job, problems: tuple[str, ...]) -> None:
    world, new, plan = ctx.world, job.config, job.plan
    if new is None or plan is None:
        jobs.end(ctx, job, False, problems=("a reload job without a config",))
        return
    for n in job.names:
        if n in world.instances and world.instances[n].state in IDLE:
            drop_instance(world, n)
            ctx.out.add(fx.DropInstance(n))
    old_services = world.config.services
    world.config = dataclasses.replace(new, services=dict(new.services))
    for s in plan.remove:
        if world.by_service.get(s):   # could not stop it: keep its definition so it can still be managed
            world.config.services[s] = old_services[s]
    to_start: list[str] = []
    for s in (*plan.add, *plan.restart):
        if world.by_service.get(s):
            continue
        spec = new.services[s]
        names = add_service(world, s, spec, ctx.now)
        if spec.autostart if s in plan.add else (job.was_up.get(s) or spec.autostart):
            to_start += [n for n in names if n not in world.held]
    for s, (before, after) in plan.scale.items():
        spec = new.services[s]
        for n in world.by_service.get(s, []):
            world.instances[n].spec = spec
        up = any(world.instances[n].want_up for n in world.by_service.get(s, []))
        added = add_service(world, s, spec, ctx.now, replicas=range(before, after))
        if up:
            to_start += added
    for s in plan.unchanged:
        world.deps[s] = dict(new.services[s].depends_on)
    for n in to_start:
        ctx.apply(Start(n))
    calendar.sync(ctx)
    jobs.end(ctx, job, not problems, problems=problems)
