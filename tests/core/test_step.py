"""The whole step, without processes (herder.testing.Sim): operator jobs and their order,
`down`, readiness checks, probes, the watchdog, sd_notify guards, memory, bind, reloads,
stale timers and results. Time is the Sim's virtual clock."""

from __future__ import annotations

import dataclasses
import signal

from herder.config.model import Backoff, Health, Limits, Ready, ServiceSpec, StartLimit
from herder.core.effects import (
    Check,
    Kill,
    MovePid,
    Publish,
    RunCheck,
    SampleMemory,
    Signal,
    Spawn,
    TimerKey,
    TimerKind,
)
from herder.core.events import (
    CheckDone,
    Command,
    Down,
    Force,
    Held,
    Interrupt,
    LogMatched,
    MemorySampled,
    Notified,
    NotifyErrno,
    NotifyExtend,
    NotifyMainPid,
    NotifyReady,
    NotifyReloading,
    NotifyStatus,
    NotifyWatchdog,
    Reconfigure,
    SendSignal,
    TimerFired,
    Up,
    Verb,
)
from herder.core.plan import diff
from herder.testing.sim import Sim, config_of

SPEC = ServiceSpec(command=("prog",), min_uptime=0.0, backoff=Backoff(initial=0.1, jitter=0.0))


def spec(**kw: object) -> ServiceSpec:
    return dataclasses.replace(SPEC, **kw)  # type: ignore[arg-type]


def chain() -> Sim:
    """db <- web (2 replicas) <- edge."""
    return Sim({"db": spec(), "web": spec(replicas=2, depends_on={"db": "started"}),
                "edge": spec(depends_on={"web": "started"})})


def states(sim: Sim) -> dict[str, str]:
    return {n: sim.state(n) for n in sim.world.instances}


def order_of(sim: Sim, kind: str, since: int = 0) -> list[str]:
    return [e.name for e in sim.events[since:] if e.kind == kind]


def signalled(sim: Sim, since: int = 0) -> list[str]:
    return [e.name for e in sim.effects[since:] if isinstance(e, Signal)]


# ---- up, operator jobs and their order ----------------------------------------------------------

def test_up_starts_in_dependency_order_and_leaves_held_ones_down() -> None:
    sim = chain()
    sim.post(Held(frozenset({"edge"})))
    sim.post(Up())
    assert order_of(sim, "spawn") == ["db", "web.0", "web.1"]
    assert states(sim) == {"db": "running", "web.0": "running", "web.1": "running", "edge": "stopped"}


def test_up_with_named_services_starts_their_dependencies_even_held() -> None:
    sim = chain()
    sim.post(Held(frozenset({"db"})))
    sim.post(Up(("web",)))
    assert states(sim) == {"db": "running", "web.0": "running", "web.1": "running", "edge": "stopped"}


def test_stop_of_many_goes_in_reverse_dependency_order_level_by_level() -> None:
    sim = chain()
    sim.stubborn = {"db", "web", "edge"}     # each level waits out its stop timeout
    sim.post(Up())
    mark = len(sim.effects)
    sim.post(Command(Verb.STOP, ("db", "web.0", "web.1", "edge"), ticket=1))
    assert signalled(sim, mark) == ["edge"]
    sim.advance(10.0)                        # edge's stop_timeout: SIGKILL, exit
    assert signalled(sim, mark) == ["edge", "web.0", "web.1"]
    sim.advance(10.0)
    assert signalled(sim, mark) == ["edge", "web.0", "web.1", "db"]
    assert 1 not in sim.replies
    sim.advance(10.0)
    assert sim.replies[1].ok and set(states(sim).values()) == {"stopped"}


