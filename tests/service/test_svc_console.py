"""Console mode and the ordered shutdown, in real processes with real signals."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable

from svc_harness import PROGRAMS, Child, NotifySocket, child_env

PROG = PROGRAMS / "svcprog.py"


def test_sigint_stops_gracefully(spawn: Callable[..., Child]) -> None:
    child = spawn(PROG, child_env(STEPS="db:ok:5s,http:aok:5s"))
    child.wait_line("READY")
    assert child.stop(signal.SIGINT) == 0
    out = child.output()
    assert "(mode: console)" in out
    assert "press Ctrl+C again to exit without waiting" in out
    assert "main saw stopping: SIGINT" in out
    assert out.index("step http end") < out.index("step db start") < out.index("step db end")


def test_second_sigint_exits_at_once_without_waiting(spawn: Callable[..., Child]) -> None:
    child = spawn(PROG, child_env(STEPS="db:ok:5s,hold:hang:60s"))
    child.wait_line("READY")
    child.signal(signal.SIGINT)
    child.wait_line("step hold start")  # the stop is now stuck in a 60 s step
    assert child.stop(signal.SIGINT) == 130
    out = child.output()
    assert "second interrupt: exiting now, without waiting (1 shutdown steps not run)" in out
    assert "step db start" not in out


def test_steps_run_in_reverse_and_a_failing_or_overrunning_step_is_logged_and_skipped(
    spawn: Callable[..., Child],
) -> None:
    child = spawn(PROG, child_env(STEPS="a:ok:5s,b:hang:300ms,c:raise:5s,d:aok:5s"))
    child.wait_line("READY")
    child.signal(signal.SIGTERM)
    assert child.finish() == 1  # a step failed: the stop was not clean
    out = child.output()
    starts = [line.split()[1] for line in child.lines if line.startswith("step ") and line.endswith("start")]
    assert starts == ["d", "c", "b", "a"]
    assert "shutdown step c failed; continuing" in out and "RuntimeError: c exploded" in out
    assert "shutdown step b overran its 0.3s deadline; left behind, continuing" in out
    assert "step a end" in out and "step b end" not in out
    assert "stopped (exit code 1)" in out


def test_the_overall_deadline_comes_from_the_managers_stop_timeout(
    notify: NotifySocket, spawn: Callable[..., Child]
) -> None:
    # herder says stop_timeout = 1s: the 5s step gets what is left of 0.9s (1s less a 10% margin) when it
    # starts (0.9s, less the moment main took to return: more on a loaded machine), the rest is skipped.
    env = child_env(
        NOTIFY_SOCKET=str(notify.path), HERDER_INSTANCE="steps.0", HERDER_SERVICE="steps",
        HERDER_STOP_TIMEOUT_USEC="1000000", STEPS="last:ok:5s,slow:hang:5s",
    )
    child = spawn(PROG, env)
    assert notify.recv() == "READY=1"
    child.signal(signal.SIGTERM)
    assert notify.recv() == "STOPPING=1"
    assert child.finish() == 1
    out = child.output()
    # the step's budget is what is left of the 0.9s when it starts: 0.9s on an idle machine, a
    # little less when the machine is loaded between the SIGTERM and the step (never more)
    m = re.search(r"shutdown step slow overran its ([0-9.]+)s deadline \(capped by the overall stop deadline\)", out)
    assert m is not None and 0 < float(m.group(1)) <= 0.9, out
    assert "shutdown step last skipped: the overall stop deadline has passed" in out
    assert "step last start" not in out


def test_main_returning_ends_the_service_with_its_exit_code(spawn: Callable[..., Child]) -> None:
    child = spawn(PROG, child_env(MAIN_EXIT="3", STEPS="db:ok:5s"))
    assert child.finish() == 3
    out = child.output()
    assert "stopping svcprog: main returned (exit code 3)" in out
    assert "step db end" in out


def test_sighup_without_on_reload_is_ignored_with_a_log_line(spawn: Callable[..., Child]) -> None:
    child = spawn(PROG, child_env())
    child.wait_line("READY")
    child.signal(signal.SIGHUP)
    child.wait_line("SIGHUP received; no on_reload handler, ignoring it")
    assert child.stop(signal.SIGTERM) == 0


def test_embedded_run_restores_handlers_and_redelivers_sigterm(spawn: Callable[..., Child]) -> None:
    child = spawn(PROGRAMS / "embed.py", child_env(), "term")
    child.wait_line("READY")
    assert child.stop(signal.SIGTERM) == 0
    out = child.output()
    assert "run returned 0" in out
    assert "restored True" in out
    assert "outer handler saw ['outer SIGTERM']" in out


def test_embedded_run_redelivers_sigint_as_keyboardinterrupt(spawn: Callable[..., Child]) -> None:
    child = spawn(PROGRAMS / "embed.py", child_env(), "int")
    child.wait_line("READY")
    assert child.stop(signal.SIGINT) == 0
    out = child.output()
    assert "KeyboardInterrupt re-delivered" in out
    assert "restored True" in out
