"""Ordered shutdown: reverse order, per-step deadlines, the overall deadline, failures.

Budgets are checked with a fake clock (steps advance it); overrun and failure handling
run for real with short deadlines, the overrunning step waiting on an event that is
never set.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from herder.service._shutdown import Outcome, ShutdownStack, budget


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_is_the_step_timeout_capped_by_the_overall_deadline() -> None:
    assert budget(5.0, None, 0.0) == 5.0
    assert budget(5.0, 10.0, 8.0) == 2.0
    assert budget(1.0, 10.0, 8.0) == 1.0
    assert budget(5.0, 10.0, 11.0) == 0.0


def test_steps_run_in_reverse_with_budgets_from_the_fake_clock() -> None:
    clock = FakeClock()
    stack = ShutdownStack(clock)
    ran: list[str] = []

    def step(name: str, cost: float):  # type: ignore[no-untyped-def]
        def fn() -> None:
            ran.append(name)
            clock.now += cost

        return fn

    stack.push(step("db", 0.0), 5.0, "db.close")
    stack.push(step("cache", 4.0), 5.0, "cache.flush")
    stack.push(step("http", 3.0), 30.0, "http.drain")
    budgets: list[tuple[str, float]] = []
    deadline = clock.now + 9.0
    results = asyncio.run(stack.run(deadline, lambda n, t: budgets.append((n, t))))
    assert ran == ["http", "cache", "db"]
    # http gets the whole 9s left; cache 5s (its own); db what is left: 9 - 3 - 4 = 2s.
    assert budgets == [("http.drain", 9.0), ("cache.flush", 5.0), ("db.close", 2.0)]
    assert [r.outcome for r in results] == [Outcome.OK] * 3


def test_a_step_past_the_overall_deadline_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    stack = ShutdownStack(clock)

    def slow() -> None:
        clock.now += 10.0

    stack.push(lambda: None, 5.0, "db.close")
    stack.push(slow, 30.0, "http.drain")
    results = asyncio.run(stack.run(clock.now + 10.0))
    assert [(r.name, r.outcome) for r in results] == [("http.drain", Outcome.OK), ("db.close", Outcome.SKIPPED)]
    assert "shutdown step db.close skipped" in caplog.text


def test_overrun_and_failing_steps_are_logged_by_name_and_the_rest_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    never = threading.Event()
    ran: list[str] = []
    stack = ShutdownStack()

    async def async_ok() -> None:
        ran.append("async_ok")

    def raises() -> None:
        ran.append("raises")
        raise RuntimeError("disk on fire")

    def hangs() -> None:
        ran.append("hangs")
        never.wait(30)

    async def async_hangs() -> None:
        ran.append("async_hangs")
        await asyncio.Event().wait()

    stack.push(lambda: ran.append("first"), 1.0, "first")
    stack.push(async_hangs, 0.2, "async_hangs")
    stack.push(hangs, 0.2, "hangs")
    stack.push(raises, 1.0, "raises")
    stack.push(async_ok, 1.0, "async_ok")
    results = asyncio.run(stack.run(None))
    never.set()  # let the abandoned thread end
    assert ran == ["async_ok", "raises", "hangs", "async_hangs", "first"]
    assert [r.outcome for r in results] == [
        Outcome.OK, Outcome.FAILED, Outcome.OVERRUN, Outcome.OVERRUN, Outcome.OK,
    ]
    assert "shutdown step raises failed" in caplog.text
    assert "disk on fire" in caplog.text
    assert "shutdown step hangs overran its 0.2s deadline" in caplog.text
    assert "shutdown step async_hangs overran its 0.2s deadline" in caplog.text


def test_defer_needs_a_callable() -> None:
    with pytest.raises(TypeError):
        ShutdownStack().push("close", 1.0)  # type: ignore[arg-type]
