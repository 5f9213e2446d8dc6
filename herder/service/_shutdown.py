"""Ordered shutdown: deferred steps in reverse order, each with a deadline, all under one.

Why a stack: resources are acquired in order (db, then server) and must be released in
reverse (drain the server, then close the db), exactly like ``contextlib.ExitStack``.
Why per-step deadlines: one hung ``close()`` must not eat the whole stop timeout and
leave the later steps (flush logs, remove temp files) undone. Why an overall deadline:
the manager SIGKILLs us when its stop timeout is up, so every step's budget is capped by
what is left of it. A step that raises or overruns is logged with its name and the
others still run. Deadlines use an injected monotonic clock so tests can drive them.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from herder.service._calls import call, describe

log = logging.getLogger("herder.service")

DEFAULT_STEP_TIMEOUT = 10.0


class Outcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    OVERRUN = "overrun"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Step:
    name: str
    fn: Callable[[], Any]
    timeout: float


@dataclass(frozen=True)
class StepResult:
    name: str
    outcome: Outcome
    seconds: float


def budget(step_timeout: float, deadline: float | None, now: float) -> float:
    """A step's time: its own timeout, capped by what is left of the overall deadline."""
    if deadline is None:
        return step_timeout
    return max(0.0, min(step_timeout, deadline - now))


class ShutdownStack:
    """Steps pushed by ``ctx.defer`` (from any thread), run once at shutdown."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._steps: list[Step] = []
        self._lock = threading.Lock()
        self._clock = clock

    def push(self, fn: Callable[[], Any], timeout: float, name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"ctx.defer() needs a callable, got {fn!r}")
        with self._lock:
            self._steps.append(Step(name or describe(fn), fn, timeout))

    def pending_seconds(self) -> float:
        """The sum of the registered steps' timeouts: the longest the shutdown can take."""
        with self._lock:
            return sum(step.timeout for step in self._steps)

    def __len__(self) -> int:
        """Steps not started yet."""
        with self._lock:
            return len(self._steps)

    def _next(self) -> Step | None:
        """The step to run now: the last registered of those left."""
        with self._lock:
            return self._steps.pop() if self._steps else None

    async def run(
        self,
        deadline: float | None,
        on_step: Callable[[str, float], None] = lambda name, timeout: None,
    ) -> list[StepResult]:
        """Run every step; never raises for a step's failure. ``deadline`` is on our clock."""
        results = []
        while (step := self._next()) is not None:
            results.append(await self._run_step(step, deadline, on_step))
        return results

    async def _run_step(
        self,
        step: Step,
        deadline: float | None,
        on_step: Callable[[str, float], None],
    ) -> StepResult:
        start = self._clock()
        allowed = budget(step.timeout, deadline, start)
        if allowed <= 0:
            log.error("shutdown step %s skipped: the overall stop deadline has passed", step.name)
            return StepResult(step.name, Outcome.SKIPPED, 0.0)
        on_step(step.name, allowed)
        log.debug("shutdown step %s (up to %.3gs)", step.name, allowed)
        outcome = Outcome.OK
        try:
            async with asyncio.timeout(allowed):
                await call(step.fn, name=f"shutdown:{step.name}")
        except TimeoutError:
            outcome = Outcome.OVERRUN
            capped = " (capped by the overall stop deadline)" if allowed < step.timeout else ""
            log.error(
                "shutdown step %s overran its %.3gs deadline%s; left behind, continuing",
                step.name,
                allowed,
                capped,
            )
        except Exception:
            outcome = Outcome.FAILED
            log.exception("shutdown step %s failed; continuing", step.name)
        return StepResult(step.name, outcome, self._clock() - start)
