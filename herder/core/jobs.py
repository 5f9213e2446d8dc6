"""Operator jobs: start, stop and restart of many instances at once, ordered like `down`.

`herder stop A B C` stops its targets together, in reverse dependency order: an
instance is stopped once no instance of the same job that depends on it is still alive,
so every level stops in parallel (200 services that ignore SIGTERM with a 2 s stop
timeout stop in about 2 s, not 400 s). `restart` of several services stops them all in
that order, then starts them all (the dependency conditions give the forward order).
`restart` of one replicated service is rolling: one replica at a time, each back to
running before the next. `start` needs no ordering: dependents wait for their
dependencies' conditions anyway.

A stop by hand also holds its instances down (World.held: `up` and reloads leave them
down, and the API persists the set across herder restarts); a start or restart releases
them.

A job with a ticket answers once (effect Reply): when done, or at its deadline (the
operator's `timeout`). The deadline only ends the wait (and a rolling restart); an
ordered stop still finishes. A newer command on an instance takes it out of older
jobs. During `down` no job runs: each is answered "herder is stopping".
"""

from __future__ import annotations

from herder.core.context import Ctx
from herder.core.effects import ArmTimer, CancelTimer, Kind, TimerKey, TimerKind
from herder.core.events import Command, Restart, Start, Stop, Verb
from herder.core.instance import IDLE, UP, State
from herder.core.world import VERB_JOBS, Job, JobKind, Phase

STOPPING_MSG = "herder is stopping; nothing was started"


def command(ctx: Ctx, cmd: Command) -> None:
    world = ctx.world
    names = [n for n in dict.fromkeys(cmd.names) if n in world.instances]
    if cmd.verb is Verb.STOP:       # stopped by hand: `up` leaves it down until started by hand
        world.held |= set(names)
    else:
        world.held -= set(names)
    if world.phase is not Phase.UP:
        ctx.reply(cmd.ticket, cmd.verb is Verb.STOP, "" if cmd.verb is Verb.STOP else STOPPING_MSG)
        return
    take_over(ctx, names)
    kind = VERB_JOBS[cmd.verb]
    if kind is JobKind.RESTART and len(names) > 1 and len({world.instances[n].service for n in names}) == 1:
        kind = JobKind.ROLLING
    if kind is JobKind.START:
        for n in names:
            ctx.apply(Start(n))
        if not cmd.ticket:
            return
    job = new_job(ctx, kind, names, cmd.ticket, cmd.timeout)
    if kind is not JobKind.START:
        job.pending = list(names)
    if cmd.timeout > 0 and cmd.ticket:
        arm(ctx, job, cmd.timeout)


def new_job(ctx: Ctx, kind: JobKind, names: list[str], ticket: int = 0, timeout: float = 0.0) -> Job:
    world = ctx.world
    job = Job(world.next_job, kind, list(names), ticket, timeout)
    world.next_job += 1
    world.jobs[job.id] = job
    return job


def arm(ctx: Ctx, job: Job, seconds: float) -> None:
    key = TimerKey(TimerKind.JOB, job.key)
    at = ctx.now + seconds
    ctx.world.timers[key] = at
    ctx.out.add(ArmTimer(key, at))


def end(ctx: Ctx, job: Job, ok: bool, message: str = "", problems: tuple[str, ...] = ()) -> None:
    """Answer (once) and forget the job."""
    answer(ctx, job, ok, message, problems)
    ctx.world.jobs.pop(job.id, None)
    key = TimerKey(TimerKind.JOB, job.key)
    if ctx.world.timers.pop(key, None) is not None:
        ctx.out.add(CancelTimer(key))


def answer(ctx: Ctx, job: Job, ok: bool, message: str = "", problems: tuple[str, ...] = ()) -> None:
    if not job.replied:
        job.replied = True
        ctx.reply(job.ticket, ok, message, problems)


def take_over(ctx: Ctx, names: list[str]) -> None:
    """A newer command wins: its instances leave the jobs they were in (not a reload's)."""
    taken = set(names)
    for job in list(ctx.world.jobs.values()):
        if job.kind is JobKind.RELOAD or not taken & set(job.names):
            continue
        job.names = [n for n in job.names if n not in taken]
        job.pending = [n for n in job.pending if n not in taken]
        job.issued -= taken
        if job.current in taken:
            job.current = None
        if not job.names:
            end(ctx, job, True, "superseded by a newer command")


