"""Critical services on the fake clock (herder.testing.Sim): the exit policy (a critical
service that failed for good stops everything in order and sets herder's exit code), the
health verdict of `herder health`, and the stop budget `herder check --container` prints."""

from __future__ import annotations

import dataclasses

from herder.config import HerderSettings
from herder.config.model import Backoff, Health, ServiceSpec, StartLimit
from herder.core import critical, shutdown
from herder.core.effects import Check, Signal
from herder.core.events import CheckDone, Command, Down, Force, Up, Verb
from herder.testing.sim import Sim, config_of

SPEC = ServiceSpec(command=("prog",), min_uptime=1.0, stop_timeout=5.0, backoff=Backoff(initial=0.1, jitter=0.0),
                   start_limit=StartLimit(burst=2, interval=60.0))


def spec(**kw: object) -> ServiceSpec:
    return dataclasses.replace(SPEC, **kw)  # type: ignore[arg-type]


def stack(**web: object) -> Sim:
    """db <- web <- edge; migrate (a job) <- web."""
    return Sim({"db": spec(), "migrate": spec(restart="never"),
                "web": spec(depends_on={"db": "started", "migrate": "completed"}, **web),
                "edge": spec(depends_on={"web": "started"})})


def stopped_order(sim: Sim, since: int = 0) -> list[str]:
    return [e.name for e in sim.effects[since:] if isinstance(e, Signal)]


def test_a_critical_service_parked_by_its_start_limit_stops_everything_in_order() -> None:
    sim = stack(critical=True)
    sim.post(Up())
    sim.exit("migrate", 0)
    assert sim.state("web") == "running" and sim.state("edge") == "running"
    mark = len(sim.effects)
    for _ in range(3):                        # burst = 2: the third failed start parks it
        sim.exit("web", 1)
        sim.advance(1.0)
    assert sim.state("web") == "failed"
    assert sim.world.phase.value != "up"
    crit = [e for e in sim.events if e.kind == "critical"]
    assert len(crit) == 1 and crit[0].name == "web" and crit[0].data["code"] == 69
    assert "web is critical and failed (3 failed starts" in crit[0].message
    # web is down already, so nothing alive depends on db or edge: both go at once
    assert sorted(stopped_order(sim, mark)[-2:]) == ["db", "edge"]
    assert sim.finished == 69
    assert sim.events[-1].message.startswith("herder: every service stopped; exit code 69 (web failed (")


def test_the_stop_after_a_critical_failure_goes_in_reverse_dependency_order() -> None:
    sim = Sim({"db": spec(), "web": spec(depends_on={"db": "ready"}), "edge": spec(depends_on={"web": "started"}),
               "worker": spec(depends_on={"db": "ready"}, critical=True, restart="never")},
              stubborn={"edge", "web", "db"})
    sim.post(Up())
    mark = len(sim.effects)
    sim.exit("worker", 1)
    assert stopped_order(sim, mark) == ["edge"]          # web waits for edge, db for web
    sim.advance(5.0)                                     # edge's stop_timeout: SIGKILL, then web
    assert stopped_order(sim, mark) == ["edge", "web"]
    sim.advance(5.0)
    assert stopped_order(sim, mark) == ["edge", "web", "db"]
    sim.advance(5.0)
    assert sim.finished == 69


def test_a_non_critical_failure_changes_nothing() -> None:
    sim = stack()
    sim.post(Up())
    sim.exit("migrate", 0)
    for _ in range(3):
        sim.exit("web", 1)
        sim.advance(1.0)
    assert sim.state("web") == "failed" and sim.world.phase.value == "up" and sim.finished is None


def test_a_failed_job_fails_the_start_of_the_critical_service_waiting_for_it() -> None:
    sim = stack(critical=True, critical_exit_code=70)
    sim.post(Up())
    assert sim.state("web") == "waiting"
    sim.exit("migrate", 3)                    # restart = never: exited, not completed
    assert sim.state("migrate") == "exited"
    (crit,) = [e for e in sim.events if e.kind == "critical"]
    assert crit.name == "web"
    assert ("web is critical and cannot start: it waits for migrate (completed), and migrate exited (exit 3) "
            'and is not restarted (restart = "never")') in crit.message
    sim.run_timers()
    assert sim.finished == 70
    assert all(sim.state(n) in ("stopped", "exited") for n in sim.world.instances)


def test_a_critical_job_that_completes_is_no_failure_and_one_that_fails_is() -> None:
    ok = Sim({"migrate": spec(restart="never", critical=True), "app": spec(depends_on={"migrate": "completed"})})
    ok.post(Up())
    ok.exit("migrate", 0)
    assert ok.state("app") == "running" and ok.world.phase.value == "up"
    bad = Sim({"migrate": spec(restart="on-failure", critical=True, critical_exit_code=71),
               "app": spec(depends_on={"migrate": "completed"})})
    bad.post(Up())
    for _ in range(3):                        # retried by on-failure, then parked by the start limit
        bad.exit("migrate", 1)
        bad.advance(1.0)
    assert bad.state("app") == "stopped" and bad.finished == 71


