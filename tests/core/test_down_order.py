"""`down` stops in reverse dependency order across many steps: a dependency is stopped
only once nothing that depends on it is alive, however long that takes (a dependent
ignoring SIGTERM, then surviving SIGKILL), and steps that change no state in between stop
nothing (herder.core.reconcile._down runs after every step). Time is the Sim's virtual
clock."""

from __future__ import annotations

import dataclasses

from herder.config.model import Backoff, ServiceSpec
from herder.core.effects import Kill, Signal
from herder.core.events import Command, Down, Up, Verb
from herder.testing.sim import Sim

SPEC = ServiceSpec(command=("prog",), min_uptime=0.0, stop_timeout=2.0, backoff=Backoff(initial=0.5, jitter=0.0))


def spec(**kw: object) -> ServiceSpec:
    return dataclasses.replace(SPEC, **kw)  # type: ignore[arg-type]


def services() -> dict[str, ServiceSpec]:
    """db <- web (2 replicas) <- edge, and a lone service."""
    return {"db": spec(), "web": spec(replicas=2, depends_on={"db": "started"}),
            "edge": spec(depends_on={"web": "started"}), "lone": spec()}


def moves_to(sim: Sim, state: str, since: int = 0) -> list[str]:
    return [e.name for e in sim.events[since:] if e.kind == "state" and e.data["to"] == state]


def test_a_dependency_waits_while_its_dependent_outlives_its_stop_timeout() -> None:
    sim = Sim(services(), stubborn={"edge", "web", "db", "lone"}, unkillable={"edge"})
    sim.post(Up())
    mark = len(sim.events)
    sim.post(Down())
    assert moves_to(sim, "stopping", mark) == ["edge", "lone"]
    sim.advance(2.0)     # the stop timeouts: SIGKILL to edge (which survives it) and lone (which ends)
    assert [e.name for e in sim.effects if isinstance(e, Kill)] == ["edge", "lone"]
    signals = len([e for e in sim.effects if isinstance(e, Signal | Kill)])
    sim.post(Command(Verb.STOP, ("db", "web"), ticket=1))    # steps that change no state during `down`
    sim.post(Command(Verb.START, ("edge",), ticket=2))
    sim.advance(30.0)
    assert sim.replies[1].ok and not sim.replies[2].ok
    assert [sim.state(n) for n in ("db", "web.0", "web.1", "edge")] == ["running", "running", "running", "stopping"]
    assert len([e for e in sim.effects if isinstance(e, Signal | Kill)]) == signals   # web and db wait for edge
    sim.exit("edge", None, "SIGKILL")
    assert moves_to(sim, "stopping", mark) == ["edge", "lone", "web.0", "web.1"]
    assert sim.state("db") == "running"
    sim.advance(2.0)     # web's stop timeouts: both killed, then db goes
    assert moves_to(sim, "stopping", mark) == ["edge", "lone", "web.0", "web.1", "db"]
    sim.advance(2.0)
    assert sim.finished == 0 and sim.world.phase.value == "done"
    signalled = [e.name for e in sim.effects if isinstance(e, Signal) and e.signal.name == "SIGTERM"]
    assert signalled == ["edge", "lone", "web.0", "web.1", "db"]