def cancel_all(ctx: Ctx, message: str) -> None:
    for job in list(ctx.world.jobs.values()):
        end(ctx, job, job.kind is JobKind.STOP, "" if job.kind is JobKind.STOP else message)


# ---- progress (called by the reconcile until nothing changes) --------------------------------

def issue_ordered(ctx: Ctx, job: Job) -> bool:
    """STOP, RESTART, RELOAD: act on each pending instance once no instance of the job that
    depends on it is alive (reverse dependency order, each level together)."""
    world, changed = ctx.world, False
    members = set(job.names)
    for name in list(job.pending):
        inst = world.instances.get(name)
        if inst is None:
            job.pending.remove(name)
            continue
        if inst.state in UP and world.dependents_alive(inst.service, among=members):
            continue
        job.pending.remove(name)
        job.issued.add(name)
        ctx.apply(Restart(name) if job.kind is JobKind.RESTART else Stop(name))
        changed = True
    return changed


def advance(ctx: Ctx, job: Job) -> bool:
    """Move a job on; True when something changed."""
    world = ctx.world
    present = [world.instances[n] for n in job.names if n in world.instances]
    if job.kind is JobKind.START:
        if all(i.settled_up() for i in present):
            end(ctx, job, all(i.good_up() for i in present))
            return True
        return False
    if job.kind in (JobKind.STOP, JobKind.RESTART):
        changed = issue_ordered(ctx, job)
        if job.kind is JobKind.STOP:
            if not job.pending and all(i.state in IDLE for i in present):
                end(ctx, job, True)
                return True
            return changed
        if not job.released and not job.pending and not any(i.state is State.STOPPING for i in present):
            job.released = changed = True      # every member is down: the starts may go ahead
        if job.released and all(i.settled_up() for i in present):
            ok = all(i.good_up() for i in present)
            end(ctx, job, ok, "" if ok else f"{', '.join(job.names)} did not come back")
            return True
        return changed
    if job.kind is JobKind.ROLLING:
        return _roll(ctx, job)
    return False


def holds(job: Job, name: str) -> bool:
    """A RESTART job keeps its members waiting until every one of them is down."""
    return job.kind is JobKind.RESTART and not job.released and name in job.names


def _roll(ctx: Ctx, job: Job) -> bool:
    world = ctx.world
    if job.current is not None:
        inst = world.instances.get(job.current)
        if inst is not None and not inst.settled_up():
            return False
        if inst is not None and not inst.good_up():
            _halt(ctx, job, f"{job.current} is {inst.state.value} after restart")
            return True
        job.current = None
    while job.pending:
        name = job.pending.pop(0)
        if name not in world.instances:
            continue
        job.current = name
        job.issued.add(name)
        i = job.names.index(name) + 1
        ctx.out.note(world.instances[name], Kind.ROLLING, f"{name}: rolling restart {i}/{len(job.names)}")
        ctx.apply(Restart(name))
        if job.timeout > 0:
            arm(ctx, job, job.timeout)
        return True
    end(ctx, job, True)
    return True


def _halt(ctx: Ctx, job: Job, msg: str) -> None:
    rest = [n for n in job.pending if n in ctx.world.instances]
    if rest:
        msg += f"; rolling restart halted, left alone: {', '.join(rest)}"
    name = job.current or ""
    inst = ctx.world.instances.get(name)
    if inst is not None:
        ctx.out.note(inst, Kind.ROLLING, f"{name}: {msg}")
    end(ctx, job, False, msg)


def deadline(ctx: Ctx, job: Job) -> None:
    """The job's timeout passed."""
    world = ctx.world
    if job.kind is JobKind.ROLLING:
        inst = world.instances.get(job.current or "")
        _halt(ctx, job, f"{job.current} is {inst.state.value if inst else 'gone'} after restart")
    elif job.kind is JobKind.START:
        end(ctx, job, False, f"not running after {job.timeout:g}s")
    elif job.kind is JobKind.STOP:
        answer(ctx, job, False, f"not stopped after {job.timeout:g}s")
    elif job.kind is JobKind.RESTART:
        answer(ctx, job, False, f"{', '.join(job.names)} did not come back")
