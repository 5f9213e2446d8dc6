"""Repeated identical messages: a few let through per window, the rest counted (herder.logs.repeats)."""

from __future__ import annotations

from herder.logs.repeats import Repeats, summary


def test_a_burst_is_let_through_then_counted_per_window() -> None:
    r = Repeats(window=10.0, burst=3)
    got = [r.allow("accept failed", t / 100) for t in range(100)]      # 100 in one second
    assert [ok for ok, _ in got] == [True] * 3 + [False] * 97
    assert all(closed == 0 for _, closed in got)
    assert r.allow("other", 1.0) == (True, 0)                          # each message has its own window
    assert r.allow("accept failed", 10.5) == (True, 97)                # the next window: report what was held
    assert r.due(25.0) == [] and r.allow("accept failed", 25.0) == (True, 0)


def test_due_reports_windows_that_closed_with_messages_held() -> None:
    r = Repeats(window=10.0, burst=1)
    for t in range(5):
        r.allow("x", float(t))
    r.allow("y", 0.0)
    assert r.due(9.0) == []
    assert r.due(10.0) == [("x", 4)]
    assert r.due(10.0) == []


def test_memory_stays_bounded_with_endless_distinct_messages() -> None:
    r = Repeats()
    for i in range(5000):
        r.allow(f"message {i}", float(i) / 1000)
    assert len(r._seen) <= 1001


def test_summary_text() -> None:
    assert summary(1, "boom") == "the previous message was repeated 1 more time within 10s (held back): boom"
    assert "repeated 5 more times" in summary(5, "boom")
