"""Hooks in the pure core (herder.core.lifecycle, the table's hook_done column), driven
through the simulated runtime: the order of hooks and process, failures, timeouts, stops
and kills in the middle of a hook, and that one run's post_stop never overlaps the next
run's pre_start."""

from __future__ import annotations

import dataclasses

from herder.config.lifecycle import Hook, Hooks
from herder.config.model import Backoff, Ready, ServiceSpec, StartLimit
from herder.core import effects as fx
from herder.core.effects import HookKind
from herder.core.events import Command, Down, Force, Up, Verb
from herder.core.events import Ready as ReadyEv
from herder.testing.sim import Sim

BASE = ServiceSpec(command=("web",), min_uptime=1.0, stop_timeout=5.0,
                   backoff=Backoff(initial=1.0, factor=1.0, jitter=0.0), start_limit=StartLimit(burst=2, interval=60))
ALL = Hooks(pre_start=Hook(("migrate",), timeout=20.0), post_start=Hook(("lb-add",)),
            pre_stop=Hook(("lb-drain",)), post_stop=Hook(("cleanup",)))


def spec(**kw: object) -> ServiceSpec:
    return dataclasses.replace(BASE, **kw)  # type: ignore[arg-type]


def order(sim: Sim) -> list[str]:
    """The hooks and process milestones of `web`, in order."""
    out = []
    for e in sim.effects:
        if isinstance(e, fx.RunHook):
            out.append(e.hook.value)
        elif isinstance(e, fx.Spawn):
            out.append("spawn")
        elif isinstance(e, fx.Signal):
            out.append(f"signal {e.signal.name}")
        elif isinstance(e, fx.StopHook):
            out.append(f"stophook {e.signal.name}")
    return out


def hook_events(sim: Sim) -> list[tuple[str, str, bool | None]]:
    return [(str(e.data["hook"]), str(e.data["phase"]), e.data.get("ok"))  # type: ignore[misc]
            for e in sim.events if e.kind == "hook"]


def test_full_lifecycle_in_order_and_every_hook_run_is_an_event() -> None:
    sim = Sim({"web": spec(hooks=ALL)})
    sim.post(Up())
    assert sim.state("web") == "running"
    assert order(sim) == ["pre_start", "spawn", "post_start"]
    sim.post(Command(Verb.STOP, ("web",)))
    assert sim.state("web") == "stopped"
    assert order(sim) == ["pre_start", "spawn", "post_start", "pre_stop", "signal SIGTERM", "post_stop"]
    assert hook_events(sim) == [(h, p, ok) for h in ("pre_start", "post_start", "pre_stop", "post_stop")
                                for p, ok in (("start", None), ("end", True))]


def test_while_a_hook_runs_the_instance_is_starting_or_stopping_with_the_hook_named() -> None:
    sim = Sim({"web": spec(hooks=ALL)}, hold_hooks={("web", k) for k in ("pre_start", "post_start", "pre_stop",
                                                                         "post_stop")})
    sim.post(Up())
    inst = sim.inst("web")
    assert (sim.state("web"), inst.hook, inst.pid, inst.reason) == ("starting", HookKind.PRE_START, None,
                                                                     "pre_start hook")
    sim.end_hook("web")
    assert (sim.state("web"), inst.hook) == ("starting", HookKind.POST_START)
    assert inst.pid is not None and not sim.world.facts("web").ready   # dependents still wait
    sim.end_hook("web")
    assert sim.state("web") == "running" and inst.was_ready
    sim.post(Command(Verb.STOP, ("web",)))
    assert (sim.state("web"), inst.hook) == ("stopping", HookKind.PRE_STOP)
    assert not any(isinstance(e, fx.Signal) for e in sim.effects)      # no signal before the drain is over
    sim.end_hook("web")
    assert (sim.state("web"), inst.hook) == ("stopping", HookKind.POST_STOP)
    sim.end_hook("web")
    assert sim.state("web") == "stopped" and inst.hook is None