def test_stop_of_200_services_that_ignore_sigterm_takes_one_stop_timeout() -> None:
    """issue 17 item 8: `herder stop` of many acts on all together (was one after another)."""
    services = {f"s{i:03d}": spec(stop_timeout=2.0) for i in range(200)}
    sim = Sim(services, stubborn=set(services))
    sim.post(Up())
    t0 = sim.now
    sim.post(Command(Verb.STOP, tuple(services), ticket=5, timeout=300.0))
    assert len(signalled(sim)) == 200
    sim.run_timers()
    assert sim.replies[5].ok
    assert all(sim.state(n) == "stopped" for n in services)
    assert max(e.at for e in sim.effects if hasattr(e, "at") and isinstance(e.at, float)) - t0 <= 300.0
    kills = [e for e in sim.effects if isinstance(e, Kill)]
    assert len(kills) == 200
    stopped_at = max(sim.world.instances[n].since for n in services)
    assert stopped_at - t0 == 2.0


def test_stop_names_dependents_outside_the_job_keep_running() -> None:
    sim = chain()
    sim.post(Up())
    sim.post(Command(Verb.STOP, ("db",)))
    assert states(sim) == {"db": "stopped", "web.0": "running", "web.1": "running", "edge": "running"}


def test_restart_of_many_stops_all_in_reverse_order_then_starts_in_forward_order() -> None:
    sim = chain()
    sim.post(Up())
    mark = len(sim.events)
    sim.post(Command(Verb.RESTART, ("db", "web.0", "web.1", "edge"), ticket=2))
    stops = [e.name for e in sim.events[mark:] if e.kind == "state" and e.data["to"] == "stopping"]
    spawns = order_of(sim, "spawn", mark)
    assert stops == ["edge", "web.0", "web.1", "db"]
    assert spawns == ["db", "web.0", "web.1", "edge"]
    last_exit = max(i for i, e in enumerate(sim.events) if e.kind == "exit")
    first_spawn = min(i for i, e in enumerate(sim.events) if i >= mark and e.kind == "spawn")
    assert last_exit < first_spawn          # every member was down before the first came back
    assert sim.replies[2].ok and all(sim.inst(n).restarts == 1 for n in sim.world.instances)


def test_restart_of_one_replicated_service_rolls_one_replica_at_a_time() -> None:
    sim = Sim({"w": spec(replicas=3)})
    sim.post(Up())
    mark = len(sim.events)
    sim.post(Command(Verb.RESTART, ("w.0", "w.1", "w.2"), ticket=3, timeout=30.0))
    seq = [(e.name, e.data["to"]) for e in sim.events[mark:] if e.kind == "state"]
    down = {n: seq.index((n, "stopping")) for n in ("w.0", "w.1", "w.2")}
    up = {n: seq.index((n, "running")) for n in ("w.0", "w.1", "w.2")}
    assert down["w.0"] < up["w.0"] < down["w.1"] < up["w.1"] < down["w.2"] < up["w.2"]
    assert [e.message for e in sim.events[mark:] if e.kind == "rolling"] == \
        ["w.0: rolling restart 1/3", "w.1: rolling restart 2/3", "w.2: rolling restart 3/3"]
    assert sim.replies[3].ok


def test_a_rolling_restart_halts_when_a_replica_does_not_come_back() -> None:
    sim = Sim({"w": spec(replicas=3, start_limit=StartLimit(burst=1, interval=60.0))})
    sim.post(Up())
    sim.fail_spawns["w"] = "/bin/w: No such file or directory"
    sim.post(Command(Verb.RESTART, ("w.0", "w.1", "w.2"), ticket=4, timeout=30.0))
    sim.run_timers()
    reply = sim.replies[4]
    assert not reply.ok and reply.message == "w.0 is failed after restart; rolling restart halted, left alone: w.1, w.2"
    assert sim.state("w.1") == "running" and sim.state("w.2") == "running"


def test_a_rolling_restart_halts_at_its_deadline() -> None:
    sim = Sim({"w": spec(replicas=2, ready=Ready(notify=True, timeout=0.0))})
    sim.post(Up())
    for n in ("w.0", "w.1"):
        sim.post(Notified(n, (NotifyReady(),)))
    sim.post(Command(Verb.RESTART, ("w.0", "w.1"), ticket=6, timeout=5.0))
    sim.advance(5.0)
    assert sim.replies[6].message == "w.0 is starting after restart; rolling restart halted, left alone: w.1"


