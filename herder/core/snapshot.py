"""The World as plain data, so a new decision process continues where a killed one stopped.

The runtime sends the keeper a record of every instance the step touched, and of the
World's own fields when they change, before it carries out the step's effects
(herder.runtime.supervisor): whatever the keeper has done, the record already says it
was decided. A decision process started after a crash loads the last record
(`restore`), so restart counters, backoff and start-limit history, probe counters,
readiness, desired states, the instances held down by hand, operator jobs and every
armed deadline carry over. Deadlines are absolute times on the monotonic clock, which
is the machine's, not the process's: they mean the same in the new process.

Pure data in, pure data out: no I/O. The config is not part of it (the runtime keeps
the config's own record, herder.config.to_record); a reload job in progress carries
its new config's record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from herder.config import Config
from herder.core.effects import HookKind, TimerKey, TimerKind
from herder.core.instance import Exit, Instance, RunEnd, State
from herder.core.plan import diff
from herder.core.probe import PState
from herder.core.world import Job, JobKind, Phase, World

VERSION = 1
_INSTANCE_FIELDS = ("want_up", "since", "pid", "started_at", "restarts", "consecutive", "completed", "reason",
                    "healthy", "status", "failing", "was_ready", "run", "hook_killed", "killed")


def instance(inst: Instance) -> dict[str, Any]:
    d: dict[str, Any] = {f: getattr(inst, f) for f in _INSTANCE_FIELDS}
    d["state"] = inst.state.value
    d["failed_starts"] = list(inst.failed_starts)
    d["last_exit"] = [inst.last_exit.code, inst.last_exit.signal] if inst.last_exit else None
    d["timers"] = {k.value: at for k, at in inst.timers.items()}
    d["hook"] = inst.hook.value if inst.hook is not None else None
    end = inst.pending
    ex = [end.exit.code, end.exit.signal] if end is not None and end.exit else None
    d["pending"] = None if end is None else [end.stopped, end.ran, ex, end.reason, end.never_ready, end.failing,
                                             end.was_ready]
    if inst.probe is not None:
        p = inst.probe
        d["probe"] = [p.state.value, p.passes, p.fails, p.ready, p.watchdog_ok, p.last_why]
    return d


def world(w: World, config_record: Callable[[Config], dict[str, Any]]) -> dict[str, Any]:
    """The World's own fields (the instances are recorded one by one)."""
    return {
        "v": VERSION, "held": sorted(w.held), "phase": w.phase.value, "forced": w.forced, "exit_code": w.exit_code,
        "next_job": w.next_job, "timers": [[k.kind.value, k.owner, at] for k, at in w.timers.items()],
        "jobs": [_job(j, config_record) for j in w.jobs.values()], "queued": sorted(w.queued),
    }


def _job(j: Job, config_record: Callable[[Config], dict[str, Any]]) -> dict[str, Any]:
    return {"id": j.id, "kind": j.kind.value, "names": j.names, "timeout": j.timeout, "pending": j.pending,
            "issued": sorted(j.issued), "released": j.released, "replied": j.replied, "current": j.current,
            "was_up": j.was_up, "config": config_record(j.config) if j.config is not None else None}


def restore(w: World, snap: dict[str, Any], instances: dict[str, Any],
            config_of: Callable[[dict[str, Any]], Config]) -> list[str]:
    """Load a record into a World made from the same config; the problems met (a record
    that does not fit is skipped, and said so, never trusted half-way)."""
    problems: list[str] = []
    if snap.get("v") != VERSION:
        return [f"state snapshot version {snap.get('v')!r} is not {VERSION}; starting from what the system says"]
    w.held = {n for n in snap.get("held", []) if n in w.instances}
    w.phase = Phase(snap.get("phase", "up"))
    if w.phase is Phase.DONE:       # the stop was complete, its end (Finished) died with the process
        w.phase = Phase.DOWN        # that decided it: the next step derives it again
    w.forced = bool(snap.get("forced", False))
    w.exit_code = int(snap.get("exit_code", 0))
    w.next_job = int(snap.get("next_job", 1))
    w.timers = {TimerKey(TimerKind(k), o): float(at) for k, o, at in snap.get("timers", [])}
    w.queued = {str(n) for n in snap.get("queued", [])}
    for raw in snap.get("jobs", []):
        try:
            job = _load_job(w, raw, config_of)
        except (KeyError, ValueError, TypeError) as e:
            problems.append(f"operator job {raw.get('id')} could not be restored ({e}); it is dropped")
            continue
        w.jobs[job.id] = job
    for name, raw in instances.items():
        inst = w.instances.get(name)
        if inst is None:
            continue        # not in this config: the runtime stops what is left of it
        try:
            _load_instance(inst, raw)
        except (KeyError, ValueError, TypeError) as e:
            problems.append(f"{name}: state record could not be restored ({e}); starting from what the system says")
    return problems


def _load_instance(inst: Instance, d: dict[str, Any]) -> None:
    for f in _INSTANCE_FIELDS:
        if f in d:
            setattr(inst, f, d[f])
    inst.state = State(d["state"])
    inst.failed_starts = deque(float(x) for x in d.get("failed_starts", []))
    ex = d.get("last_exit")
    inst.last_exit = Exit(ex[0], ex[1]) if ex else None
    inst.timers = {TimerKind(k): float(at) for k, at in d.get("timers", {}).items()}
    inst.hook = HookKind(d["hook"]) if d.get("hook") else None
    end = d.get("pending")
    inst.pending = None if end is None else RunEnd(
        bool(end[0]), float(end[1]), Exit(end[2][0], end[2][1]) if end[2] else None, str(end[3]), bool(end[4]),
        str(end[5]), bool(end[6]))
    probe = d.get("probe")
    if probe is not None and inst.probe is not None:
        p = inst.probe
        p.state, p.passes, p.fails, p.ready, p.watchdog_ok, p.last_why = (
            PState(probe[0]), int(probe[1]), int(probe[2]), bool(probe[3]), bool(probe[4]), str(probe[5]))


def _load_job(w: World, d: dict[str, Any], config_of: Callable[[dict[str, Any]], Config]) -> Job:
    job = Job(int(d["id"]), JobKind(d["kind"]), [n for n in d["names"] if n in w.instances], 0, float(d["timeout"]))
    job.pending = [n for n in d.get("pending", []) if n in w.instances]
    job.issued = {n for n in d.get("issued", []) if n in w.instances}
    job.released, job.replied, job.current = bool(d["released"]), bool(d["replied"]), d.get("current")
    job.was_up = {str(k): bool(v) for k, v in (d.get("was_up") or {}).items()}
    if d.get("config") is not None:
        job.config = config_of(d["config"])
        job.plan = diff(w.config.services, job.config.services, w.config.herder, job.config.herder)
    return job

