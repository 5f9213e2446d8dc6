"""The deadline heap (herder.runtime.timers) on the FakeClock: which timers fire when."""

from __future__ import annotations

from herder.core.effects import TimerKey, TimerKind
from herder.runtime.timers import Timers
from herder.testing import FakeClock


def key(owner: str) -> TimerKey:
    return TimerKey(TimerKind.BACKOFF, owner)


def test_fire_due_fires_what_is_due_in_deadline_order_and_leaves_the_rest_to_the_clock() -> None:
    clock = FakeClock(100.0)
    fired: list[tuple[str, float]] = []
    timers = Timers(clock, lambda k, at: fired.append((k.owner, at)))
    timers.open()
    timers.arm(key("later"), 105.0)
    timers.arm(key("now"), 100.0)
    timers.arm(key("past"), 99.0)
    timers.arm(key("gone"), 98.0)
    timers.cancel(key("gone"))
    timers.arm(key("moved"), 97.0)
    timers.arm(key("moved"), 110.0)    # re-armed: its first deadline is stale

    assert timers.fire_due()
    assert fired == [("past", 99.0), ("now", 100.0)]
    assert not timers.fire_due()       # nothing else is due
    assert clock.pending() == 105.0    # the clock is asked to wake for the next one, once
    clock.advance(5.0)
    assert fired[-1] == ("later", 105.0)
    clock.advance(5.0)
    assert fired[-1] == ("moved", 110.0) and len(fired) == 4


def test_fire_due_does_nothing_before_open_or_after_close() -> None:
    clock = FakeClock(100.0)
    fired: list[str] = []
    timers = Timers(clock, lambda k, at: fired.append(k.owner))
    timers.arm(key("a"), 100.0)
    assert not timers.fire_due() and fired == []
    timers.open()
    timers.close()
    assert not timers.fire_due() and fired == []
    assert timers.armed == {key("a"): 100.0}     # kept for a later open
