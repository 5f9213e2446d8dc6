"""Schedules: `schedule` (a job run on a calendar) and `restart_schedule` (a restart on one).

Cron expressions are read by cronsim (Healthchecks' parser: maintained, typed, no
dependencies; imported on first use), which follows Debian cron on daylight-saving changes: with a fixed minute
and hour in a zone that springs forward, a time that does not exist runs at the first
minute after the gap; a time that falls into the repeated hour when the clocks go back
runs once. Expressions are evaluated in the service's `timezone`, else the machine's local
zone (injected into the World by the runtime).

Wall clock and monotonic clock meet here only: the runtime tells the core the offset
(wall = monotonic + offset, input WallClock) at start and whenever it sees the wall clock
stepped; each alarm keeps its due time on the wall clock and is armed on the monotonic
time line at `due - offset`, at most RECHECK seconds ahead, and checked against the wall
clock when it fires. So a clock step, a resume from suspend or an NTP correction delays a
run by at most RECHECK seconds, and a run is never early.

When a job is due while its last run still runs, `overlap` decides: skip, queue (start
once the last run is over) or replace (restart it). A job held down by an operator
(`herder stop`) is skipped until `herder start` releases it. With `missed = "run"`, a run
that fell due while herder was down is run once at start-up; the last run's time is kept
in the state dir (effect RecordRun) for that.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from herder.config import ServiceSpec
from herder.config.lifecycle import cron_fields
from herder.core import effects as fx
from herder.core import jobs
from herder.core.context import Ctx
from herder.core.effects import Kind, TimerKey, TimerKind
from herder.core.events import Command, Restart, Start, Verb, WallClock
from herder.core.instance import IDLE, UP
from herder.core.world import Alarm, Phase

RECHECK = 60.0      # longest a schedule timer is armed ahead (seconds)
_EARLY = 0.5        # a wake-up this close before the due time counts as due


def zone_of(spec: ServiceSpec, local: tzinfo) -> tzinfo:
    if not spec.timezone:
        return local
    from zoneinfo import ZoneInfo  # only a schedule with a timezone: not held by a decision process without one

    return ZoneInfo(spec.timezone)


def next_due(expr: str, zone: tzinfo, after: float) -> float:
    """The first time strictly after `after` (wall-clock seconds) that `expr` names in `zone`."""
    from cronsim import CronSim  # only a config with schedules loads it (and Windows has no supervisor)

    start = datetime.fromtimestamp(after, UTC).astimezone(zone)
    return next(CronSim(cron_fields(expr), start)).timestamp()


def show(wall: float, zone: tzinfo) -> str:
    return datetime.fromtimestamp(wall, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def _wanted(spec: ServiceSpec) -> dict[TimerKind, str]:
    out = {}
    if spec.schedule is not None:
        out[TimerKind.SCHEDULE] = spec.schedule
    if spec.restart_schedule is not None:
        out[TimerKind.RESTART_SCHEDULE] = spec.restart_schedule
    return out


# ---- inputs -----------------------------------------------------------------------------------

def wall_clock(ctx: Ctx, ev: WallClock) -> None:
    """The first WallClock arms every schedule (and runs what was missed while herder was
    down); a later one re-arms them for the stepped clock."""
    world = ctx.world
    first = world.wall_offset is None
    world.wall_offset = ev.offset
    if first:
        _missed(ctx, dict(ev.last))
        sync(ctx)
    else:
        for alarm in world.alarms.values():
            _arm(ctx, alarm)


def fire(ctx: Ctx, key: TimerKey) -> None:
    """A schedule timer fired: run or restart if due on the wall clock, then arm the next."""
    world = ctx.world
    alarm = world.alarms.get(key)
    if alarm is None or world.wall_offset is None:
        return
    wall = ctx.now + world.wall_offset
    if wall + _EARLY < alarm.due:      # armed RECHECK ahead, or the wall clock went back: not yet
        _arm(ctx, alarm)
        return
    spec = world.config.services.get(alarm.service)
    if spec is not None and world.phase is Phase.UP:
        zone = zone_of(spec, world.local_tz)
        if alarm.kind is TimerKind.SCHEDULE:
            _run_job(ctx, alarm.service, f"due at {show(alarm.due, zone)}")
            ctx.out.add(fx.RecordRun(alarm.service, wall))
        else:
            _restart(ctx, alarm.service, f"restart_schedule: due at {show(alarm.due, zone)}")
        alarm.due = next_due(alarm.expr, zone, max(alarm.due, wall))
    _arm(ctx, alarm)


def sync(ctx: Ctx) -> None:
    """Alarms for the config as it is now (start, reload): new and changed ones computed
    from the wall clock, unchanged ones kept, removed ones cancelled."""
    world = ctx.world
    if world.wall_offset is None:
        return
    wall = ctx.now + world.wall_offset
    wanted: dict[TimerKey, Alarm] = {}
    for svc, spec in world.config.services.items():
        for kind, expr in _wanted(spec).items():
            alarm = Alarm(svc, kind, expr, spec.timezone or "", 0.0)
            old = world.alarms.get(alarm.key)
            if old is not None and (old.expr, old.zone) == (alarm.expr, alarm.zone):
                wanted[alarm.key] = old
                continue
            alarm.due = next_due(expr, zone_of(spec, world.local_tz), wall)
            wanted[alarm.key] = alarm
            _arm(ctx, alarm)
    for key in set(world.alarms) - set(wanted):
        if world.timers.pop(key, None) is not None:
            ctx.out.add(fx.CancelTimer(key))
    world.alarms = wanted
    world.queued &= {a.service for a in wanted.values() if a.kind is TimerKind.SCHEDULE}


def release_queued(ctx: Ctx) -> bool:
    """overlap = "queue": start a queued run once the last one is over. True if one started."""
    world, changed = ctx.world, False
    if world.phase is not Phase.UP:
        return False
    for svc in sorted(world.queued):
        names = world.by_service.get(svc, [])
        if all(world.instances[n].state in IDLE for n in names):
            world.queued.discard(svc)
            _publish(ctx, svc, "queued run: the last one is over, starting", "run")
            for n in names:
                changed |= ctx.apply(Start(n))
    return changed


# ---- what a due schedule does ------------------------------------------------------------------

def _arm(ctx: Ctx, alarm: Alarm) -> None:
    world = ctx.world
    offset = world.wall_offset or 0.0
    at = min(alarm.due - offset, ctx.now + RECHECK)
    world.timers[alarm.key] = at = max(at, ctx.now)
    ctx.out.add(fx.ArmTimer(alarm.key, at))


def _publish(ctx: Ctx, svc: str, message: str, action: str, **data: fx.JSON) -> None:
    ctx.out.publish("", Kind.SCHEDULE, f"{svc}: schedule: {message}", {"service": svc, "action": action, **data})


def _run_job(ctx: Ctx, svc: str, when: str) -> None:
    world = ctx.world
    names = world.by_service.get(svc, [])
    spec = world.config.services[svc]
    held = [n for n in names if n in world.held]
    if held:
        _publish(ctx, svc, f"run {when} skipped: held down by an operator (`herder start {svc}` releases it)",
                 "skip", reason="held")
        return
    busy = [n for n in names if world.instances[n].state not in IDLE]
    if busy and spec.overlap == "skip":
        _publish(ctx, svc, f"run {when} skipped: the last run still runs (overlap = \"skip\")", "skip",
                 reason="overlap")
        return
    if busy and spec.overlap == "queue":
        world.queued.add(svc)
        _publish(ctx, svc, f"run {when} queued behind the last run (overlap = \"queue\")", "queue")
        return
    if busy:
        _publish(ctx, svc, f"run {when}: replacing the last run (overlap = \"replace\")", "replace")
        for n in names:
            ctx.apply(Restart(n) if world.instances[n].state not in IDLE else Start(n))
        return
    _publish(ctx, svc, f"run {when}", "run")
    for n in names:
        ctx.apply(Start(n))


def _restart(ctx: Ctx, svc: str, why: str) -> None:
    world = ctx.world
    names = [n for n in world.by_service.get(svc, [])
             if world.instances[n].want_up and world.instances[n].state in UP]
    if not names:
        _publish(ctx, svc, f"{why}; skipped: not running", "skip", reason="not running")
        return
    _publish(ctx, svc, f"{why}; restarting {', '.join(names)}", "restart")
    jobs.command(ctx, Command(Verb.RESTART, tuple(names)))


def _missed(ctx: Ctx, last: dict[str, float]) -> None:
    """At start-up: `missed = "run"` runs once what fell due while herder was down."""
    world = ctx.world
    offset = world.wall_offset or 0.0
    wall = ctx.now + offset
    for svc, spec in world.config.services.items():
        if spec.schedule is None:
            continue
        prev = last.get(svc)
        if prev is None or prev > wall:
            ctx.out.add(fx.RecordRun(svc, wall))     # from now on, downtime can be told
            continue
        if spec.missed != "run":
            continue
        zone = zone_of(spec, world.local_tz)
        due = next_due(spec.schedule, zone, prev)
        if due <= wall:
            _publish(ctx, svc, f"the run due at {show(due, zone)} was missed while herder was down; running it "
                     "now (missed = \"run\")", "missed")
            _run_job(ctx, svc, "(missed)")
            ctx.out.add(fx.RecordRun(svc, wall))
