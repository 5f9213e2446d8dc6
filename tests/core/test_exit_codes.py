"""restart_prevent_exit_codes and restart_force_exit_codes in the restart policy, as a table:
(restart policy, how the process ended, the two lists) -> the state it ends in."""

from __future__ import annotations

import dataclasses

import pytest

from herder.config.model import Backoff, ServiceSpec, StartLimit
from herder.core.events import Up
from herder.testing.sim import Sim

BASE = ServiceSpec(command=("p",), min_uptime=1.0, backoff=Backoff(initial=1.0, jitter=0.0),
                   start_limit=StartLimit(burst=5, interval=60))
PREVENT = (78, "SIGABRT")
FORCE = (0, 75)

# restart, exit code, signal, expected state (with PREVENT and FORCE configured)
CASES = [
    ("always", 78, None, "exited"),         # prevent wins over `always`
    ("always", None, "SIGABRT", "exited"),
    ("on-failure", 78, None, "exited"),
    ("never", 78, None, "exited"),
    ("never", 75, None, "backoff"),          # force wins over `never`
    ("never", 0, None, "backoff"),
    ("on-failure", 0, None, "backoff"),      # a success restarted (force)
    ("on-failure", 75, None, "backoff"),
    ("on-failure", 1, None, "backoff"),      # neither list: the policy
    ("never", 1, None, "exited"),
    ("always", 1, None, "backoff"),
    ("on-failure", None, "SIGKILL", "backoff"),
    ("never", None, "SIGTERM", "exited"),
]


@pytest.mark.parametrize(("restart", "code", "sig", "expect"), CASES)
def test_exit_codes_override_the_restart_policy(restart: str, code: int | None, sig: str | None, expect: str) -> None:
    sim = Sim({"p": dataclasses.replace(BASE, restart=restart, restart_prevent_exit_codes=PREVENT,
                                        restart_force_exit_codes=FORCE)})
    sim.post(Up())
    sim.advance(5)
    sim.exit("p", code=code, signal=sig)
    assert sim.state("p") == expect


def test_a_prevented_restart_is_an_event_with_the_reason() -> None:
    sim = Sim({"p": dataclasses.replace(BASE, restart="always", restart_prevent_exit_codes=(78,))})
    sim.post(Up())
    sim.advance(5)
    sim.exit("p", code=78)
    ev = next(e for e in sim.events if e.kind == "restart_prevented")
    assert "exit 78 is in restart_prevent_exit_codes" in ev.message and ev.data["code"] == 78
    assert sim.inst("p").reason == "exit 78; restart_prevent_exit_codes"
    assert not sim.inst("p").completed
    sim.run_timers(300)
    assert sim.state("p") == "exited"           # stays: nothing brings it back but an operator


def test_prevent_applies_to_a_failed_start_too_and_success_codes_still_mark_completion() -> None:
    sim = Sim({"p": dataclasses.replace(BASE, restart="always", restart_prevent_exit_codes=(0,))})
    sim.post(Up())
    sim.advance(5)
    sim.exit("p", code=0)
    assert sim.state("p") == "exited" and sim.inst("p").completed


def test_forced_restarts_still_count_toward_the_start_limit() -> None:
    sim = Sim({"p": dataclasses.replace(BASE, restart="never", restart_force_exit_codes=(75,),
                                        start_limit=StartLimit(burst=2, interval=60))})
    sim.post(Up())
    for _ in range(3):
        sim.exit("p", code=75)              # quick exits: failed starts
        sim.run_timers(10)
    assert sim.state("p") == "failed"


def test_an_operator_stop_is_not_judged_by_the_exit_codes() -> None:
    from herder.core.events import Command, Verb

    sim = Sim({"p": dataclasses.replace(BASE, restart="always", restart_force_exit_codes=(0, "SIGTERM"))})
    sim.post(Up())
    sim.post(Command(Verb.STOP, ("p",)))
    assert sim.state("p") == "stopped"
