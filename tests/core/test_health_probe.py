"""The probe tracker (herder/core/probe.py): every pair of the table, and every rule of
docs/health.md "Liveness" and "Watchdog", with timing on a FakeClock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from herder.config.model import Health
from herder.core.probe import (
    TABLE,
    Act,
    ArmWatchdog,
    PEv,
    PState,
    Schedule,
    Tracker,
    Verdict,
    counts_healthy,
)
from herder.testing import FakeClock

HTTP = "http://127.0.0.1:1/health"


def tracker(**kw: object) -> Tracker:
    kw.setdefault("http", HTTP)
    return Tracker(Health(**kw))  # type: ignore[arg-type]


def started(t: Tracker) -> Tracker:
    t.handle(PEv.SPAWNED)
    t.handle(PEv.READY)
    return t


def verdicts(effects: list) -> list[bool | None]:
    return [e.healthy for e in effects if isinstance(e, Verdict)]


def acts(effects: list) -> list[str]:
    return [e.reason for e in effects if isinstance(e, Act)]


def test_every_pair_has_a_rule() -> None:
    assert {(s, e) for s in PState for e in PEv} == set(TABLE)


@pytest.mark.parametrize("state", list(PState))
@pytest.mark.parametrize("ev", list(PEv))
def test_every_pair_runs_without_error(state: PState, ev: PEv) -> None:
    t = tracker(watchdog=1.0)
    t.state = state
    t.handle(ev, why="x")


def test_probing_starts_at_ready_after_initial_delay() -> None:
    t = tracker(initial_delay=5.0)
    assert t.handle(PEv.SPAWNED) == []           # no probe while starting
    assert t.handle(PEv.READY) == [Schedule(5.0)]


def test_next_probe_one_interval_after_the_previous_finished() -> None:
    t = started(tracker(interval=7.0))
    assert Schedule(7.0) in t.handle(PEv.PASS)
    assert Schedule(7.0) in t.handle(PEv.FAIL, why="x")


def test_health_is_unknown_until_success_threshold_passes() -> None:
    t = started(tracker(success_threshold=2))
    assert t.combined() is None
    assert verdicts(t.handle(PEv.PASS)) == []
    assert verdicts(t.handle(PEv.PASS)) == [True]
    assert t.state is PState.HEALTHY


def test_failure_threshold_consecutive_failures_make_unhealthy_and_act_once() -> None:
    t = started(tracker(failure_threshold=3))
    t.handle(PEv.PASS)
    assert acts(t.handle(PEv.FAIL, why="HTTP 500")) == []
    assert acts(t.handle(PEv.FAIL, why="HTTP 500")) == []
    out = t.handle(PEv.FAIL, why="HTTP 500")
    assert verdicts(out) == [False] and acts(out) == ["health"]
    assert "3 consecutive" in out[0].message and "HTTP 500" in out[0].message
    assert acts(t.handle(PEv.FAIL, why="HTTP 500")) == []   # once per fall


def test_a_pass_resets_the_failure_count() -> None:
    t = started(tracker(failure_threshold=2))
    t.handle(PEv.FAIL, why="x")
    t.handle(PEv.PASS)
    assert acts(t.handle(PEv.FAIL, why="x")) == []


def test_failures_count_before_the_first_pass_too() -> None:
    t = started(tracker(failure_threshold=2))
    t.handle(PEv.FAIL, why="x")
    out = t.handle(PEv.FAIL, why="x")
    assert verdicts(out) == [False] and acts(out) == ["health"]


def test_action_none_only_records() -> None:
    t = started(tracker(failure_threshold=1, action="none"))
    out = t.handle(PEv.FAIL, why="x")
    assert verdicts(out) == [False] and acts(out) == []


def test_unhealthy_recovers_after_success_threshold_passes() -> None:
    t = started(tracker(failure_threshold=1, success_threshold=2, action="none"))
    t.handle(PEv.FAIL, why="x")
    assert verdicts(t.handle(PEv.PASS)) == []
    assert verdicts(t.handle(PEv.PASS)) == [True]


def test_exit_resets_everything_and_late_results_are_ignored() -> None:
    t = started(tracker(failure_threshold=2))
    t.handle(PEv.FAIL, why="x")
    assert verdicts(t.handle(PEv.EXITED)) == []      # unknown before, unknown after
    assert t.state is PState.IDLE and t.fails == 0
    assert t.handle(PEv.FAIL, why="late") == [] and t.handle(PEv.PASS) == []
    started(t)
    assert acts(t.handle(PEv.FAIL, why="x")) == []   # fresh counters after a restart


def test_ready_again_after_a_reload_does_not_restart_probing() -> None:
    t = started(tracker())
    t.handle(PEv.PASS)
    assert t.handle(PEv.READY) == []


def test_no_probe_means_healthy_once_ready() -> None:
    t = Tracker(Health(watchdog=5.0))
    t.handle(PEv.SPAWNED)
    assert t.combined() is None
    assert verdicts(t.handle(PEv.READY)) == [True]


def test_watchdog_armed_at_spawn_and_rearmed_by_each_ping() -> None:
    t = tracker(watchdog=3.0)
    assert t.handle(PEv.SPAWNED) == [ArmWatchdog(3.0)]
    assert ArmWatchdog(3.0) in t.handle(PEv.PING)


def test_watchdog_expiry_is_unhealthy_at_once_with_its_own_reason() -> None:
    t = started(tracker(watchdog=3.0, failure_threshold=5))
    t.handle(PEv.PASS)
    out = t.handle(PEv.EXPIRE)
    assert verdicts(out) == [False] and acts(out) == ["watchdog"]
    assert out[0].reason == "watchdog"
    assert t.handle(PEv.EXPIRE) == []                 # once


def test_watchdog_trigger_message_is_kept() -> None:
    t = started(tracker(watchdog=3.0))
    out = t.handle(PEv.EXPIRE, why="WATCHDOG=trigger")
    assert [a.message for a in out if isinstance(a, Act)] == ["WATCHDOG=trigger"]


def test_watchdog_recovers_on_ping_with_action_none() -> None:
    t = started(tracker(watchdog=3.0, action="none"))
    t.handle(PEv.PASS)
    assert verdicts(t.handle(PEv.EXPIRE)) == [False]
    assert verdicts(t.handle(PEv.PING)) == [True]


def test_ping_without_watchdog_is_ignored() -> None:
    t = started(tracker())
    assert t.handle(PEv.PING) == []


def test_counts_healthy_for_the_dependency_condition() -> None:
    assert counts_healthy(Health(http=HTTP), None) is False      # a probe must pass first
    assert counts_healthy(Health(http=HTTP), True) is True
    assert counts_healthy(Health(), None) is True                 # no probe: ready is enough
    assert counts_healthy(Health(watchdog=1.0), False) is False


# ---- timing, on a fake clock: what the runtime does with Schedule ---------------------------

def simulate(t: Tracker, clock: FakeClock, result: Callable[[float], bool], until: float,
             probe_takes: float = 0.0) -> list[tuple[float, str]]:
    """Drive the tracker like the runtime: sleep Schedule.delay, probe, feed the result."""
    log: list[tuple[float, str]] = []
    pending = [e for e in t.handle(PEv.READY) if isinstance(e, Schedule)]
    for _ in range(10_000):
        if not pending or clock.now() >= until:
            break
        clock.advance(pending.pop().delay + probe_takes)
        ok = result(clock.now())
        log.append((clock.now(), "pass" if ok else "fail"))
        for e in t.handle(PEv.PASS if ok else PEv.FAIL, why="x"):
            if isinstance(e, Schedule):
                pending.append(e)
            elif isinstance(e, Act):
                log.append((clock.now(), "act"))
            elif isinstance(e, Verdict):
                log.append((clock.now(), "healthy" if e.healthy else "unhealthy"))
    return log


def test_unhealthy_within_initial_delay_plus_threshold_intervals() -> None:
    clock = FakeClock(0.0)
    t = tracker(initial_delay=5.0, interval=10.0, failure_threshold=3)
    t.handle(PEv.SPAWNED)
    log = simulate(t, clock, lambda now: False, until=100)
    assert log[:4] == [(5.0, "fail"), (15.0, "fail"), (25.0, "fail"), (25.0, "unhealthy")]
    assert (25.0, "act") in log


def test_failing_after_healthy_acts_within_interval_times_threshold() -> None:
    clock = FakeClock(0.0)
    t = tracker(interval=2.0, failure_threshold=3, timeout=1.0)
    t.handle(PEv.SPAWNED)
    breaks_at = 10.0
    log = simulate(t, clock, lambda now: now < breaks_at, until=100, probe_takes=0.5)
    act_at = next(at for at, what in log if what == "act")
    # the worst case: the first failing probe starts just after the break, each takes ≤ timeout
    assert act_at - breaks_at <= 3 * (2.0 + 1.0)