def test_start_job_answers_once_settled_and_says_when_it_did_not_come_up() -> None:
    sim = Sim({"ok": spec(), "bad": spec(start_limit=StartLimit(burst=0, interval=60.0))})
    sim.fail_spawns["bad"] = "nope"
    sim.post(Command(Verb.START, ("ok",), ticket=1))
    assert sim.replies[1].ok
    sim.post(Command(Verb.START, ("bad",), ticket=2))
    assert not sim.replies[2].ok and sim.state("bad") == "failed"


def test_start_job_deadline() -> None:
    sim = Sim({"slow": spec(ready=Ready(notify=True, timeout=0.0))})
    sim.post(Command(Verb.START, ("slow",), ticket=1, timeout=7.0))
    sim.advance(7.0)
    assert sim.replies[1].message == "not running after 7s"


def test_a_newer_command_takes_instances_out_of_an_older_job() -> None:
    sim = chain()
    sim.stubborn = {"edge", "web"}
    sim.post(Up())
    sim.post(Command(Verb.STOP, ("db", "web.0", "web.1", "edge"), ticket=1))
    sim.post(Command(Verb.START, ("db",), ticket=2))
    assert sim.replies[2].ok and sim.state("db") == "running"
    sim.run_timers()
    assert sim.replies[1].ok and sim.state("db") == "running" and sim.state("edge") == "stopped"


def test_send_signal_reaches_live_instances_and_names_the_others() -> None:
    sim = Sim({"a": spec(), "b": spec(autostart=False)})
    sim.post(Up())
    out = sim.post(SendSignal(("a", "b"), signal.SIGHUP, ticket=9))
    assert [e for e in out if isinstance(e, Signal)] == [Signal("a", signal.SIGHUP, sim_scope_main())]
    assert sim.replies[9].message == "not running, no signal sent: b" and sim.replies[9].reached == ("a",)


def sim_scope_main():  # type: ignore[no-untyped-def]
    from herder.core.effects import Scope

    return Scope.MAIN


# ---- down ---------------------------------------------------------------------------------------

def test_down_stops_in_reverse_order_then_finishes() -> None:
    sim = chain()
    sim.post(Up())
    mark = len(sim.events)
    sim.post(Down())
    stops = [e.name for e in sim.events[mark:] if e.kind == "state" and e.data["to"] == "stopping"]
    assert stops == ["edge", "web.0", "web.1", "db"]
    assert sim.finished == 0 and sim.world.phase.value == "done"


def test_a_second_interrupt_forces_and_the_exit_code_is_1() -> None:
    sim = Sim({"s": spec()}, stubborn={"s"})
    sim.post(Up())
    sim.post(Interrupt())
    assert sim.state("s") == "stopping" and sim.finished is None
    sim.post(Interrupt())
    assert sim.finished == 1
    assert any(e.message == "herder: forced stop: SIGKILL to everything left" for e in sim.events)


def test_shutdown_timeout_kills_what_is_left() -> None:
    sim = Sim(config_of({"s": spec(stop_timeout=1000.0)}))
    sim.stubborn = {"s"}
    sim.post(Up())
    sim.post(Down())
    sim.advance(60.0)
    assert sim.finished == 1
    assert any("shutdown_timeout (60s) reached" in e.message for e in sim.events)


def test_a_start_during_down_is_refused() -> None:
    sim = Sim({"s": spec()}, stubborn={"s"})
    sim.post(Up())
    sim.post(Down())
    sim.post(Command(Verb.START, ("s",), ticket=3))
    assert not sim.replies[3].ok and sim.state("s") == "stopping"


def test_force_after_down_finished_does_nothing() -> None:
    sim = Sim({"s": spec()})
    sim.post(Up())
    sim.post(Down())
    assert sim.finished == 0
    assert sim.post(Force()) == []


# ---- readiness, probes, watchdog, memory ----------------------------------------------------------

