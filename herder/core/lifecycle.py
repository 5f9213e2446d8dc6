"""What happens around a process and after it: hooks, and the restart policy.

Hooks run inside the visible states, as systemd runs its Exec*Pre/Post commands inside
"activating" and "deactivating": `pre_start` and `post_start` in `starting`, `pre_stop`
and `post_stop` in `stopping`; `Instance.hook` names the one running (one at a time per
instance), and status shows it. A run is over once its process has ended *and* no hook of
it runs any more; `run_over` then runs `post_stop` (unless the instance is being killed)
and `settle` applies the restart policy to how the run ended (a RunEnd). So a restart's
`pre_start` can never overlap the last run's `post_stop`.

The restart policy, in `settle`: an instance herder stopped comes back if wanted up
(through the policy when it was stopped as failing); one that ended by itself is judged
by `restart`, `success_exit_codes`, `restart_prevent_exit_codes` (never restarted, whatever
`restart` says) and `restart_force_exit_codes` (restarted, whatever `restart` says); a
failed start (never ready, shorter than min_uptime, a failed pre_start or spawn) counts
toward start_limit, and past it the instance is parked in `failed`.
"""

from __future__ import annotations

import signal as _signal

from herder.config.lifecycle import Hook
from herder.core import backoff
from herder.core import effects as fx
from herder.core.effects import HookKind, Kind, TimerKind
from herder.core.events import FailReason, HookDone
from herder.core.instance import Exit, Instance, RunEnd, State
from herder.core.out import Out

STOP_HOOK = _signal.SIGTERM


# ---- hooks -------------------------------------------------------------------------------------

def hook_of(inst: Instance, kind: HookKind) -> Hook | None:
    return inst.spec.hooks.get(kind.value)


def start_hook(o: Out, inst: Instance, kind: HookKind, now: float) -> None:
    hook = hook_of(inst, kind)
    if hook is None:
        return
    inst.hook, inst.hook_killed = kind, ""
    o.add(fx.RunHook(inst.name, kind, inst.run))
    o.arm(inst, TimerKind.HOOK, now + hook.timeout)
    o.note(inst, Kind.HOOK, f"{inst.name}: {kind} hook: {hook}",
           {"hook": kind.value, "phase": "start", "command": list(hook.command)})


def stop_hook(o: Out, inst: Instance, now: float, grace: float) -> None:
    """Ask the running hook to end (SIGTERM); SIGKILL once `grace` seconds passed (or its own
    timeout, whichever comes first)."""
    if inst.hook is None:
        return
    o.add(fx.StopHook(inst.name, STOP_HOOK))
    at = inst.timers.get(TimerKind.HOOK)
    if at is None or now + grace < at:
        o.arm(inst, TimerKind.HOOK, now + grace)
    inst.hook_killed = inst.hook_killed or "stopped"


def hook_timeout(o: Out, inst: Instance) -> None:
    """The running hook's deadline passed: SIGKILL its process group."""
    if inst.hook is None:
        return
    if inst.hook_killed != "stopped":
        hook = hook_of(inst, inst.hook)
        inst.hook_killed = f"timed out after {hook.timeout:g}s" if hook is not None else "timed out"
    o.add(fx.StopHook(inst.name, _signal.SIGKILL))


def hook_ended(o: Out, inst: Instance, ev: HookDone) -> tuple[bool, str]:
    """Forget the running hook and publish how it ended; (ok, what happened)."""
    if ev.error:
        what = f"could not run: {ev.error}"
    elif inst.hook_killed:
        what = inst.hook_killed if inst.hook_killed != "stopped" else f"stopped ({_status(ev)})"
    else:
        what = _status(ev)
    ok = ev.ok and not inst.hook_killed
    kind = ev.hook
    inst.hook, inst.hook_killed = None, ""
    o.cancel(inst, TimerKind.HOOK)
    hook = hook_of(inst, kind)
    o.note(inst, Kind.HOOK, f"{inst.name}: {kind} hook {'exited 0' if ok else what} after {ev.seconds:.3f}s",
           {"hook": kind.value, "phase": "end", "ok": ok, "code": ev.code, "signal": ev.signal, "error": ev.error,
            "seconds": round(ev.seconds, 6), "what": what,
            "command": list(hook.command) if hook is not None else []})
    return ok, what


