"""The state machine, without processes: every (state, event) pair, restart policy,
backoff and start limits on a fake clock."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from herder.config.model import Backoff, ServiceSpec, StartLimit
from herder.core.docs import render
from herder.core.machine import (
    ALIVE, TABLE, ArmTimer, CancelTimer, Ev, Instance, KillLeftovers, Machine, Publish, Signal, Spawn, State,
)
from herder.errors import TransitionError
from herder.testing import FakeClock

SPEC = ServiceSpec(command=("prog",))


def make(state: State, spec: ServiceSpec = SPEC, **kw: object) -> Instance:
    inst = Instance("web", "web", None, spec, state=state, **kw)  # type: ignore[arg-type]
    if state in ALIVE:
        inst.pid, inst.started_at = 4242, 0.0
    if state is State.STOPPING:
        inst.want_up = False
    return inst


DATA = {Ev.SPAWNED: {"pid": 7}, Ev.SPAWN_FAILED: {"error": "nope"}, Ev.EXIT: {"code": 1, "signal": None},
        Ev.FAIL: {"reason": "health"}, Ev.HEALTH: {"healthy": False}, Ev.MAINPID: {"pid": 9}, Ev.EXTEND: {"seconds": 1.0}}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("ev", list(Ev))
def test_every_pair_is_in_the_table_or_impossible(state: State, ev: Ev) -> None:
    inst = make(state)
    m = Machine()
    tr = TABLE.get((state, ev))
    if tr is None:
        with pytest.raises(TransitionError, match=f"{ev.value} is impossible in state {state.value}"):
            m.handle(inst, ev, 10.0, **DATA.get(ev, {}))
        return
    m.handle(inst, ev, 10.0, **DATA.get(ev, {}))
    assert inst.state in tr.targets, f"{state}+{ev} went to {inst.state}, table says {tr.targets}"


def test_states_doc_is_generated_from_the_table() -> None:
    doc = Path(__file__).parents[2] / "docs" / "states.md"
    assert doc.read_text() == render(), "docs/states.md is stale: run `make docs`"


def effects_of(effects: list, kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in effects if isinstance(e, kind)]


def start(m: Machine, inst: Instance, now: float, pid: int = 100) -> None:
    m.handle(inst, Ev.START, now)
    assert effects_of(m.handle(inst, Ev.DEPS_MET, now), Spawn)
    m.handle(inst, Ev.SPAWNED, now, pid=pid)
    assert inst.state is State.RUNNING


def test_on_failure_restarts_after_a_crash_and_not_after_success() -> None:
    clock, m = FakeClock(), Machine()
    inst = make(State.STOPPED)
    start(m, inst, clock.now())
    clock.advance(5)
    eff = m.handle(inst, Ev.EXIT, clock.now(), code=3, signal=None)
    assert inst.state is State.BACKOFF
    assert effects_of(eff, ArmTimer) == [ArmTimer("backoff", 0.1)]
    assert effects_of(eff, KillLeftovers)
    m.handle(inst, Ev.BACKOFF_DONE, clock.now())
    assert inst.state is State.WAITING and inst.restarts == 1
    m.handle(inst, Ev.DEPS_MET, clock.now())
    m.handle(inst, Ev.SPAWNED, clock.now(), pid=101)
    clock.advance(5)
    m.handle(inst, Ev.EXIT, clock.now(), code=0, signal=None)
    assert inst.state is State.EXITED and inst.completed


def test_signal_death_is_a_failure_even_with_code_zero_listed() -> None:
    m, inst = Machine(), make(State.STOPPED)
    start(m, inst, 0.0)
    m.handle(inst, Ev.EXIT, 5.0, code=None, signal="SIGSEGV")
    assert inst.state is State.BACKOFF and not inst.completed


def test_always_restarts_on_success_and_never_does_not() -> None:
    m = Machine()
    always = make(State.STOPPED, dataclasses.replace(SPEC, restart="always"))
    start(m, always, 0.0)
    m.handle(always, Ev.EXIT, 5.0, code=0, signal=None)
    assert always.state is State.BACKOFF
    never = make(State.STOPPED, dataclasses.replace(SPEC, restart="never"))
    start(m, never, 0.0)
    m.handle(never, Ev.EXIT, 5.0, code=2, signal=None)
    assert never.state is State.EXITED and not never.completed


def test_backoff_grows_then_resets_after_a_long_run() -> None:
    spec = dataclasses.replace(SPEC, backoff=Backoff(initial=1.0, factor=2.0, max=5.0, jitter=0.0, reset_after=60.0),
                               start_limit=StartLimit(burst=100, interval=60.0))
    clock, m, inst = FakeClock(), Machine(), make(State.STOPPED, spec)
    start(m, inst, clock.now())
    delays = []
    for _ in range(5):
        clock.advance(2)
        eff = m.handle(inst, Ev.EXIT, clock.now(), code=1, signal=None)
        delays.append(effects_of(eff, ArmTimer)[0].delay)
        clock.advance(delays[-1])
        m.handle(inst, Ev.BACKOFF_DONE, clock.now())
        m.handle(inst, Ev.DEPS_MET, clock.now())
        m.handle(inst, Ev.SPAWNED, clock.now(), pid=200)
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    clock.advance(61)  # a long healthy run resets n
    eff = m.handle(inst, Ev.EXIT, clock.now(), code=1, signal=None)
    assert effects_of(eff, ArmTimer)[0].delay == 1.0


def test_start_limit_parks_in_failed_with_an_event_until_start() -> None:
    spec = dataclasses.replace(SPEC, min_uptime=1.0, start_limit=StartLimit(burst=3, interval=10.0),
                               backoff=Backoff(initial=0.0))
    clock, m, inst = FakeClock(), Machine(), make(State.STOPPED, spec)
    start(m, inst, clock.now())
    for i in range(3):
        clock.advance(0.1)  # shorter than min_uptime: a failed start
        m.handle(inst, Ev.EXIT, clock.now(), code=1, signal=None)
        assert inst.state is State.BACKOFF, i
        m.handle(inst, Ev.BACKOFF_DONE, clock.now())
        m.handle(inst, Ev.DEPS_MET, clock.now())
        m.handle(inst, Ev.SPAWNED, clock.now(), pid=300 + i)
    clock.advance(0.1)
    eff = m.handle(inst, Ev.EXIT, clock.now(), code=1, signal=None)
    assert inst.state is State.FAILED
    failed = [e for e in effects_of(eff, Publish) if e.kind == "failed"]
    assert failed and "4 failed starts within 10s" in failed[0].message and "herder start web" in failed[0].message
    m.handle(inst, Ev.START, clock.now())
    assert inst.state is State.WAITING and not inst.failed_starts


def test_failed_starts_outside_the_interval_do_not_count() -> None:
    spec = dataclasses.replace(SPEC, start_limit=StartLimit(burst=1, interval=10.0), backoff=Backoff(initial=0.0))
    clock, m, inst = FakeClock(), Machine(), make(State.STOPPED, spec)
    start(m, inst, clock.now())
    for _ in range(5):
        clock.advance(0.5)
        m.handle(inst, Ev.EXIT, clock.now(), code=1, signal=None)
        assert inst.state is State.BACKOFF
        clock.advance(11)
        m.handle(inst, Ev.BACKOFF_DONE, clock.now())
        m.handle(inst, Ev.DEPS_MET, clock.now())
        m.handle(inst, Ev.SPAWNED, clock.now(), pid=1)


def test_spawn_failure_is_a_failed_start_with_the_os_error() -> None:
    spec = dataclasses.replace(SPEC, start_limit=StartLimit(burst=1, interval=60.0))
    m, inst = Machine(), make(State.STOPPED, spec)
    m.handle(inst, Ev.START, 0.0)
    m.handle(inst, Ev.DEPS_MET, 0.0)
    eff = m.handle(inst, Ev.SPAWN_FAILED, 0.0, error="/nope: No such file or directory")
    assert inst.state is State.BACKOFF
    assert any("No such file" in p.message for p in effects_of(eff, Publish))
    m.handle(inst, Ev.BACKOFF_DONE, 1.0)
    m.handle(inst, Ev.DEPS_MET, 1.0)
    m.handle(inst, Ev.SPAWN_FAILED, 1.0, error="/nope: No such file or directory")
    assert inst.state is State.FAILED


def test_stop_sends_stop_signal_to_the_group_then_sigkill_to_the_tree() -> None:
    m, inst = Machine(), make(State.STOPPED, dataclasses.replace(SPEC, stop_signal="SIGINT", stop_timeout=3.0))
    start(m, inst, 0.0)
    eff = m.handle(inst, Ev.STOP, 1.0)
    assert inst.state is State.STOPPING and not inst.want_up
    assert effects_of(eff, Signal) == [Signal("SIGINT", "group")] and ArmTimer("stop", 3.0) in eff
    eff = m.handle(inst, Ev.STOP_TIMEOUT, 4.0)
    assert effects_of(eff, Signal) == [Signal("SIGKILL", "tree")]
    assert "ignored SIGINT for 3s" in effects_of(eff, Publish)[0].message
    eff = m.handle(inst, Ev.EXIT, 4.1, code=None, signal="SIGKILL")
    assert inst.state is State.STOPPED and CancelTimer("stop") in eff


def test_restart_stops_then_starts_and_kill_main_only_signals_main() -> None:
    m, inst = Machine(), make(State.STOPPED, dataclasses.replace(SPEC, kill="main"))
    start(m, inst, 0.0)
    eff = m.handle(inst, Ev.RESTART, 1.0)
    assert effects_of(eff, Signal) == [Signal("SIGTERM", "main")]
    eff = m.handle(inst, Ev.EXIT, 1.5, code=0, signal=None)
    assert inst.state is State.WAITING and inst.want_up and not effects_of(eff, KillLeftovers)


def test_a_stop_during_backoff_cancels_the_restart() -> None:
    m, inst = Machine(), make(State.STOPPED)
    start(m, inst, 0.0)
    m.handle(inst, Ev.EXIT, 5.0, code=1, signal=None)
    eff = m.handle(inst, Ev.STOP, 5.0)
    assert inst.state is State.STOPPED and CancelTimer("backoff") in eff


def test_jitter_comes_from_the_injected_source() -> None:
    spec = dataclasses.replace(SPEC, backoff=Backoff(initial=1.0, jitter=0.5))
    for spread, expected in ((-1.0, 0.5), (0.0, 1.0), (1.0, 1.5)):
        m, inst = Machine(spread=lambda s=spread: s), make(State.STOPPED, spec)
        start(m, inst, 0.0)
        eff = m.handle(inst, Ev.EXIT, 5.0, code=1, signal=None)
        assert effects_of(eff, ArmTimer)[0].delay == pytest.approx(expected)


def test_exit_zero_before_ready_is_a_failed_start_not_completed() -> None:
    m, inst = Machine(), make(State.STOPPED)
    m.handle(inst, Ev.START, 0.0)
    m.handle(inst, Ev.DEPS_MET, 0.0)
    m.handle(inst, Ev.SPAWNED, 0.0, pid=9, await_ready=True)
    assert inst.state is State.STARTING
    eff = m.handle(inst, Ev.EXIT, 0.0, code=0, signal=None)  # a clock at 0.0 must not confuse the run time
    assert inst.state is State.BACKOFF and not inst.completed
    assert any("exit 0 before it was ready" in p.message for p in effects_of(eff, Publish))
    assert inst.failed_starts
