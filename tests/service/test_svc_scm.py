"""The Windows SCM host against a fake of the pywin32 seam.

NOT RUN ON REAL WINDOWS: pywin32 cannot run on this Linux CI (see
docs/platform-testing.md, B2). These tests drive the real runtime and ScmReporter; only
``_windows.PyWin32Seam`` (the SetServiceStatus / dispatcher calls) is replaced by a fake
that records every status, and plays the SCM: it runs the service main on a thread of
its own and sends control codes from another.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import pytest

from herder.service import Context, Service
from herder.service._host import run_under_scm
from herder.service._runtime import Timing
from herder.service._scm import (
    ACCEPT_PARAMCHANGE,
    ACCEPT_PAUSE_CONTINUE,
    ACCEPT_PRESHUTDOWN,
    ACCEPT_SHUTDOWN,
    ACCEPT_STOP,
    CONTINUE_PENDING,
    CONTROL_CONTINUE,
    CONTROL_INTERROGATE,
    CONTROL_PARAMCHANGE,
    CONTROL_PAUSE,
    CONTROL_PRESHUTDOWN,
    CONTROL_STOP,
    ERROR_CALL_NOT_IMPLEMENTED,
    ERROR_SERVICE_SPECIFIC_ERROR,
    NO_ERROR,
    PAUSE_PENDING,
    PAUSED,
    RUNNING,
    START_PENDING,
    STOP_PENDING,
    STOPPED,
    ScmStatus,
)

DEADLINE = 15.0
TICK = 0.05


class FakeSeam:
    """Records SetServiceStatus calls; ``host`` behaves like StartServiceCtrlDispatcher."""

    def __init__(self) -> None:
        self.statuses: list[ScmStatus] = []
        self.logged: list[str] = []
        self._cond = threading.Condition()
        self.on_control: Callable[[int], int] | None = None

    def set_status(self, status: ScmStatus) -> None:
        with self._cond:
            self.statuses.append(status)
            self._cond.notify_all()

    def log_event(self, level: int, message: str) -> None:
        self.logged.append(message)

    def host(self, service_main: Callable[[], int], on_control: Callable[[int], int]) -> int:
        self.on_control = on_control
        result: list[int] = []
        service_thread = threading.Thread(target=lambda: result.append(service_main()))
        service_thread.start()
        service_thread.join(DEADLINE)
        assert result, "service main did not return"
        return result[0]

    def wait_for(self, predicate: Callable[[list[ScmStatus]], bool]) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.statuses), DEADLINE), self.statuses

    def count(self, state: int) -> int:
        return sum(1 for s in self.statuses if s.state == state)

    def control(self, code: int) -> int:
        self.wait_for(lambda _: self.on_control is not None)
        assert self.on_control is not None
        return self.on_control(code)


def host_in_thread(svc: Service, seam: FakeSeam, **timing: float) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(
        target=lambda: codes.append(
            run_under_scm(svc.name, svc._hooks(), Timing(stop_timeout=None, **timing), seam, tick_interval=TICK)
        )
    )
    thread.start()
    return thread, codes


def pending_runs_increase(statuses: list[ScmStatus], state: int) -> list[int]:
    checkpoints = [s.checkpoint for s in statuses if s.state == state]
    assert checkpoints == sorted(set(checkpoints)), checkpoints
    assert checkpoints[0] == 1
    return checkpoints


def test_slow_start_and_slow_stop_report_checkpoints_and_wait_hints() -> None:
    """Not run on real Windows (fake seam)."""
    seam = FakeSeam()
    svc = Service("slowsvc")
    steps: list[str] = []

    @svc.main
    async def main(ctx: Context) -> None:
        # A slow start-up: it lasts until the SCM has seen three START_PENDING checkpoints.
        await asyncio.to_thread(seam.wait_for, lambda s: sum(x.state == START_PENDING for x in s) >= 3)
        ctx.defer(lambda: steps.append("db.close"), timeout="4s", name="db.close")

        def drain() -> None:  # a slow stop step: three more checkpoints while it runs
            before = seam.count(STOP_PENDING)
            seam.wait_for(lambda s: sum(x.state == STOP_PENDING for x in s) >= before + 3)
            steps.append("http.drain")

        ctx.defer(drain, timeout="3s", name="http.drain")
        ctx.ready()
        await ctx.stopping

    @svc.on_reload
    def reload(ctx: Context) -> None:
        pass

    thread, codes = host_in_thread(svc, seam, start_timeout=20.0)
    seam.wait_for(lambda s: any(x.state == RUNNING for x in s))
    assert seam.control(CONTROL_STOP) == NO_ERROR
    thread.join(DEADLINE)
    assert codes == [0]
    assert steps == ["http.drain", "db.close"]

    statuses = seam.statuses
    states = [s.state for s in statuses]
    first_running = states.index(RUNNING)
    assert set(states[:first_running]) == {START_PENDING}
    assert len(pending_runs_increase(statuses[:first_running], START_PENDING)) >= 3
    assert all(s.controls_accepted == 0 and s.wait_hint_ms > 0 for s in statuses[:first_running])
    # The start hint is what is left of start_timeout (20s), never below the 2s floor.
    assert 2000 <= statuses[0].wait_hint_ms <= 20000

    running = statuses[first_running]
    assert running == ScmStatus(
        RUNNING, ACCEPT_STOP | ACCEPT_SHUTDOWN | ACCEPT_PRESHUTDOWN | ACCEPT_PARAMCHANGE
    )
    stop = statuses[first_running + 1 :]
    assert {s.state for s in stop[:-1]} == {STOP_PENDING}
    pending_runs_increase(stop[:-1], STOP_PENDING)
    assert all(s.controls_accepted == 0 and s.wait_hint_ms >= 2000 for s in stop[:-1])
    # Each step announces itself with its own deadline as the wait hint.
    assert 3000 in [s.wait_hint_ms for s in stop] and 4000 in [s.wait_hint_ms for s in stop]
    assert sum(1 for s in stop if s.state == STOP_PENDING) >= 5
    assert stop[-1] == ScmStatus(STOPPED, 0, NO_ERROR, 0, 0, 0)


def test_a_failed_main_stops_with_a_service_specific_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not run on real Windows (fake seam). With no logging configured, logs go to the Event Log."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    seam = FakeSeam()
    svc = Service("crashsvc")

    @svc.main
    def main(ctx: Context) -> None:
        raise RuntimeError("config missing")

    thread, codes = host_in_thread(svc, seam)
    thread.join(DEADLINE)
    assert codes == [1]
    assert seam.statuses[-1] == ScmStatus(STOPPED, 0, ERROR_SERVICE_SPECIFIC_ERROR, 1, 0, 0)
    assert any("config missing" in m for m in seam.logged)  # went to the Event Log
    assert logging.getLogger().handlers == []  # and the host took its handler away again


def test_without_ready_running_is_reported_when_start_timeout_is_up(caplog: pytest.LogCaptureFixture) -> None:
    """Not run on real Windows (fake seam)."""
    seam = FakeSeam()
    svc = Service("lazysvc")

    @svc.main
    async def main(ctx: Context) -> None:
        await ctx.stopping

    thread, codes = host_in_thread(svc, seam, start_timeout=0.2)
    seam.wait_for(lambda s: any(x.state == RUNNING for x in s))
    assert seam.control(CONTROL_PRESHUTDOWN) == NO_ERROR
    thread.join(DEADLINE)
    assert codes == [0]
    assert "has not called ctx.ready() within start_timeout" in caplog.text


def test_pause_continue_and_paramchange_only_with_handlers() -> None:
    """Not run on real Windows (fake seam)."""
    seam = FakeSeam()
    svc = Service("pausesvc")
    calls: list[str] = []

    @svc.main
    async def main(ctx: Context) -> None:
        ctx.ready()
        await ctx.stopping

    @svc.on_pause
    def pause(ctx: Context) -> None:
        calls.append("pause")

    @svc.on_continue
    async def resume(ctx: Context) -> None:
        calls.append("continue")

    thread, codes = host_in_thread(svc, seam)
    seam.wait_for(lambda s: any(x.state == RUNNING for x in s))
    assert seam.statuses[-1].controls_accepted & ACCEPT_PAUSE_CONTINUE
    assert not seam.statuses[-1].controls_accepted & ACCEPT_PARAMCHANGE
    assert seam.control(CONTROL_PARAMCHANGE) == ERROR_CALL_NOT_IMPLEMENTED  # no on_reload
    assert seam.control(CONTROL_INTERROGATE) == ERROR_CALL_NOT_IMPLEMENTED
    assert seam.control(CONTROL_PAUSE) == NO_ERROR
    seam.wait_for(lambda s: s[-1].state == PAUSED)
    assert seam.control(CONTROL_CONTINUE) == NO_ERROR
    seam.wait_for(lambda s: s[-1].state == RUNNING and PAUSED in [x.state for x in s])
    assert seam.control(CONTROL_STOP) == NO_ERROR
    thread.join(DEADLINE)
    assert codes == [0]
    assert calls == ["pause", "continue"]
    states = [s.state for s in seam.statuses]
    i = states.index(PAUSE_PENDING)
    assert states[i : i + 4] == [PAUSE_PENDING, PAUSED, CONTINUE_PENDING, RUNNING]


def test_pause_is_refused_without_handlers() -> None:
    """Not run on real Windows (fake seam)."""
    seam = FakeSeam()
    svc = Service("plainsvc")

    @svc.main
    async def main(ctx: Context) -> None:
        ctx.ready()
        await ctx.stopping

    thread, codes = host_in_thread(svc, seam)
    seam.wait_for(lambda s: any(x.state == RUNNING for x in s))
    assert not seam.statuses[-1].controls_accepted & ACCEPT_PAUSE_CONTINUE
    assert seam.control(CONTROL_PAUSE) == ERROR_CALL_NOT_IMPLEMENTED
    assert seam.control(CONTROL_STOP) == NO_ERROR
    thread.join(DEADLINE)
    assert codes == [0]
