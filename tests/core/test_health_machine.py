"""The instance table's health rows (herder/core/machine.py): ready timeout, FAIL,
HEALTH, RELOADING, MAINPID, EXTEND, oom exits — each line of docs/health.md that the
table decides, on a fake clock."""

from __future__ import annotations

import dataclasses
import signal

import pytest

from herder.config.model import Health, Limits, Ready, ServiceSpec, StartLimit
from herder.core.effects import ArmTimer, CancelTimer, Effect, Publish, Scope, Signal, TimerKey, TimerKind
from herder.core.events import (
    BackoffDone,
    DepsMet,
    Exited,
    Extend,
    Fail,
    FailReason,
    HealthChanged,
    MainPid,
    OneInstance,
    ReadyTimeout,
    Reloading,
    Spawned,
    Start,
    Stop,
)
from herder.core.events import (
    Ready as ReadyEv,
)
from herder.core.instance import Instance, State
from herder.core.machine import TABLE, handle
from herder.core.out import Out
from herder.testing import FakeClock

HEALTH_EVENTS = (ReadyTimeout, Reloading, Fail, HealthChanged, MainPid, Extend)
READY_TIMER = TimerKey(TimerKind.READY, "web")


def spec(**kw: object) -> ServiceSpec:
    base = dict(command=("prog",), ready=Ready(notify=True, timeout=5.0), min_uptime=0.0)
    base.update(kw)
    return ServiceSpec(**base)  # type: ignore[arg-type]


class Run:
    def __init__(self, **kw: object) -> None:
        self.clock = FakeClock(1000.0)
        self.inst = Instance("web", "web", None, spec(**kw))

    def ev(self, ev: OneInstance) -> list[Effect]:
        out = Out(lambda: 0.0)
        handle(out, self.inst, ev, self.clock.now())
        return out.effects

    def exit(self, code: int | None = 0, sig: str | None = None, reason: str = "") -> list[Effect]:
        return self.ev(Exited("web", self.inst.pid, code, sig, reason))

    def spawn(self, pid: int = 100) -> list[Effect]:
        self.ev(Start("web"))
        self.ev(DepsMet("web"))
        return self.ev(Spawned("web", pid))


def kinds(effects: list[Effect]) -> list[str]:
    return [e.kind for e in effects if isinstance(e, Publish)]


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("ev", HEALTH_EVENTS)
def test_every_health_event_has_a_rule_in_every_state(state: State, ev: type[OneInstance]) -> None:
    assert (state, ev) in TABLE


def test_await_ready_keeps_starting_and_arms_the_ready_timer() -> None:
    r = Run()
    out = r.spawn()
    assert r.inst.state is State.STARTING
    assert ArmTimer(READY_TIMER, 1005.0) in out


def test_ready_cancels_the_timer() -> None:
    r = Run()
    r.spawn()
    out = r.ev(ReadyEv("web"))
    assert r.inst.state is State.RUNNING and CancelTimer(READY_TIMER) in out


def test_ready_timeout_stops_it_then_its_exit_is_a_failed_start_with_backoff() -> None:
    r = Run()
    r.spawn()
    r.clock.advance(5.0)
    out = r.ev(ReadyTimeout("web"))
    assert r.inst.state is State.STOPPING and r.inst.reason == "ready_timeout"
    assert Signal("web", signal.SIGTERM, Scope.GROUP) in out and "failing" in kinds(out)
    out = r.exit(None, "SIGTERM")
    assert r.inst.state is State.BACKOFF
    assert len(r.inst.failed_starts) == 1 and r.inst.want_up
    assert any(isinstance(e, ArmTimer) and e.key.kind is TimerKind.BACKOFF for e in out)


def test_ready_timeouts_reach_the_start_limit_and_park_in_failed() -> None:
    r = Run(start_limit=StartLimit(burst=1, interval=60.0))
    r.spawn()
    r.ev(ReadyTimeout("web"))
    r.exit(0)
    assert r.inst.state is State.BACKOFF
    r.ev(BackoffDone("web"))
    r.ev(DepsMet("web"))
    r.ev(Spawned("web", 101))
    r.ev(ReadyTimeout("web"))
    r.exit(0)
    assert r.inst.state is State.FAILED and "ready_timeout" in r.inst.reason


def test_a_readiness_failure_does_not_park_for_good_after_start() -> None:
    """process-compose's bug: one readiness failure killed the service for good."""
    r = Run()
    r.spawn()
    r.ev(ReadyTimeout("web"))
    r.exit(0)
    r.ev(BackoffDone("web"))
    r.ev(DepsMet("web"))
    r.ev(Spawned("web", 101))
    r.ev(ReadyEv("web"))
    assert r.inst.state is State.RUNNING


def test_operator_stop_during_a_failing_stop_wins() -> None:
    r = Run()
    r.spawn()
    r.ev(ReadyTimeout("web"))
    r.ev(Stop("web"))
    r.exit(0)
    assert r.inst.state is State.STOPPED and r.inst.failing == ""


