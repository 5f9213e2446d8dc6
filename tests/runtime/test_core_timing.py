"""The supervisor's timing logic with real processes on the autojump FakeClock: long stop
timeouts, backoff curves and ordered stops of many services cost milliseconds, and the
virtual times they took are exact. One test keeps real time as an end-to-end check of
the monotonic clock and the deadline heap (test_core_supervise has the other)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from herdertest import PROGRAMS, PY, Reporter, toml_list

from herder.config import load
from herder.core.events import Command, Verb
from herder.testing import FakeClock, run
from herder.testing.harness import Running, run_supervisor


def stubborn() -> str:
    return toml_list([PY, str(PROGRAMS / "stubborn.py")])


def test_a_long_stop_timeout_escalates_to_sigkill_at_its_virtual_deadline(
        make_config: Callable[..., Path], reporter: Reporter) -> None:
    cfg = load(make_config(f'''
        [services.s]
        command = {stubborn()}
        stop_timeout = "90s"
        '''))
    clock = FakeClock(autojump=True)

    async def body() -> None:
        loop = asyncio.get_running_loop()
        async with run_supervisor(cfg, clock=clock) as r:
            await reporter.get(event="up")           # its SIGTERM handler is in place
            real0, t0 = loop.time(), clock.now()
            r.sup.stop(["s"])
            ev = await r.wait_for(lambda e: e.kind == "exit")
            assert ev.data["signal"] == "SIGKILL"
            timeout = r.find(lambda e: e.kind == "stop_timeout")
            assert timeout is not None and "s ignored SIGTERM for 90s" in timeout.message
            assert r.at[r.events.index(timeout)] - t0 == 90.0
            assert loop.time() - real0 < 30.0            # virtual, not waited for

    run(body(), clock)


def test_backoff_grows_on_the_virtual_clock_until_the_start_limit(make_config: Callable[..., Path]) -> None:
    cfg = load(make_config('''
        [services.bad]
        command = ["false"]
        backoff = { initial = "10s", factor = 3.0, max = "5m", jitter = 0.0 }
        start_limit = { burst = 3, interval = "1h" }
        '''))
    clock = FakeClock(autojump=True)

    async def body() -> None:
        async with run_supervisor(cfg, clock=clock) as r:
            await r.wait_state("bad", "failed", timeout=60)
            delays = [e.data["delay"] for e in r.events if e.kind == "restart"]
            assert delays == [10.0, 30.0, 90.0]
            exits = [i for i, e in enumerate(r.events) if e.kind == "exit"]
            spawns = [i for i, e in enumerate(r.events) if e.kind == "spawn"]
            # each spawn after the first comes exactly its backoff delay after the previous exit
            assert [r.at[s] - r.at[x] for x, s in zip(exits, spawns[1:], strict=False)] == delays

    run(body(), clock)


# a program that ignores SIGTERM (an ignored signal stays ignored across exec) and says so
DEAF = """command = ["sh", "-c", "trap '' TERM; echo deaf; exec sleep 1000"]
logs = { timestamps = false }
ready = { log = "^deaf$", timeout = "0s" }
"""


def deaf_services(n: int, stop_timeout: str) -> str:
    return "".join(f'[services.s{i:02d}]\n{DEAF}stop_timeout = "{stop_timeout}"\n' for i in range(n))


async def all_running(r: Running) -> None:
    for name in r.sup.instances:
        await r.wait_state(name, "running")


@contextlib.asynccontextmanager
async def deaf_herd(make_config: Callable[..., Path], n: int, stop_timeout: str,
                    clock: FakeClock | None = None) -> AsyncIterator[Running]:
    """A supervisor of n services that ignore SIGTERM, once all of them run."""
    async with run_supervisor(load(make_config(deaf_services(n, stop_timeout))), clock=clock) as r:
        await all_running(r)
        yield r


def test_stop_of_many_stops_them_together(make_config: Callable[..., Path]) -> None:
    """issue 17 item 8, real processes on the virtual clock: 40 services that ignore
    SIGTERM, stop_timeout 2 s, stop them all: 2 virtual seconds (one after another was 80)."""
    n = 40
    clock = FakeClock(autojump=True)

    async def body() -> None:
        async with deaf_herd(make_config, n, "2s", clock) as r:
            t0 = clock.now()
            names = tuple(r.sup.instances)
            reply = await r.sup.ask(lambda ticket: Command(Verb.STOP, names, ticket, 300.0))
            assert reply.ok, reply
            assert clock.now() - t0 == 2.0
            assert all(r.state(x) == "stopped" for x in names)
            assert sum(1 for e in r.events if e.kind == "stop_timeout") == n

    run(body(), clock)


def test_stop_of_many_in_real_time_signals_all_before_any_deadline(make_config: Callable[..., Path]) -> None:
    """The same on the real clock, without measuring durations: every instance is told to
    stop in the same step, before the first stop timeout fires."""
    n = 12

    async def body() -> None:
        async with deaf_herd(make_config, n, "200ms") as r:
            names = tuple(r.sup.instances)
            mark = r.mark()
            reply = await r.sup.ask(lambda ticket: Command(Verb.STOP, names, ticket, 300.0))
            assert reply.ok, reply
            seq = [(e.kind, e.data.get("to")) for e in r.events[mark:] if e.kind in ("state", "stop_timeout")]
            first_timeout = seq.index(("stop_timeout", None))
            assert seq[:first_timeout].count(("state", "stopping")) == n

    run(body())


def test_a_restart_without_backoff_needs_no_wake_up_of_the_clock(make_config: Callable[..., Path],
                                                                 tmp_path: Path) -> None:
    """A 0 s backoff is already due when the exit's step arms it: the supervisor steps it at
    the end of the same drain (issue 20, the restart's critical path), not after a wake-up
    of its loop. On a FakeClock moved by hand and never moved here, the service still comes
    back: the restart took no clock wake-up at all (before, it waited for an advance())."""
    once = tmp_path / "once"       # the first run exits 3, the second stays
    cfg = load(make_config(f'''
        [services.s]
        command = ["sh", "-c", "if [ -e {once} ]; then exec sleep 1000; fi; : > {once}; exit 3"]
        restart = "always"
        min_uptime = "0s"
        backoff = {{ initial = "0s" }}
        '''))
    clock = FakeClock()

    async def body() -> None:
        async with run_supervisor(cfg, clock=clock) as r:
            t0 = clock.now()
            exited = await r.wait_for(lambda e: e.kind == "exit")
            n = r.events.index(exited)
            await r.wait_for(lambda e: e.kind == "spawn", since=n)
            assert [e.data.get("to") for e in r.events[n:] if e.kind == "state"] == \
                ["backoff", "waiting", "starting", "running"]
            assert clock.now() == t0 and r.state("s") == "running"

    run(body(), clock)
