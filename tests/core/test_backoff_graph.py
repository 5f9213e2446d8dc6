"""Backoff curve properties (hypothesis) and the dependency graph."""

from __future__ import annotations

from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from herder.config.model import Backoff, StartLimit
from herder.core import backoff, graph

durations = st.floats(min_value=0.0, max_value=3600.0, allow_nan=False)
factors = st.floats(min_value=1.0, max_value=10.0, allow_nan=False)
jitters = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
spreads = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)


@given(durations, factors, durations, jitters, st.integers(0, 200), spreads)
def test_delay_stays_within_jittered_bounds(initial: float, factor: float, mx: float, jitter: float,
                                            n: int, spread: float) -> None:
    cfg = Backoff(initial=initial, factor=factor, max=mx, jitter=jitter)
    base = min(mx, initial * factor**min(n, 1000)) if initial > 0 else 0.0
    d = backoff.delay(cfg, n, spread)
    assert 0.0 <= d <= mx * (1 + jitter) + 1e-9
    assert abs(d - base * (1 + jitter * spread)) <= 1e-6 * max(1.0, base)


@given(durations, factors, durations, st.integers(0, 100))
def test_delay_without_jitter_never_shrinks_and_is_capped(initial: float, factor: float, mx: float, n: int) -> None:
    cfg = Backoff(initial=initial, factor=factor, max=mx, jitter=0.0)
    assert backoff.delay(cfg, n) <= backoff.delay(cfg, n + 1) + 1e-9
    assert backoff.delay(cfg, n) <= mx + 1e-9


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=50), st.integers(1, 10),
       st.floats(min_value=0.5, max_value=100.0))
def test_start_limit_counts_only_failures_inside_the_window(gaps: list[float], burst: int, interval: float) -> None:
    cfg, q, now, times = StartLimit(burst=burst, interval=interval), deque(), 0.0, []
    for gap in gaps:
        now += gap
        times.append(now)
        over = backoff.over_start_limit(cfg, q, now)
        inside = [t for t in times if t > now - interval]
        assert over == (len(inside) > burst)


def test_cycle_detection_and_levels() -> None:
    assert graph.find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c"]
    assert graph.find_cycle({"a": ["b"], "b": [], "c": ["a", "b"]}) is None
    assert graph.levels({"web": ["db", "cache"], "db": [], "cache": [], "worker": ["web"]}) == \
        [["cache", "db"], ["web"], ["worker"]]
    assert graph.closure({"web": ["db"], "db": ["disk"], "disk": [], "other": []}, ["web"]) == {"web", "db", "disk"}


def F(state: str, **kw: bool) -> graph.Facts:
    base = {"started": False, "ready": False, "healthy": False, "completed": False, "hopeless": False}
    return graph.Facts(state, **{**base, **kw})


def test_conditions_need_every_replica() -> None:
    up = F("running", started=True, ready=True, healthy=True)
    starting = F("starting", started=True)
    assert graph.condition_met("started", [up, starting])
    assert not graph.condition_met("ready", [up, starting])
    assert not graph.condition_met("completed", [up])
    assert graph.condition_met("completed", [F("exited", completed=True)])
    assert graph.condition_met("healthy", [F("exited", completed=True)])
    assert not graph.condition_met("started", [])
    assert graph.waiting_reason("db", "started", [F("failed", hopeless=True)]) == "waiting for db (started): failed"
