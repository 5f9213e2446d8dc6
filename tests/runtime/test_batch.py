"""Which queued events the supervisor steps together (herder.runtime.batch), on the core
driven by herder.testing.Sim (no processes: the rules are about the core's events and
effects; tests/runtime/test_stop_batch.py has the same with real processes)."""

from __future__ import annotations

from collections import deque

from herder.config import ServiceSpec
from herder.config.model import Backoff
from herder.core import effects as fx
from herder.core.effects import TimerKey, TimerKind
from herder.core.events import Down, Event, Exited, TimerFired, Up
from herder.core.step import step
from herder.runtime import batch
from herder.testing.sim import Sim


def stubborn_sim(n: int) -> Sim:
    """n services that ignore SIGTERM, all asked to stop by `down`: n stop timeouts armed."""
    names = [f"s{i}" for i in range(n)]
    sim = Sim({x: ServiceSpec(command=("x",), stop_timeout=2.0) for x in names}, stubborn=set(names))
    sim.post(Up())
    sim.post(Down())
    return sim


def stop_timeouts(sim: Sim) -> deque[Event]:
    return deque(TimerFired(TimerKey(TimerKind.STOP, name), inst.timers[TimerKind.STOP])
                 for name, inst in sim.world.instances.items())


def stepper(sim: Sim, now: float) -> tuple[list[Event], batch.Step]:
    seen: list[Event] = []

    def one(ev: Event) -> list[fx.Effect]:
        seen.append(ev)
        return step(sim.world, ev, now)
    return seen, one


def test_stop_timeouts_due_together_are_one_batch_with_every_kill() -> None:
    sim = stubborn_sim(5)
    queue = stop_timeouts(sim)
    seen, one = stepper(sim, sim.now + 2.0)
    evs, effects = batch.take(queue, one)
    assert evs == seen and len(evs) == 5 and not queue
    assert sorted(e.name for e in effects if isinstance(e, fx.Kill)) == sorted(sim.world.instances)
    # one by one, the same events give the same effects in the same order
    sim2 = stubborn_sim(5)
    alone = [eff for ev in stop_timeouts(sim2) for eff in step(sim2.world, ev, sim2.now + 2.0)]
    assert [type(e).__name__ + getattr(e, "name", "") for e in alone] == \
           [type(e).__name__ + getattr(e, "name", "") for e in effects]


def test_a_batch_ends_before_an_event_stepped_alone_or_an_instance_already_in_it() -> None:
    sim = stubborn_sim(3)
    queue = stop_timeouts(sim)
    queue.insert(1, TimerFired(TimerKey(TimerKind.SHUTDOWN), 9e9))     # herder's own deadline: alone
    evs, _ = batch.take(queue, stepper(sim, sim.now + 2.0)[1])
    assert len(evs) == 1 and len(queue) == 3
    queue.popleft()
    evs, _ = batch.take(queue, stepper(sim, sim.now + 2.0)[1])
    assert len(evs) == 2 and not queue

    sim = stubborn_sim(2)
    queue = stop_timeouts(sim)
    pid = sim.world.instances["s0"].pid
    queue.insert(1, Exited("s0", pid, None, "SIGKILL"))    # s0 again: its kill must be carried out first
    evs, _ = batch.take(queue, stepper(sim, sim.now + 2.0)[1])
    assert len(evs) == 1 and len(queue) == 2

    queue = deque([Down()])      # not an instance's event: alone, whatever follows
    queue.extend(stop_timeouts(stubborn_sim(2)))
    evs, _ = batch.take(queue, stepper(sim, sim.now)[1])
    assert evs == [Down()] and len(queue) == 2


def test_a_batch_ends_with_a_step_that_spawns() -> None:
    """Nothing is stepped between a spawn and its answer: two backoffs due together are
    two batches (the second is stepped once the first spawn was answered)."""
    spec = ServiceSpec(command=("x",), backoff=Backoff(initial=5.0, jitter=0.0))
    sim = Sim({"a": spec, "b": spec})
    sim.post(Up())
    sim.exit("a", code=1)
    sim.exit("b", code=1)
    due = {x: sim.world.instances[x].timers[TimerKind.BACKOFF] for x in ("a", "b")}
    assert due["a"] == due["b"]
    queue: deque[Event] = deque(TimerFired(TimerKey(TimerKind.BACKOFF, x), at) for x, at in due.items())
    evs, effects = batch.take(queue, stepper(sim, sim.now + 5.0)[1])
    assert [e.key.owner for e in evs if isinstance(e, TimerFired)] == ["a"]
    assert any(isinstance(e, fx.Spawn) for e in effects) and len(queue) == 1


def test_signals_first_keeps_each_part_in_order() -> None:
    pub = [fx.Publish(f"s{i}", fx.Kind.STOP_TIMEOUT, "x") for i in range(3)]
    kill = [fx.Kill(f"s{i}", fx.Scope.TREE) for i in range(3)]
    mixed: list[fx.Effect] = [pub[0], kill[0], pub[1], kill[1], pub[2], kill[2]]
    assert batch.signals_first(mixed) == [*kill, *pub]
    assert batch.signals_first(pub) == pub