def test_http_readiness_is_attempted_every_interval_until_it_passes() -> None:
    sim = Sim({"web": spec(ready=Ready(http="http://127.0.0.1:1/", interval=0.5, timeout=30.0))})
    sim.post(Up())
    assert sim.checks == [RunCheck("web", Check.READY, 1)] and sim.state("web") == "starting"
    sim.post(CheckDone("web", Check.READY, 1, False, "refused"))
    sim.advance(0.49)
    assert len(sim.checks) == 1
    sim.advance(0.01)
    assert len(sim.checks) == 2
    sim.post(CheckDone("web", Check.READY, 1, True, "HTTP 200"))
    assert sim.state("web") == "running"
    assert any(e.message == "web: ready (http: HTTP 200)" for e in sim.events)


def test_a_late_result_of_an_earlier_run_is_ignored() -> None:
    sim = Sim({"web": spec(ready=Ready(http="http://127.0.0.1:1/", timeout=30.0))})
    sim.post(Up())
    sim.exit("web", 1)
    sim.advance(0.1)
    assert sim.inst("web").run == 2
    sim.post(CheckDone("web", Check.READY, 1, True, "late"))
    assert sim.state("web") == "starting"


def test_ready_log_match_of_the_current_run_makes_it_ready() -> None:
    sim = Sim({"app": spec(ready=Ready(log="started", timeout=30.0))})
    out = sim.post(Up())
    assert Spawn("app", 1, "started") in out
    sim.post(LogMatched("app", 1, "INFO started"))
    assert sim.state("app") == "running"
    assert any(e.message == "app: ready (log: log line matched: INFO started)" for e in sim.events)


def test_liveness_failures_restart_through_backoff() -> None:
    sim = Sim({"web": spec(health=Health(http="http://h:1/", interval=10.0, failure_threshold=2))})
    sim.post(Up())
    sim.advance(0.0)                         # initial_delay 0: the first probe at once
    assert sim.checks[-1] == RunCheck("web", Check.HEALTH, 1)
    sim.post(CheckDone("web", Check.HEALTH, 1, False, "HTTP 500"))
    sim.advance(10.0)
    sim.post(CheckDone("web", Check.HEALTH, 1, False, "HTTP 500"))
    failing = [e for e in sim.events if e.kind == "failing"]
    assert failing and failing[0].data["reason"] == "health" and "2 consecutive" in failing[0].message
    assert sim.state("web") == "backoff"
    health = [e.data["health"] for e in sim.events if e.kind == "health"]
    assert health == ["unhealthy", "unknown"]


def test_watchdog_expiry_and_trigger() -> None:
    sim = Sim({"w": spec(health=Health(watchdog=5.0))})
    sim.post(Up())
    sim.advance(4.0)
    sim.post(Notified("w", (NotifyWatchdog(),)))
    sim.advance(4.0)
    assert sim.state("w") == "running"
    sim.advance(1.0)
    failing = [e for e in sim.events if e.kind == "failing"]
    assert failing and failing[0].data["reason"] == "watchdog"
    sim.advance(1.0)
    sim.post(Notified("w", (NotifyWatchdog(trigger=True),)))
    assert "WATCHDOG=trigger" in [e for e in sim.events if e.kind == "failing"][-1].message


def test_memory_over_the_limit_restarts_gracefully_once_per_run() -> None:
    sim = Sim({"hog": spec(limits=Limits(max_memory_restart=100, memory_check_interval=5.0))})
    sim.post(Up())
    assert not any(isinstance(e, SampleMemory) for e in sim.effects)
    sim.advance(5.0)
    assert SampleMemory("hog", 1) in sim.effects
    sim.post(MemorySampled("hog", 1, 50))
    sim.advance(5.0)
    sim.post(MemorySampled("hog", 1, 500))
    assert [e.data["reason"] for e in sim.events if e.kind == "failing"] == ["memory"]
    assert sim.inst("hog").timers.get(TimerKind.MEMORY) is None


