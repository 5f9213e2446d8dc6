"""Stop-all of services that ignore SIGTERM, with real processes: the stop timeouts that
fall due together are stepped together, recorded once (before any SIGKILL: the
write-ahead rule), and their SIGKILLs go out one after the other before any report
(herder.runtime.batch). And the two places that gather what is posted into one drain:
the timers due in one wake-up, the keeper's messages of one read (a real socketpair)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_core_timing import deaf_herd

from herder.core.effects import Scope
from herder.core.events import Down
from herder.keeper import wire
from herder.runtime.keeper_link import KeeperLink
from herder.testing import FakeClock, run


def test_stop_timeouts_due_together_are_recorded_once_then_every_sigkill_goes_out(
        make_config: Callable[..., Path]) -> None:
    n = 12
    clock = FakeClock(autojump=True)

    async def body() -> None:
        async with deaf_herd(make_config, n, "2s", clock) as r:
            link, procs = r.sup.link, r.sup.procs
            assert link is not None
            trace: list[tuple[str, Any]] = []      # what reaches the keeper, each SIGKILL, each event, in order
            send, kill = link.send, procs.kill

            def spy_send(msg: dict[str, Any], fds: list[int] | None = None, close_after: bool = True) -> None:
                trace.append((str(msg.get("t")), msg))
                send(msg, fds, close_after)

            def spy_kill(name: str, scope: Scope) -> None:
                trace.append(("kill", name))
                kill(name, scope)

            link.send = spy_send             # type: ignore[method-assign]
            procs.kill = spy_kill            # type: ignore[method-assign]
            r.sup.events.subscribe(lambda e: trace.append(("event", e.kind)))
            t0 = clock.now()
            r.sup.post(Down())
            for name in r.sup.instances:
                ev = await r.wait_for(lambda e, name=name: e.kind == "exit" and e.instance == name)
                assert ev.data["signal"] == "SIGKILL"
            kills = [i for i, (t, _) in enumerate(trace) if t == "kill"]
            assert sorted(trace[i][1] for i in kills) == sorted(r.sup.instances)
            assert kills == list(range(kills[0], kills[0] + n))      # one after the other, no report between
            before = [m for t, m in trace[:kills[0]] if t == "state"]
            record = before[-1]["inst"]                               # the last record before the first SIGKILL
            assert sorted(record) == sorted(r.sup.instances)          # names them all: one record for the batch,
            # which says every stop timeout was taken (the write-ahead of the SIGKILLs)
            assert all(rec["state"] == "stopping" and "stop" not in rec["timers"] for rec in record.values())
            at = [r.at[i] for i, e in enumerate(r.events) if e.kind == "stop_timeout"]
            assert at == [t0 + 2.0] * n

    run(body(), clock)


def sigkilled(pid: int) -> bool:
    """The process is gone, a zombie, or has SIGKILL pending (it was sent, not yet acted on)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    if fields["State"].startswith(("Z", "X")):
        return True
    return bool((int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)) & (1 << (9 - 1)))


def test_many_sigkills_go_to_every_main_process_before_the_first_cgroup_kill(
        make_config: Callable[..., Path]) -> None:
    n = 6
    clock = FakeClock(autojump=True)

    async def body() -> None:
        async with deaf_herd(make_config, n, "2s", clock) as r:
            procs = r.sup.procs
            if any(procs.procs[name].cgroup is None for name in r.sup.instances):
                pytest.skip("no cgroup2 here (not root?): a tree is killed by its group, main processes first "
                            "applies to cgroups only")
            pids = {name: r.sup.world.instances[name].pid for name in r.sup.instances}
            trace: list[tuple[str, str]] = []
            at_first_kill: dict[str, bool] = {}
            kill_main, kill = procs.kill_main, procs.kill

            def spy_main(name: str) -> None:
                trace.append(("main", name))
                kill_main(name)

            def spy_kill(name: str, scope: Scope) -> None:
                if not at_first_kill:
                    at_first_kill.update({x: sigkilled(pid) for x, pid in pids.items() if pid is not None})
                trace.append(("tree", name))
                kill(name, scope)

            procs.kill_main = spy_main        # type: ignore[method-assign]
            procs.kill = spy_kill             # type: ignore[method-assign]
            r.sup.post(Down())
            for name in r.sup.instances:
                ev = await r.wait_for(lambda e, name=name: e.kind == "exit" and e.instance == name)
                assert ev.data["signal"] == "SIGKILL"
            assert [t for t, _ in trace] == ["main"] * n + ["tree"] * n
            assert [x for t, x in trace if t == "main"] == [x for t, x in trace if t == "tree"]
            assert at_first_kill == dict.fromkeys(pids, True)      # every main process had its SIGKILL already

    run(body(), clock)


def test_what_is_posted_within_together_is_stepped_when_it_ends(make_config: Callable[..., Path]) -> None:
    async def body() -> None:
        async with deaf_herd(make_config, 2, "1h") as r:
            with r.sup.together():
                r.sup.stop(["s00"])
                with r.sup.together():
                    r.sup.stop(["s01"])
                assert r.state("s00") == r.state("s01") == "running"     # held until the outer one ends
            assert r.state("s00") == r.state("s01") == "stopping"
            r.sup.force()

    run(body())


def test_the_messages_of_one_read_are_handed_over_together_and_the_end_after_them() -> None:
    async def body() -> None:
        mine, theirs = wire.pair()
        link = KeeperLink(mine)
        depth = 0
        bursts: list[list[int]] = []
        got: list[tuple[int, int]] = []
        done = asyncio.Event()

        @contextlib.contextmanager
        def together() -> Iterator[None]:
            nonlocal depth
            depth += 1
            bursts.append([])
            try:
                yield
            finally:
                depth -= 1

        def on_message(msg: dict[str, Any], fds: list[int]) -> None:
            got.append((int(msg["n"]), depth))
            bursts[-1].append(int(msg["n"]))

        def on_lost() -> None:
            got.append((-1, depth))
            done.set()

        link.together, link.on_message, link.on_lost = together, on_message, on_lost
        for i in range(30):
            wire.send_now(theirs, wire.encode({"t": "exit", "n": i}, [])[0], [])
        theirs.close()
        link.open()
        async with asyncio.timeout(10):
            await done.wait()
        assert got[:30] == [(i, 1) for i in range(30)]     # each inside the one burst that read it
        assert bursts[0] == list(range(30))
        assert got[30] == (-1, 0)                           # the keeper's end: once the burst is applied
        link.close()

    asyncio.run(body())
