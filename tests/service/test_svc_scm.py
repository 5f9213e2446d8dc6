"""The Windows SCM host against a FAKE of the pywin32 seam: only what Wine's SCM cannot show.

Everything else about the SCM protocol runs for real: the PSF's Windows CPython with real
pywin32 under Wine's services.exe (tests/platform/test_windows_scm.py: START_PENDING with
checkpoints until ctx.ready(), RUNNING, PARAMCHANGE, PAUSE/CONTINUE, STOP_PENDING with a
wait hint per shutdown step, 1066 with the exit code, the Event Log). Kept here, because
Wine cannot do it: SHUTDOWN and PRESHUTDOWN (Wine never sends them), the start-timeout
fallback (Wine never flags a stalled start, and its own timeout is 10 s where Windows
has 30 s), and the in-process detail of the Event Log handler. The fake records every
status and plays the SCM: it runs the service main on a thread of its own and sends
control codes from another.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest

from herder.service import Context, Service
from herder.service._host import run_under_scm
from herder.service._runtime import Timing
from herder.service._scm import (
    CONTROL_PRESHUTDOWN,
    CONTROL_SHUTDOWN,
    ERROR_SERVICE_SPECIFIC_ERROR,
    NO_ERROR,
    RUNNING,
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


@pytest.mark.parametrize("control", [CONTROL_SHUTDOWN, CONTROL_PRESHUTDOWN])
def test_shutdown_and_preshutdown_stop_in_order(control: int) -> None:
    """Fake seam: Wine never sends SHUTDOWN or PRESHUTDOWN (it just kills the services)."""
    seam = FakeSeam()
    svc = Service("bootsvc")
    steps: list[str] = []

    @svc.main
    async def main(ctx: Context) -> None:
        ctx.defer(lambda: steps.append("db.close"), name="db.close")
        ctx.defer(lambda: steps.append("server.drain"), name="server.drain")
        ctx.ready()
        await ctx.stopping
        steps.append(f"stopping: {ctx.stopping.reason}")

    thread, codes = host_in_thread(svc, seam)
    seam.wait_for(lambda s: any(x.state == RUNNING for x in s))
    assert seam.control(control) == NO_ERROR
    thread.join(DEADLINE)
    assert codes == [0]
    name = "SCM SHUTDOWN" if control == CONTROL_SHUTDOWN else "SCM PRESHUTDOWN"
    assert steps == [f"stopping: {name}", "server.drain", "db.close"]
    assert STOP_PENDING in [s.state for s in seam.statuses]
    assert seam.statuses[-1] == ScmStatus(STOPPED, 0, NO_ERROR, 0, 0, 0)


def test_without_ready_running_is_reported_when_start_timeout_is_up(caplog: pytest.LogCaptureFixture) -> None:
    """Fake seam: Wine never flags a stalled start (and its own start timeout is 10 s, not 30 s)."""
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


def test_the_event_log_handler_is_only_there_while_hosting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake seam: an in-process detail (Wine shows the ReportEventW calls, not the handler)."""
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