def test_exit_while_never_ready_is_a_failed_start() -> None:
    r = Run()
    r.spawn()
    out = r.exit(1)
    assert CancelTimer(READY_TIMER) in out
    assert r.inst.state is State.BACKOFF and len(r.inst.failed_starts) == 1


def test_late_ready_timeout_is_ignored() -> None:
    r = Run()
    r.spawn()
    r.ev(ReadyEv("web"))
    assert r.ev(ReadyTimeout("web")) == [] and r.inst.state is State.RUNNING


def test_fail_from_running_goes_through_stop_then_restart_policy() -> None:
    r = Run(ready=Ready(), health=Health(http="http://h:1/"))
    r.spawn()
    r.clock.advance(120.0)          # a long healthy run: backoff starts from the bottom again
    r.inst.consecutive = 4
    out = r.ev(Fail("web", FailReason.HEALTH, "web: 3 consecutive failures"))
    assert r.inst.state is State.STOPPING and r.inst.reason == "health"
    failing = next(e for e in out if isinstance(e, Publish) and e.kind == "failing")
    assert failing.data == {"state": "stopping", "reason": "health"}
    out = r.exit(None, "SIGTERM")
    assert r.inst.state is State.BACKOFF
    assert [e.at - r.clock.now() for e in out if isinstance(e, ArmTimer)] == [pytest.approx(0.1)]
    assert len(r.inst.failed_starts) == 0        # it had been ready: not a failed start


def test_fail_with_restart_never_ends_exited() -> None:
    r = Run(ready=Ready(), restart="never")
    r.spawn()
    r.ev(Fail("web", FailReason.MEMORY))
    r.exit(0)
    assert r.inst.state is State.EXITED and not r.inst.completed


def test_fail_when_not_running_is_ignored() -> None:
    r = Run()
    assert r.ev(Fail("web", FailReason.HEALTH)) == []
    r.spawn()
    r.ev(Stop("web"))
    assert r.ev(Fail("web", FailReason.HEALTH)) == [] and r.inst.failing == ""


def test_health_records_and_publishes_changes_only() -> None:
    r = Run(ready=Ready())
    r.spawn()
    assert kinds(r.ev(HealthChanged("web", True))) == ["health"]
    assert r.ev(HealthChanged("web", True)) == []
    assert r.inst.healthy is True
    r.ev(HealthChanged("web", False, FailReason.WATCHDOG))
    assert r.inst.healthy is False and r.inst.state is State.RUNNING   # recording alone never restarts


def test_spawn_resets_health_and_status() -> None:
    r = Run(ready=Ready())
    r.spawn()
    r.inst.healthy, r.inst.status = False, "old"
    r.exit(1)
    r.ev(BackoffDone("web"))
    r.ev(DepsMet("web"))
    r.ev(Spawned("web", 5))
    assert r.inst.healthy is None and r.inst.status == ""


def test_reloading_then_ready() -> None:
    r = Run()
    r.spawn()
    r.ev(ReadyEv("web"))
    r.ev(Reloading("web"))
    assert r.inst.state is State.RELOADING
    r.ev(ReadyEv("web"))
    assert r.inst.state is State.RUNNING and r.inst.reason == "reloaded"


def test_exit_while_reloading_counts_as_a_ready_run() -> None:
    r = Run()
    r.spawn()
    r.ev(ReadyEv("web"))
    r.ev(Reloading("web"))
    r.exit(1)
    assert r.inst.state is State.BACKOFF and len(r.inst.failed_starts) == 0


def test_mainpid_moves_the_main_process() -> None:
    r = Run()
    r.spawn(pid=100)
    out = r.ev(MainPid("web", 123))
    assert r.inst.pid == 123 and kinds(out) == ["mainpid"]


def test_extend_pushes_the_ready_deadline_never_shortens_it() -> None:
    r = Run()
    r.spawn()
    r.clock.advance(4.0)
    assert r.ev(Extend("web", 0.5)) == []            # 4.5 < 5: no change
    out = r.ev(Extend("web", 10.0))
    assert ArmTimer(READY_TIMER, 1014.0) in out and r.inst.timers[TimerKind.READY] == 1014.0


def test_extend_pushes_the_stop_deadline() -> None:
    r = Run(ready=Ready())
    r.spawn()
    r.ev(Stop("web"))
    out = r.ev(Extend("web", 30.0))
    assert ArmTimer(TimerKey(TimerKind.STOP, "web"), 1030.0) in out


def test_oom_exit_is_reported_and_is_a_failure() -> None:
    r = Run(ready=Ready(), restart="on-failure")
    r.spawn()
    out = r.exit(None, "SIGKILL", "oom")
    exit_ev = next(e for e in out if isinstance(e, Publish) and e.kind == "exit")
    assert exit_ev.data["reason"] == "oom" and "oom" in exit_ev.message
    assert r.inst.state is State.BACKOFF and "oom" in r.inst.reason


def test_a_reasoned_exit_with_code_0_is_not_a_success() -> None:
    r = Run(ready=Ready(), restart="on-failure")
    r.spawn()
    r.exit(0, reason="oom")
    assert r.inst.state is State.BACKOFF


def test_limits_default_to_none() -> None:
    assert dataclasses.asdict(Limits())["memory"] is None