# ---- sd_notify guards ----------------------------------------------------------------------------

def test_ready_counts_only_while_starting_with_notify_or_reloading() -> None:
    sim = Sim({"n": spec(ready=Ready(notify=True, timeout=30.0)), "plain": spec(ready=Ready(http="http://h:1/"))})
    sim.post(Up())
    sim.post(Notified("plain", (NotifyReady(),)))
    assert sim.state("plain") == "starting"          # its readiness is the http check
    sim.post(Notified("n", (NotifyReady(), NotifyStatus("serving"))))
    assert sim.state("n") == "running" and sim.inst("n").status == "serving"
    status_at = next(i for i, e in enumerate(sim.events) if e.kind == "status")
    running_at = next(i for i, e in enumerate(sim.events) if e.kind == "state" and e.data["to"] == "running")
    assert status_at < running_at                    # READY=1 applied last in its datagram
    sim.post(Notified("n", (NotifyReloading(),)))
    assert sim.state("n") == "reloading"
    sim.post(Notified("n", (NotifyReady(),)))
    assert sim.state("n") == "running" and sim.inst("n").reason == "reloaded"


def test_extend_only_while_starting_or_stopping() -> None:
    sim = Sim({"x": spec(ready=Ready(notify=True, timeout=1.0))})
    sim.post(Up())
    sim.post(Notified("x", (NotifyExtend(20.0),)))
    sim.advance(5.0)
    assert sim.state("x") == "starting"
    sim.post(Notified("x", (NotifyReady(),)))
    assert sim.post(Notified("x", (NotifyExtend(20.0),))) == []


def test_mainpid_must_belong_to_the_instance() -> None:
    sim = Sim({"d": spec()})
    sim.post(Up())
    old = sim.inst("d").pid
    assert old is not None
    sim.post(Notified("d", (NotifyMainPid(4242, owned=False, foreign=False),)))
    assert sim.inst("d").pid == old and sim.events[-1].kind == "notify_warning"
    out = sim.post(Notified("d", (NotifyMainPid(4243, owned=True, foreign=True),)))
    assert MovePid("d", old, 4243, True) in out and sim.inst("d").pid == 4243


def test_errno_is_reported_with_its_name() -> None:
    sim = Sim({"e": spec()})
    sim.post(Up())
    sim.post(Notified("e", (NotifyErrno(2, "No such file or directory"),)))
    assert sim.events[-1].message == "e: the program reports errno 2 (No such file or directory)"


# ---- bind, timers ---------------------------------------------------------------------------------

def test_bind_restarts_bound_dependents_when_a_dependency_exits() -> None:
    sim = Sim({"db": spec(), "loose": spec(depends_on={"db": "ready"}),
               "bound": spec(depends_on={"db": "ready"}, bind=True)})
    sim.post(Up())
    loose, bound = sim.inst("loose").pid, sim.inst("bound").pid
    sim.exit("db", 1)
    assert [e.name for e in sim.events if e.kind == "bind"] == ["bound"]
    sim.advance(0.1)
    assert sim.inst("loose").pid == loose and sim.inst("bound").pid != bound
    assert sim.state("bound") == "running"


def test_a_stale_timer_is_ignored() -> None:
    sim = Sim({"s": spec()})
    sim.post(Up())
    sim.exit("s", 1)
    at = sim.inst("s").timers[TimerKind.BACKOFF]
    sim.post(Command(Verb.STOP, ("s",)))
    assert sim.post(TimerFired(TimerKey(TimerKind.BACKOFF, "s"), at)) == []
    assert sim.state("s") == "stopped"


def test_no_step_publishes_a_bug() -> None:
    sim = chain()
    sim.post(Up())
    sim.post(Command(Verb.RESTART, tuple(sim.world.instances)))
    sim.post(Down())
    assert not [e for e in sim.events if e.kind == "bug"]


# ---- reload ----------------------------------------------------------------------------------------

