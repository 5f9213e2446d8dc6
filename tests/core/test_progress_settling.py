"""The CLI's progress view decides when an action's instances have settled (herder.cli.progress).

Found under load: `herder restart` answered, every instance running, and the command then
sat until its 300 s deadline. The view wakes up when the youngest instance passes its
min_uptime; it asked "settled?" at one clock reading and "when next?" at a later one, and
when the wake-up landed between the two, the answer was "not yet" and "no wake-up left".
The decision is now made at one instant; these tests pin it on a hand-set clock."""

from __future__ import annotations

import io

from herder.cli.progress import Settling, View


def running(names: list[str], min_uptime: float) -> Settling:
    s = Settling(View(io.StringIO(), watch=names))
    s.watch([{"name": n, "state": "running", "uptime": 0.0, "min_uptime": min_uptime} for n in names])
    for n in names:
        s.running_since[n] = 100.0        # a hand-set instant (the monotonic clock's units)
    return s


def test_every_instant_either_settled_or_a_wake_up_before_the_deadline() -> None:
    s = running(["db", "w0"], 1.0)
    deadline = 400.0
    for now in (100.0, 100.5, 101.0 - 1e-9, 101.0, 101.0 + 1e-9, 102.0):
        finished, wake = s.plan(now, caught_up=True, ended=False, deadline=deadline)
        assert finished or (wake is not None and wake <= 101.0), (now, finished, wake)
    assert s.plan(101.0, True, False, deadline) == (True, None)      # exactly at min_uptime: settled


def test_the_young_one_sets_the_wake_up() -> None:
    s = running(["db", "w0"], 1.0)
    s.running_since["w0"] = 100.25
    assert s.plan(101.1, True, False, 400.0) == (False, 101.25)
    assert s.plan(101.25, True, False, 400.0) == (True, None)


def test_not_caught_up_waits_for_events_until_the_catch_up_deadline() -> None:
    s = running(["db"], 0.0)
    assert s.plan(100.0, caught_up=False, ended=False, deadline=130.0) == (False, 130.0)
    assert s.plan(100.0, caught_up=False, ended=False, deadline=None) == (False, None)   # no answer yet
    assert s.plan(100.0, caught_up=True, ended=True, deadline=130.0) == (True, None)