def test_a_failing_pre_start_is_a_failed_start_counted_by_the_start_limit() -> None:
    sim = Sim({"web": spec(hooks=Hooks(pre_start=Hook(("migrate",))))}, hook_codes={("web", "pre_start"): 3})
    sim.post(Up())
    assert sim.state("web") == "backoff"
    assert "pre_start hook exit 3" in sim.inst("web").reason
    assert not any(isinstance(e, fx.Spawn) for e in sim.effects)
    sim.run_timers(30)
    assert sim.state("web") == "failed"
    reason = sim.inst("web").reason
    assert "3 failed starts" in reason and "last: pre_start hook exit 3" in reason


def test_a_pre_start_that_times_out_is_killed_and_fails_the_start() -> None:
    sim = Sim({"web": spec(hooks=Hooks(pre_start=Hook(("migrate",), timeout=20.0)))},
              hold_hooks={("web", "pre_start")})
    sim.post(Up())
    sim.advance(19.9)
    assert sim.state("web") == "starting"
    sim.advance(0.2)
    assert isinstance(sim.effects[-1], fx.StopHook) or any(
        isinstance(e, fx.StopHook) and e.signal.name == "SIGKILL" for e in sim.effects)
    assert sim.state("web") == "backoff"
    assert "pre_start hook timed out after 20s" in sim.inst("web").reason


def test_a_failing_pre_stop_never_prevents_the_stop() -> None:
    sim = Sim({"web": spec(hooks=Hooks(pre_stop=Hook(("lb-drain",))))}, hook_codes={("web", "pre_stop"): 1})
    sim.post(Up())
    sim.post(Command(Verb.STOP, ("web",)))
    assert sim.state("web") == "stopped"
    assert order(sim) == ["spawn", "pre_stop", "signal SIGTERM"]
    assert ("pre_stop", "end", False) in hook_events(sim)


def test_a_hanging_pre_stop_is_killed_at_its_timeout_and_the_stop_goes_on() -> None:
    sim = Sim({"web": spec(hooks=Hooks(pre_stop=Hook(("lb-drain",), timeout=7.0)))}, hold_hooks={("web", "pre_stop")},
              stubborn_hooks={("web", "pre_stop")})
    sim.post(Up())
    sim.post(Command(Verb.STOP, ("web",)))
    sim.advance(7.0)
    assert sim.state("web") == "stopped"
    assert order(sim)[-2:] == ["stophook SIGKILL", "signal SIGTERM"]


def test_pre_stop_runs_only_for_an_instance_that_was_ready() -> None:
    sim = Sim({"web": spec(hooks=Hooks(pre_stop=Hook(("lb-drain",))), ready=Ready(notify=True, timeout=0))})
    sim.post(Up())
    assert sim.state("web") == "starting"
    sim.post(Command(Verb.STOP, ("web",)))
    assert "pre_stop" not in order(sim)


def test_a_failing_post_start_stops_the_instance_as_a_failed_start() -> None:
    sim = Sim({"web": spec(hooks=Hooks(post_start=Hook(("lb-add",))), ready=Ready(notify=True, timeout=0))},
              hook_codes={("web", "post_start"): 7})
    sim.post(Up())
    sim.post(ReadyEv("web"))
    assert sim.state("web") == "backoff"
    assert sim.inst("web").reason == "hook"
    assert sim.inst("web").failed_starts     # counted


def test_post_stop_runs_after_a_crash_and_the_restart_waits_for_it() -> None:
    sim = Sim({"web": spec(hooks=Hooks(pre_start=Hook(("migrate",)), post_stop=Hook(("cleanup",))),
                           restart="always")}, hold_hooks={("web", "post_stop")})
    sim.post(Up())
    sim.advance(5)
    sim.exit("web", code=1)
    assert (sim.state("web"), sim.inst("web").hook) == ("stopping", HookKind.POST_STOP)
    sim.run_timers(25)                                  # nothing may start while post_stop runs (timeout 30s)
    assert order(sim) == ["pre_start", "spawn", "post_stop"]
    sim.end_hook("web")
    assert sim.state("web") == "backoff"
    sim.run_timers(5)
    assert order(sim) == ["pre_start", "spawn", "post_stop", "pre_start", "spawn"]