def _status(ev: HookDone) -> str:
    return f"killed by {ev.signal}" if ev.signal else f"exit {ev.code}"


# ---- the end of a run --------------------------------------------------------------------------

def run_over(o: Out, inst: Instance, end: RunEnd, now: float) -> None:
    """The process (if any) has ended and no hook runs: post_stop, then the restart policy."""
    if hook_of(inst, HookKind.POST_STOP) is not None and not inst.killed:
        inst.pending = end
        start_hook(o, inst, HookKind.POST_STOP, now)
        o.move(inst, State.STOPPING, now, "post_stop hook")
        return
    settle(o, inst, end, now)


def settle(o: Out, inst: Instance, end: RunEnd, now: float) -> None:
    inst.pending = None
    spec = inst.spec
    if end.stopped:
        if end.failing and inst.want_up:
            # stopped by herder as failing: the restart policy, backoff and start limit apply
            if end.ran >= spec.backoff.reset_after:
                inst.consecutive = 0
            failed_start = end.failing in (FailReason.READY_TIMEOUT, FailReason.HOOK) or not end.was_ready \
                or end.ran < spec.min_uptime
            restart_or_park(o, inst, now, failed_start=failed_start, why=end.failing)
        elif inst.want_up:
            inst.restarts += 1
            o.move(inst, State.WAITING, now, "dependencies")
        else:
            o.move(inst, State.STOPPED, now)
        return
    if not inst.want_up:          # stopped by an operator while post_stop ran
        o.move(inst, State.STOPPED, now)
        return
    if end.exit is None:
        restart_or_park(o, inst, now, failed_start=True, why=end.reason)
        return
    _exited(o, inst, end, end.exit, now)


def _exited(o: Out, inst: Instance, end: RunEnd, ex: Exit, now: float) -> None:
    """The process ended on its own: the restart policy and the exit-code overrides."""
    spec = inst.spec
    success = ex.signal is None and ex.code in spec.success_exit_codes and not end.reason and not end.never_ready
    why = f"{end.reason} ({ex})" if end.reason else str(ex)
    if end.never_ready:
        why += " before it was ready"
    status: int | str | None = ex.signal or ex.code
    if status in spec.restart_prevent_exit_codes:
        inst.completed = success
        o.note(inst, Kind.RESTART_PREVENTED, f"{inst.name}: {ex} is in restart_prevent_exit_codes; not restarting "
               f"(restart = \"{spec.restart}\" is overridden)", {"code": ex.code, "signal": ex.signal})
        o.move(inst, State.EXITED, now, f"{why}; restart_prevent_exit_codes")
        return
    forced = status in spec.restart_force_exit_codes
    if not forced and (spec.restart == "never" or (spec.restart == "on-failure" and success)):
        inst.completed = success
        o.move(inst, State.EXITED, now, "completed" if success else why)
        return
    if forced:
        why += "; restart_force_exit_codes"
    if end.ran >= spec.backoff.reset_after:
        inst.consecutive = 0
    restart_or_park(o, inst, now, failed_start=end.ran < spec.min_uptime or not end.was_ready, why=why,
                    force=forced)


def restart_or_park(o: Out, inst: Instance, now: float, *, failed_start: bool, why: str, force: bool = False) -> None:
    spec = inst.spec
    if failed_start and backoff.over_start_limit(spec.start_limit, inst.failed_starts, now):
        reason = (f"{len(inst.failed_starts)} failed starts within {spec.start_limit.interval:g}s "
                  f"(start_limit.burst = {spec.start_limit.burst}); last: {why}. "
                  f"Fix it, then `herder start {inst.service}`")
        o.note(inst, Kind.FAILED, f"{inst.name}: gave up: {reason}", {"reason": reason})
        o.move(inst, State.FAILED, now, reason)
        return
    if spec.restart == "never" and not force:
        o.move(inst, State.EXITED, now, why)
        return
    delay = backoff.delay(spec.backoff, inst.consecutive, o.spread())
    inst.consecutive += 1
    o.arm(inst, TimerKind.BACKOFF, now + delay)
    o.note(inst, Kind.RESTART, f"{inst.name}: restarting in {delay:.3f}s ({why})",
           {"delay": round(delay, 6), "why": why})
    o.move(inst, State.BACKOFF, now, why)