def test_reload_adds_removes_restarts_and_scales_leaving_the_rest_alone() -> None:
    old = config_of({"a": spec(), "b": spec(command=("b1",)), "w": spec(replicas=2, depends_on={"a": "started"}),
                     "gone": spec()})
    sim = Sim(old)
    sim.post(Up())
    before = {n: sim.inst(n).pid for n in sim.world.instances}
    new = config_of({"a": spec(), "b": spec(command=("b2",)), "w": spec(replicas=3, depends_on={"a": "started"}),
                     "c": spec()})
    sim.post(Reconfigure(new, diff(old.services, new.services), ticket=1))
    assert sim.replies[1].ok, sim.replies[1]
    after = {n: sim.inst(n).pid for n in sim.world.instances}
    assert after["a"] == before["a"] and after["w.0"] == before["w.0"] and after["w.1"] == before["w.1"]
    assert after["b"] not in (None, before["b"]) and after["c"] is not None and after["w.2"] is not None
    assert "gone" not in sim.world.instances and sim.world.config.services["b"].command == ("b2",)


def test_reload_waits_for_the_stop_timeout_of_what_it_removes() -> None:
    old = config_of({"a": spec(), "slow": spec(stop_timeout=5.0)})
    sim = Sim(old, stubborn={"slow"})
    sim.post(Up())
    new = config_of({"a": spec()})
    sim.post(Reconfigure(new, diff(old.services, new.services), ticket=2))
    sim.advance(4.9)
    assert 2 not in sim.replies
    sim.advance(0.1)      # SIGKILL at its stop_timeout ends it
    assert sim.replies[2].ok and "slow" not in sim.world.instances


def test_reload_reports_what_would_not_stop_and_keeps_its_definition() -> None:
    old = config_of({"a": spec(), "stuck": spec(stop_timeout=5.0)})
    sim = Sim(old, stubborn={"stuck"}, unkillable={"stuck"})
    sim.post(Up())
    new = config_of({"a": spec()})
    sim.post(Reconfigure(new, diff(old.services, new.services), ticket=2))
    sim.advance(15.0)     # the reload's deadline: the longest stop_timeout + 10 s
    assert sim.replies[2].problems == ("still stopping after 15s: stuck",)
    assert "stuck" in sim.world.instances and "stuck" in sim.world.config.services


def test_events_are_publish_effects() -> None:
    sim = Sim({"s": spec()})
    out = sim.post(Up())
    assert all(isinstance(e, Publish) for e in out if not isinstance(e, Spawn | RunCheck))


def test_a_stop_by_hand_holds_instances_down_until_started_by_hand() -> None:
    sim = chain()
    sim.post(Up())
    sim.post(Command(Verb.STOP, ("edge",)))
    assert sim.world.held == {"edge"}
    sim.post(Command(Verb.RESTART, ("edge", "db")))
    assert sim.world.held == set()
    sim.post(Command(Verb.STOP, ("web.0", "web.1")))
    old = config_of({n: s for n, s in sim.world.config.services.items()})
    new = config_of({**old.services, "extra": spec()})
    sim.post(Reconfigure(new, diff(old.services, new.services)))
    assert sim.state("web.0") == "stopped" and sim.world.held == {"web.0", "web.1"}


def test_a_restored_complete_stop_finishes_at_the_next_step() -> None:
    """A decision process killed after its stop was complete, before it exited: its successor
    restores the record (herder.core.snapshot) and must still finish (issue 12: it waited
    forever, the keeper with it)."""
    from herder.config import to_record
    from herder.core import snapshot

    sim = chain()
    sim.post(Up())
    sim.post(Down())
    assert sim.world.phase.value == "done"
    record = snapshot.world(sim.world, to_record)
    insts = {n: snapshot.instance(i) for n, i in sim.world.instances.items()}
    after = Sim(sim.world.config)
    assert snapshot.restore(after.world, record, insts, lambda raw: sim.world.config) == []
    assert after.world.phase.value == "down" and after.finished is None
    after.post(Down())          # what adoption posts for a restored stop
    assert after.finished == 0 and after.world.phase.value == "done"