def test_a_stop_during_pre_start_stops_the_hook_and_nothing_is_spawned() -> None:
    sim = Sim({"web": spec(hooks=Hooks(pre_start=Hook(("migrate",))))}, hold_hooks={("web", "pre_start")})
    sim.post(Up())
    sim.post(Command(Verb.STOP, ("web",)))
    assert sim.state("web") == "stopped"
    assert order(sim) == ["pre_start", "stophook SIGTERM"]


def test_a_stubborn_pre_start_is_killed_after_stop_timeout() -> None:
    sim = Sim({"web": spec(hooks=Hooks(pre_start=Hook(("migrate",), timeout=600)))},
              hold_hooks={("web", "pre_start")}, stubborn_hooks={("web", "pre_start")})
    sim.post(Up())
    sim.post(Command(Verb.STOP, ("web",)))
    assert sim.state("web") == "stopping"
    sim.advance(5.0)                                    # stop_timeout, not the hook's 600 s
    assert sim.state("web") == "stopped"
    assert order(sim)[-1] == "stophook SIGKILL"


def test_a_restart_during_pre_start_starts_again_without_counting_a_failure() -> None:
    sim = Sim({"web": spec(hooks=Hooks(pre_start=Hook(("migrate",))))}, hold_hooks={("web", "pre_start")})
    sim.post(Up())
    sim.post(Command(Verb.RESTART, ("web",)))
    assert sim.state("web") == "starting" and sim.inst("web").hook is HookKind.PRE_START
    assert not sim.inst("web").failed_starts


def test_exit_during_post_start_stops_the_hook_then_applies_the_policy() -> None:
    sim = Sim({"web": spec(hooks=Hooks(post_start=Hook(("lb-add",))), restart="always")},
              hold_hooks={("web", "post_start")})
    sim.post(Up())
    sim.exit("web", code=2)
    assert sim.state("web") == "backoff"
    assert order(sim) == ["spawn", "post_start", "stophook SIGTERM"]


def test_exit_during_pre_stop_waits_for_the_drain_then_stops() -> None:
    sim = Sim({"web": spec(hooks=Hooks(pre_stop=Hook(("lb-drain",))))}, hold_hooks={("web", "pre_stop")})
    sim.post(Up())
    sim.post(Command(Verb.STOP, ("web",)))
    sim.exit("web", code=0)
    assert sim.state("web") == "stopping"
    sim.end_hook("web")
    assert sim.state("web") == "stopped"
    assert "signal SIGTERM" not in order(sim)


def test_force_kills_the_running_hook_and_skips_post_stop() -> None:
    sim = Sim({"web": spec(hooks=Hooks(pre_stop=Hook(("lb-drain",)), post_stop=Hook(("cleanup",))))},
              hold_hooks={("web", "pre_stop")}, stubborn_hooks={("web", "pre_stop")})
    sim.post(Up())
    sim.post(Down())
    assert sim.inst("web").hook is HookKind.PRE_STOP
    sim.post(Force())
    assert sim.state("web") == "stopped" and sim.finished == 1
    assert "post_stop" not in order(sim)


def test_down_waits_for_post_stop() -> None:
    sim = Sim({"web": spec(hooks=Hooks(post_stop=Hook(("cleanup",))))}, hold_hooks={("web", "post_stop")})
    sim.post(Up())
    sim.post(Down())
    assert sim.finished is None and sim.inst("web").hook is HookKind.POST_STOP
    sim.end_hook("web")
    assert sim.finished == 0


def test_a_late_hook_answer_is_ignored() -> None:
    from herder.core.events import HookDone

    sim = Sim({"web": spec(hooks=Hooks(pre_start=Hook(("migrate",))))}, hold_hooks={("web", "pre_start")})
    sim.post(Up())
    sim.post(HookDone("web", HookKind.PRE_START, 99, 0))     # another run's
    assert sim.inst("web").hook is HookKind.PRE_START and sim.state("web") == "starting"
