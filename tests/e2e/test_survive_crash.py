"""kill -9 of herder's keeper, and of both its processes, at the worst instants (issue 12),
proven with real processes: nothing runs that herder does not list, `down` leaves 0, and a
stop asked while the decision process cannot come up is still carried out, in order.

The keeper is the services' parent and holds their pipes; the decision process holds a
copy of every read end and of the state, and becomes the keeper when the keeper dies
(docs/supervisor.md, "What a kill -9 does"). These tests kill the keeper while it answers
a start of 200 spawns (the spawns in flight are the crash window: herder.runtime.adopt
looks for a process carrying the instance's cookie before it spawns again), while `down`
runs, and right after a decision process was killed and restarted (the new one has not
adopted anything yet: it takes over from what the keeper handed it, never from an empty
World).

Random instants come from a seeded generator (HERDER_SURVIVE_SEED replays a run; the seed
is printed); HERDER_SURVIVE_TRIALS raises the count.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil
from ctl_harness import Herd
from herdertest import alive, wait_until
from test_survive import (
    PRINTER,
    _all_running,
    _try,
    down_under_kill,
    herd_of_200,
    keeper_and_dp,
    kill_dp,
    marked,
    numbers,
    report,
    rng,
    services,
    up_in_background,
    who,
)

TRIALS = int(os.environ.get("HERDER_SURVIVE_TRIALS", "2"))


def kill_keeper(h: Herd) -> int:
    """kill -9 the process that holds the state_dir (the keeper); return once it is dead."""
    keeper = wait_until("a keeper", h.holder, timeout=60, interval=0.005)
    fd = os.pidfd_open(keeper)
    try:
        os.kill(keeper, signal.SIGKILL)
        assert select.select([fd], [], [], 30)[0], f"keeper {keeper} did not die"
    finally:
        os.close(fd)
    return keeper


def settled(h: Herd, n: int) -> dict[str, dict[str, Any]]:
    """All n instances running, and the supervisor past its take-over (a keeper runs a decision process)."""
    got: dict[str, dict[str, Any]] = wait_until(f"all {n} running", lambda: _all_running(h, n), timeout=90,
                                                interval=0.05)
    wait_until("a keeper with its decision process", lambda: _try(lambda: keeper_and_dp(h)), timeout=30,
               interval=0.02)
    return got


def test_kill_9_of_the_keeper_during_a_start_of_200_and_during_down_leaves_nothing_unlisted(
        herd: Callable[..., Herd]) -> None:
    h, quiet = herd_of_200(herd)
    rand = rng()
    for trial in range(TRIALS):
        starting = up_in_background(h)
        # the keeper holds the state_dir before the first spawn is sent: kill it at a random
        # instant of the start (before adoption, spawns in flight, answered, not yet stepped ...)
        wait_until("the keeper", h.holder, timeout=60, interval=0.002)
        time.sleep(rand.uniform(0.0, 0.8))     # before the first spawn, among them, after the last answer
        kill_keeper(h)
        _, err = starting.communicate(timeout=120)
        assert starting.returncode == 0, err        # the start goes on under the new keeper, and says so
        running = settled(h, 200)
        listed = sorted(x["pid"] for x in running.values())
        assert sorted(marked(f"sleep {quiet}")) == listed, f"trial {trial}: a process herder does not list"
        events = h.cli("events", "-n", "5000").stdout
        assert "the keeper died; this decision process" in events
        down_under_kill(h, kill_keeper, rand, f"sleep {quiet}", trial)    # kill -9 of the keeper during `down`


def test_kill_9_of_the_decision_process_then_of_the_keeper(herd: Callable[..., Herd]) -> None:
    """The keeper dies while a restarted decision process starts up (0.05-0.5 s into its
    life: during its handshake, before or after its adoption): the decision process takes
    over from what the keeper handed it, so every instance stays listed, none runs twice,
    and `down` stops them all."""
    tag = f"both{os.getpid()}x{random.randrange(10 ** 6)}"
    quiet = 60000 + random.randrange(30000)
    conf = "".join(f"[services.p{i}]\ncommand = {json.dumps(PRINTER.format(tag=f'{tag}.{i}'))}\n" for i in range(5))
    conf += "".join(f'[services.q{i}]\ncommand = ["sleep", "{quiet}"]\n' for i in range(5))
    h = herd(conf)
    assert h.up().returncode == 0
    before = {n: x["pid"] for n, x in services(h).items()}
    took = []
    for delay in (0.05, 0.15, 0.3, 0.5):
        dp, _ = kill_dp(h)
        wait_until("a new decision process", lambda: _try(lambda: keeper_and_dp(h)[1] != dp), timeout=30,  # noqa: B023
                   interval=0.002)
        time.sleep(delay)     # an instant of its start-up, not a synchronisation
        t0 = time.monotonic()
        kill_keeper(h)
        now = settled(h, 10)
        took.append(time.monotonic() - t0)
        assert {n: now[n]["pid"] for n in now if n.startswith("q")} == \
            {n: p for n, p in before.items() if n.startswith("q")}, f"after the keeper's kill at +{delay}s"
        assert sorted(marked(f"sleep {quiet}")) == sorted(now[f"q{i}"]["pid"] for i in range(5))
        for i in range(5):
            copies = marked(f'"{tag}.{i} $i"')
            assert copies == [now[f"p{i}"]["pid"]], f"p{i}: not exactly one, listed: {who(copies)}"
    report("kill -9 decision process, then keeper at +0.05..0.5 s -> API answers with 10 running", took)
    r = h.cli("down")
    assert r.returncode == 0, r.stderr
    assert not marked(tag) and not marked(f"sleep {quiet}")
    for i in range(5):
        # each run's lines in order, none twice (a line a dead keeper held may be missing: it is
        # counted; a printer whose pipe no process held any more died and was restarted at 1)
        runs: list[list[int]] = []
        for n in numbers(h.state / "logs" / f"p{i}.log", f"{tag}.{i}"):
            if n == 1 or not runs:
                runs.append([])
            runs[-1].append(n)
        assert runs and all(r == sorted(set(r)) for r in runs), f"p{i}: a repeat or a line out of order"


def _kill_every_decision_process(keeper: int, stop: threading.Event, killed: list[int]) -> None:
    """A decision process that cannot come up: each one is killed as soon as it appears."""
    while not stop.is_set():
        try:
            kids = psutil.Process(keeper).children()
        except psutil.NoSuchProcess:
            return
        for c in kids:
            try:
                if "herder.runtime.dp" in " ".join(c.cmdline()) and c.pid not in killed:
                    c.kill()
                    killed.append(c.pid)
            except psutil.Error:
                continue
        stop.wait(0.003)


def test_sigterm_while_the_decision_process_crash_loops_the_keeper_stops_everything_in_order(
        herd: Callable[..., Herd]) -> None:
    """A stop asked (SIGTERM: `systemctl stop`, `docker stop`) while no decision process can
    come up: the keeper stops the services itself, dependents first (stop signal, then
    SIGKILL after stop_timeout), says so, and exits 1."""
    quiet = 60000 + random.randrange(30000)
    h = herd(f'''
        [services.db]
        command = ["sh", "-c", "trap 'echo db >> {{order}}; exit 0' TERM; sleep {quiet} & wait"]
        [services.web]
        command = ["sh", "-c", "trap 'echo web >> {{order}}; exit 0' TERM; sleep {quiet} & wait"]
        depends_on = ["db"]
        [services.stubborn]
        command = ["sh", "-c", "trap '' TERM; exec sleep {quiet}"]
        stop_timeout = "1s"
        '''.replace("{order}", "ORDER"))
    order = h.dir / "order"
    h.config.write_text(h.config.read_text().replace("ORDER", str(order)))
    assert h.up().returncode == 0
    pids = {n: x["pid"] for n, x in services(h).items()}
    keeper, _ = keeper_and_dp(h)
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_every_decision_process, args=(keeper, stop, killed), daemon=True)
    fd = os.pidfd_open(keeper)
    try:
        kill_dp(h)
        killer.start()
        wait_until("a decision process killed at start-up", lambda: len(killed) >= 2, timeout=60, interval=0.01)
        os.kill(keeper, signal.SIGTERM)
        assert select.select([fd], [], [], 60)[0], "the keeper did not stop everything and exit"
    finally:
        stop.set()
        killer.join(10)
        os.close(fd)
    assert not any(alive(p) for p in pids.values()), "a service outlived the keeper's stop"
    assert not marked(f"sleep {quiet}")
    assert order.read_text().split() == ["web", "db"], "not in reverse dependency order"
    herder_log = (h.state / "herder.log").read_text()
    assert "the keeper" in herder_log and "stops the 3 running instance(s) itself" in herder_log
    assert "stubborn did not stop within stop_timeout; killed (SIGKILL)" in herder_log


def test_a_stop_forwarded_to_a_decision_process_killed_before_it_stepped_it_is_not_lost(
        herd: Callable[..., Herd]) -> None:
    """SIGTERM reaches the keeper, which forwards it; the decision process dies before it has
    stepped it (stopped here with SIGSTOP, then killed: a real process that never read the
    message). The keeper kept it unacknowledged, so the next decision process gets it and
    stops everything; herder then exits."""
    quiet = 60000 + random.randrange(30000)
    h = herd("".join(f'[services.q{i}]\ncommand = ["sleep", "{quiet}"]\n' for i in range(3)))
    assert h.up().returncode == 0
    pids = [x["pid"] for x in services(h).values()]
    keeper, dp = keeper_and_dp(h)
    fd = os.pidfd_open(keeper)
    try:
        os.kill(dp, signal.SIGSTOP)
        os.kill(keeper, signal.SIGTERM)      # forwarded to a decision process that cannot read it
        kill_dp(h)
        assert select.select([fd], [], [], 60)[0], "herder did not stop after the SIGTERM"
    finally:
        os.close(fd)
    assert not any(alive(p) for p in pids)
    assert not marked(f"sleep {quiet}")
