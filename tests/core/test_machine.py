"""The instance table, without processes: every (state, event) pair, the declared targets,
restart policy, backoff and start limits on a fake clock."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import pytest

from herder.config.model import Backoff, ServiceSpec, StartLimit
from herder.core import machine
from herder.core.docs import render
from herder.core.effects import (
    ArmTimer,
    CancelTimer,
    Effect,
    HookKind,
    Kill,
    KillLeftovers,
    Publish,
    Scope,
    Signal,
    Spawn,
    TimerKey,
    TimerKind,
)
from herder.core.events import (
    INSTANCE_EVENTS,
    BackoffDone,
    DepsMet,
    Exited,
    Extend,
    Fail,
    FailReason,
    Found,
    HealthChanged,
    HookDone,
    MainPid,
    OneInstance,
    Restart,
    Spawned,
    SpawnFailed,
    Start,
    Stop,
    StopTimeout,
)
from herder.core.instance import ALIVE, Instance, State
from herder.core.machine import TABLE, Transition, handle
from herder.core.out import Out
from herder.errors import TransitionError
from herder.testing import FakeClock

SPEC = ServiceSpec(command=("prog",))


def make(state: State, spec: ServiceSpec = SPEC) -> Instance:
    inst = Instance("web", "web", None, spec, state=state)
    if state in ALIVE:
        inst.pid, inst.started_at = 4242, 0.0
    return inst


def event(cls: type[OneInstance]) -> OneInstance:
    extra: dict[type[OneInstance], OneInstance] = {
        Spawned: Spawned("web", 7), SpawnFailed: SpawnFailed("web", "nope"), Exited: Exited("web", 4242, 1),
        Fail: Fail("web", FailReason.HEALTH), HealthChanged: HealthChanged("web", False), MainPid: MainPid("web", 9),
        Extend: Extend("web", 1.0), Found: Found("web", 7),
        HookDone: HookDone("web", HookKind.PRE_START, 0, 0)}
    return extra.get(cls) or cls("web")


def run(inst: Instance, ev: OneInstance, now: float, spread: float = 0.0) -> list[Effect]:
    out = Out(lambda: spread)
    handle(out, inst, ev, now)
    return out.effects


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("cls", INSTANCE_EVENTS)
def test_every_pair_is_in_the_table_or_impossible(state: State, cls: type[OneInstance]) -> None:
    inst = make(state)
    row = TABLE.get((state, cls))
    if row is None:
        with pytest.raises(TransitionError, match=f"{cls.label} is impossible in state {state.value}"):
            run(inst, event(cls), 10.0)
        return
    run(inst, event(cls), 10.0)
    assert inst.state in row.targets, f"{state}+{cls.label} went to {inst.state}, table says {row.targets}"


@pytest.mark.parametrize("want_up", [False, True])
@pytest.mark.parametrize("failing", ["", "health", "ready_timeout"])
@pytest.mark.parametrize("restart", ["always", "on-failure", "never"])
def test_stopping_exit_reaches_every_declared_target_and_no_other(want_up: bool, failing: str, restart: str) -> None:
    """The bug the exhaustive walk could not see: (stopping, exit) of a failing instance
    goes through the restart policy (backoff, failed, exited), not only stopped/waiting."""
    spec = dataclasses.replace(SPEC, restart=restart, start_limit=StartLimit(burst=1, interval=60.0))
    row = TABLE[(State.STOPPING, Exited)]
    seen = set()
    for prior_failures in (0, 1):
        inst = make(State.STOPPING, spec)
        inst.want_up, inst.failing = want_up, failing
        inst.failed_starts.extend([1.0] * prior_failures)
        run(inst, Exited("web", 4242, None, "SIGTERM"), 5.0)
        assert inst.state in row.targets
        seen.add(inst.state)
    if not want_up:
        assert seen == {State.STOPPED}
    elif not failing:
        assert seen == {State.WAITING}
    elif restart == "never":
        assert seen <= {State.EXITED, State.FAILED}
    else:
        assert State.BACKOFF in seen


def test_a_rule_ending_outside_its_targets_raises_at_once() -> None:
    def wrong(o: Out, inst: Instance, ev: Stop, now: float) -> None:
        inst.state = State.FAILED

    key = (State.RUNNING, Stop)
    saved = TABLE[key]
    TABLE[key] = Transition(Stop, wrong, frozenset({State.STOPPING}), "a broken rule")
    try:
        with pytest.raises(TransitionError, match="running \\+ stop ended in failed, outside the row's targets"):
            run(make(State.RUNNING), Stop("web"), 1.0)
    finally:
        TABLE[key] = saved


def test_impossible_pairs_are_listed() -> None:
    assert (State.WAITING, Exited) in machine.IMPOSSIBLE and (State.RUNNING, Stop) not in machine.IMPOSSIBLE


def test_states_doc_is_generated_from_the_table() -> None:
    doc = Path(__file__).parents[2] / "docs" / "states.md"
    assert doc.read_text() == render(), "docs/states.md is stale: run `make docs`"


def of(effects: list[Effect], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in effects if isinstance(e, kind)]


def start(inst: Instance, now: float, pid: int = 100) -> None:
    run(inst, Start("web"), now)
    assert of(run(inst, DepsMet("web"), now), Spawn)
    run(inst, Spawned("web", pid), now)
    assert inst.state is State.RUNNING


def exit_(inst: Instance, now: float, code: int | None = 1, sig: str | None = None,
          spread: float = 0.0) -> list[Effect]:
    return run(inst, Exited("web", inst.pid, code, sig), now, spread)


def test_on_failure_restarts_after_a_crash_and_not_after_success() -> None:
    clock, inst = FakeClock(), make(State.STOPPED)
    start(inst, clock.now())
    clock.advance(5)
    eff = exit_(inst, clock.now(), 3)
    assert inst.state is State.BACKOFF
    assert of(eff, ArmTimer) == [ArmTimer(TimerKey(TimerKind.BACKOFF, "web"), clock.now() + 0.1)]
    assert of(eff, KillLeftovers)
    run(inst, BackoffDone("web"), clock.now())
    assert inst.state is State.WAITING and inst.restarts == 1
    run(inst, DepsMet("web"), clock.now())
    run(inst, Spawned("web", 101), clock.now())
    clock.advance(5)
    exit_(inst, clock.now(), 0)
    assert inst.state is State.EXITED and inst.completed


def test_signal_death_is_a_failure_even_with_code_zero_listed() -> None:
    inst = make(State.STOPPED)
    start(inst, 0.0)
    exit_(inst, 5.0, None, "SIGSEGV")
    assert inst.state is State.BACKOFF and not inst.completed


def test_always_restarts_on_success_and_never_does_not() -> None:
    always = make(State.STOPPED, dataclasses.replace(SPEC, restart="always"))
    start(always, 0.0)
    exit_(always, 5.0, 0)
    assert always.state is State.BACKOFF
    never = make(State.STOPPED, dataclasses.replace(SPEC, restart="never"))
    start(never, 0.0)
    exit_(never, 5.0, 2)
    assert never.state is State.EXITED and not never.completed


def test_backoff_grows_then_resets_after_a_long_run() -> None:
    spec = dataclasses.replace(SPEC, backoff=Backoff(initial=1.0, factor=2.0, max=5.0, jitter=0.0, reset_after=60.0),
                               start_limit=StartLimit(burst=100, interval=60.0))
    clock, inst = FakeClock(), make(State.STOPPED, spec)
    start(inst, clock.now())
    delays = []
    for _ in range(5):
        clock.advance(2)
        eff = exit_(inst, clock.now())
        delays.append(of(eff, ArmTimer)[0].at - clock.now())
        clock.advance(delays[-1])
        run(inst, BackoffDone("web"), clock.now())
        run(inst, DepsMet("web"), clock.now())
        run(inst, Spawned("web", 200), clock.now())
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    clock.advance(61)  # a long healthy run resets n
    eff = exit_(inst, clock.now())
    assert of(eff, ArmTimer)[0].at - clock.now() == 1.0


def test_start_limit_parks_in_failed_with_an_event_until_start() -> None:
    spec = dataclasses.replace(SPEC, min_uptime=1.0, start_limit=StartLimit(burst=3, interval=10.0),
                               backoff=Backoff(initial=0.0))
    clock, inst = FakeClock(), make(State.STOPPED, spec)
    start(inst, clock.now())
    for i in range(3):
        clock.advance(0.1)  # shorter than min_uptime: a failed start
        exit_(inst, clock.now())
        assert inst.state is State.BACKOFF, i
        run(inst, BackoffDone("web"), clock.now())
        run(inst, DepsMet("web"), clock.now())
        run(inst, Spawned("web", 300 + i), clock.now())
    clock.advance(0.1)
    eff = exit_(inst, clock.now())
    assert inst.state is State.FAILED
    failed = [e for e in of(eff, Publish) if e.kind == "failed"]
    assert failed and "4 failed starts within 10s" in failed[0].message and "herder start web" in failed[0].message
    run(inst, Start("web"), clock.now())
    assert inst.state is State.WAITING and not inst.failed_starts


def test_failed_starts_outside_the_interval_do_not_count() -> None:
    spec = dataclasses.replace(SPEC, start_limit=StartLimit(burst=1, interval=10.0), backoff=Backoff(initial=0.0))
    clock, inst = FakeClock(), make(State.STOPPED, spec)
    start(inst, clock.now())
    for _ in range(5):
        clock.advance(0.5)
        exit_(inst, clock.now())
        assert inst.state is State.BACKOFF
        clock.advance(11)
        run(inst, BackoffDone("web"), clock.now())
        run(inst, DepsMet("web"), clock.now())
        run(inst, Spawned("web", 1), clock.now())


def test_spawn_failure_is_a_failed_start_with_the_os_error() -> None:
    spec = dataclasses.replace(SPEC, start_limit=StartLimit(burst=1, interval=60.0))
    inst = make(State.STOPPED, spec)
    run(inst, Start("web"), 0.0)
    run(inst, DepsMet("web"), 0.0)
    eff = run(inst, SpawnFailed("web", "/nope: No such file or directory"), 0.0)
    assert inst.state is State.BACKOFF
    assert any("No such file" in p.message for p in of(eff, Publish))
    run(inst, BackoffDone("web"), 1.0)
    run(inst, DepsMet("web"), 1.0)
    run(inst, SpawnFailed("web", "/nope: No such file or directory"), 1.0)
    assert inst.state is State.FAILED


def test_stop_sends_stop_signal_to_the_group_then_sigkill_to_the_tree() -> None:
    inst = make(State.STOPPED, dataclasses.replace(SPEC, stop_signal="SIGINT", stop_timeout=3.0))
    start(inst, 0.0)
    eff = run(inst, Stop("web"), 1.0)
    assert inst.state is State.STOPPING and not inst.want_up
    assert of(eff, Signal) == [Signal("web", signal.SIGINT, Scope.GROUP)]
    assert ArmTimer(TimerKey(TimerKind.STOP, "web"), 4.0) in eff
    eff = run(inst, StopTimeout("web"), 4.0)
    assert of(eff, Kill) == [Kill("web", Scope.TREE)]
    assert "ignored SIGINT for 3s" in of(eff, Publish)[0].message
    eff = exit_(inst, 4.1, None, "SIGKILL")
    assert inst.state is State.STOPPED and CancelTimer(TimerKey(TimerKind.STOP, "web")) in eff


def test_restart_stops_then_starts_and_kill_main_only_signals_main() -> None:
    inst = make(State.STOPPED, dataclasses.replace(SPEC, kill="main"))
    start(inst, 0.0)
    eff = run(inst, Restart("web"), 1.0)
    assert of(eff, Signal) == [Signal("web", signal.SIGTERM, Scope.MAIN)]
    eff = exit_(inst, 1.5, 0)
    assert inst.state is State.WAITING and inst.want_up and not of(eff, KillLeftovers)


def test_a_stop_during_backoff_cancels_the_restart() -> None:
    inst = make(State.STOPPED)
    start(inst, 0.0)
    exit_(inst, 5.0)
    eff = run(inst, Stop("web"), 5.0)
    assert inst.state is State.STOPPED and CancelTimer(TimerKey(TimerKind.BACKOFF, "web")) in eff


def test_jitter_comes_from_the_injected_source() -> None:
    spec = dataclasses.replace(SPEC, backoff=Backoff(initial=1.0, jitter=0.5))
    for spread, expected in ((-1.0, 0.5), (0.0, 1.0), (1.0, 1.5)):
        inst = make(State.STOPPED, spec)
        start(inst, 0.0)
        eff = exit_(inst, 5.0, spread=spread)
        assert of(eff, ArmTimer)[0].at - 5.0 == pytest.approx(expected)


def test_exit_zero_before_ready_is_a_failed_start_not_completed() -> None:
    inst = make(State.STOPPED, dataclasses.replace(SPEC, ready=dataclasses.replace(SPEC.ready, notify=True)))
    run(inst, Start("web"), 0.0)
    run(inst, DepsMet("web"), 0.0)
    run(inst, Spawned("web", 9), 0.0)
    assert inst.state is State.STARTING
    eff = exit_(inst, 0.0, 0)  # a clock at 0.0 must not confuse the run time
    assert inst.state is State.BACKOFF and not inst.completed
    assert any("exit 0 before it was ready" in p.message for p in of(eff, Publish))
    assert inst.failed_starts


def test_published_events_carry_the_state_the_rule_left() -> None:
    inst = make(State.STOPPED)
    start(inst, 0.0)
    eff = exit_(inst, 5.0, 3)
    exit_ev = next(p for p in of(eff, Publish) if p.kind == "exit")
    assert exit_ev.data["state"] == "backoff" and exit_ev.data["code"] == 3