def test_the_chain_of_waits_is_followed_to_the_failure() -> None:
    sim = Sim({"migrate": spec(restart="never"), "api": spec(depends_on={"migrate": "completed"}),
               "web": spec(depends_on={"api": "ready"}, critical=True)})
    sim.post(Up())
    sim.exit("migrate", 2)
    (crit,) = [e for e in sim.events if e.kind == "critical"]
    assert "it waits for api (ready), and api cannot start: it waits for migrate (completed)" in crit.message


def test_a_stop_by_hand_is_no_failure_but_makes_the_verdict_unhealthy() -> None:
    sim = stack(critical=True)
    sim.post(Up())
    sim.exit("migrate", 0)
    assert critical.verdict(sim.world).ok
    sim.post(Command(Verb.STOP, ("web",)))
    assert sim.state("web") == "stopped" and sim.world.phase.value == "up"
    v = critical.verdict(sim.world)
    assert not v.ok and v.checked == ("web",) and v.problems == ("web: stopped (stopped by hand)",)
    sim.post(Command(Verb.START, ("web",)))
    assert critical.verdict(sim.world).ok


def test_the_verdict_needs_ready_and_healthy() -> None:
    sim = Sim({"web": spec(critical=True, health=Health(http="http://h/", failure_threshold=1)),
               "worker": spec()})
    sim.post(Up())
    assert critical.verdict(sim.world).problems == ("web: running, health not known yet",)
    run = sim.inst("web").run
    sim.post(CheckDone("web", Check.HEALTH, run, True, "200"))
    assert critical.verdict(sim.world).ok
    sim.post(CheckDone("web", Check.HEALTH, run, False, "503"))
    assert critical.verdict(sim.world).problems[0].startswith("web: ")
    sim.exit("worker", 1)                    # not critical: not judged while a critical service exists
    assert "worker" not in " ".join(critical.verdict(sim.world).problems)


def test_without_critical_services_the_verdict_judges_what_is_wanted_up() -> None:
    sim = Sim({"a": spec(), "b": spec(autostart=False), "job": spec(restart="never")})
    sim.post(Up())
    sim.exit("job", 0)
    v = critical.verdict(sim.world)
    assert v.ok and set(v.checked) == {"a", "job"}      # b is not wanted up; the job completed
    sim.post(Down())
    v = critical.verdict(sim.world)
    assert not v.ok and v.problems == ("herder is stopping",)


def test_a_forced_stop_keeps_the_critical_exit_code() -> None:
    sim = Sim({"web": spec(critical=True, restart="never"), "slow": spec(stop_timeout=1000.0)}, stubborn={"slow"})
    sim.post(Up())
    sim.exit("web", 1)
    assert sim.finished is None                       # slow ignores SIGTERM
    sim.post(Force())
    assert sim.finished == 69


def test_down_first_then_a_critical_exit_is_a_plain_stop() -> None:
    sim = Sim({"web": spec(critical=True, restart="never")}, stubborn={"web"})
    sim.post(Up())
    sim.post(Down())
    sim.exit("web", 1)                        # exits while being stopped: stopped, not failed
    assert sim.finished == 0 and not [e for e in sim.events if e.kind == "critical"]


# ---- the stop budget ------------------------------------------------------------------------------

def test_the_stop_budget_is_the_heaviest_chain_of_stop_timeouts() -> None:
    cfg = config_of({"db": spec(stop_timeout=10.0), "cache": spec(stop_timeout=2.0),
                     "web": spec(stop_timeout=3.0, depends_on={"db": "ready", "cache": "started"}),
                     "edge": spec(stop_timeout=1.0, depends_on={"web": "started"}),
                     "migrate": spec(stop_timeout=30.0, restart="never"),
                     "api": spec(stop_timeout=1.0, depends_on={"migrate": "completed"})})
    b = shutdown.stop_budget(cfg)
    # edge -> web -> db: 1 + 3 + 10 with a kill margin each, and herder's exit; migrate (30 s)
    # alone is its own chain: a `completed` dependency never stops together with its dependent
    assert b.chain == ("migrate",)
    assert b.seconds == 30.0 + shutdown.KILL_MARGIN + shutdown.EXIT_MARGIN and b.grace == 32
    cfg = config_of({**cfg.services, "migrate": spec(stop_timeout=1.0, restart="never")})
    b = shutdown.stop_budget(cfg)
    assert b.chain == ("edge", "web", "db") and b.seconds == 14 + 3 * shutdown.KILL_MARGIN + shutdown.EXIT_MARGIN
    assert b.grace == 17 and not b.capped


def test_shutdown_timeout_caps_the_budget() -> None:
    cfg = config_of({"a": spec(stop_timeout=100.0)}, dataclasses.replace(HerderSettings(), shutdown_timeout=5.0))
    b = shutdown.stop_budget(cfg)
    assert b.capped and b.seconds == 5.0 + shutdown.KILL_MARGIN + shutdown.EXIT_MARGIN and b.grace == 7
