"""$NOTIFY_SOCKET served by herder, with real programs (tests/programs/notifier.py, gunicorn)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
from health_harness import NL, PROGRAMS, PY, free_port, prog, run, running

from herder.testing import FakeClock


def test_several_assignments_in_one_datagram(tmp_path: Path) -> None:
    async def main() -> None:
        cmd = prog("notifier.py", "send:STATUS=booting", "send:READY=1" + NL + "STATUS=serving")
        toml = f"""
[services.n]
command = {cmd}
ready = {{ notify = true, timeout = "20s" }}
"""
        async with running(tmp_path, toml) as h:
            await h.reach("n", "running")
            await h.wait(lambda e: e.kind == "status" and e.data["status"] == "serving")
            assert h.sup.instances["n"].status == "serving"
            assert h.sup.status(["n"])[0]["status"] == "serving"
    asyncio.run(main())


def test_starting_until_ready(tmp_path: Path) -> None:
    """The instance stays `starting` until READY=1, and dependents on `ready` wait."""
    async def main() -> None:
        flag = tmp_path / "go"
        toml = f"""
[services.slow]
command = ["/bin/sh", "-c",
           "while [ ! -e {flag} ]; do sleep 0.05; done; exec {PY} {PROGRAMS / 'notifier.py'} send:READY=1"]
ready = {{ notify = true, timeout = "30s" }}
[services.dep]
command = "sleep 60"
depends_on = {{ slow = "ready" }}
"""
        async with running(tmp_path, toml) as h:
            await h.wait(lambda e: e.instance == "slow" and e.kind == "spawn")
            await h.wait(lambda e: e.instance == "dep" and e.kind == "waiting")
            assert h.sup.instances["slow"].state.value == "starting"
            assert h.find(lambda e: e.instance == "dep" and e.kind == "spawn") is None
            flag.touch()
            ready = await h.reach("slow", "running")
            spawn = await h.wait(lambda e: e.instance == "dep" and e.kind == "spawn")
            assert h.events.index(spawn) > h.events.index(ready)
    asyncio.run(main())


def test_mainpid_hand_over_to_a_child(tmp_path: Path) -> None:
    async def main() -> None:
        toml = f"""
[services.d]
command = {prog("notifier.py", "fork-main")}
ready = {{ notify = true, timeout = "20s" }}
kill = "main"
"""
        async with running(tmp_path, toml) as h:
            spawn = await h.wait(lambda e: e.instance == "d" and e.kind == "spawn")
            moved = await h.wait(lambda e: e.instance == "d" and e.kind == "mainpid")
            await h.reach("d", "running")
            child = moved.data["pid"]
            assert child != spawn.data["pid"] and h.sup.instances["d"].pid == child
            # the original process exited 0: that is not the instance's exit
            assert h.find(lambda e: e.instance == "d" and e.kind == "exit") is None
            os.kill(child, 0)
            h.sup.stop(["d"])
            ex = await h.wait(lambda e: e.instance == "d" and e.kind == "exit")
            assert ex.data["pid"] == child and ex.data["code"] == 0   # SIGTERM went to the child; herder reaped it
            await h.reach("d", "stopped")
    asyncio.run(main())


def test_a_hand_over_whose_old_main_is_reaped_before_its_datagram_is_read(tmp_path: Path) -> None:
    """The race behind a flaky test: the old main process exits right after its child sent
    MAINPID=. Here the loop is held until that exit has happened, so the reap comes first
    (it is queued ahead of the socket's readiness): herder must still read the hand-over
    before it decides the instance ended (systemd's notify source outranks SIGCHLD too)."""
    import select

    async def main() -> None:
        toml = f"""
[services.d]
command = {prog("notifier.py", "fork-main")}
ready = {{ notify = true, timeout = "20s" }}
kill = "main"
"""
        async with running(tmp_path, toml) as h:
            spawn = await h.wait(lambda e: e.instance == "d" and e.kind == "spawn")
            fd = os.pidfd_open(spawn.data["pid"])
            try:
                assert select.select([fd], [], [], 20)[0], "the first process did not exit"   # loop held
            finally:
                os.close(fd)
            moved = await h.wait(lambda e: e.instance == "d" and e.kind == "mainpid")
            await h.reach("d", "running")
            assert h.find(lambda e: e.instance == "d" and e.kind == "exit") is None
            assert h.sup.instances["d"].pid == moved.data["pid"]
    asyncio.run(main())


def test_mainpid_outside_the_instance_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        toml = f"""
[services.d]
command = {prog("notifier.py", f"send:MAINPID={os.getpid()}", "send:READY=1")}
ready = {{ notify = true, timeout = "20s" }}
"""
        async with running(tmp_path, toml) as h:
            await h.reach("d", "running")
            warn = await h.wait(lambda e: e.kind == "notify_warning" and "MAINPID" in e.message)
            assert str(os.getpid()) in warn.message
            assert h.sup.instances["d"].pid != os.getpid()
    asyncio.run(main())


def test_reloading_then_ready(tmp_path: Path) -> None:
    async def main() -> None:
        cmd = prog("notifier.py", "send:READY=1", "send:RELOADING=1", "send:STATUS=reloaded" + NL + "READY=1")
        toml = f"""
[services.r]
command = {cmd}
ready = {{ notify = true, timeout = "20s" }}
"""
        async with running(tmp_path, toml) as h:
            first = await h.reach("r", "running")
            start = h.events.index(first)
            await h.reach("r", "reloading", start=start)
            back = await h.reach("r", "running", start=start + 1)
            assert back.data["reason"] == "reloaded"
    asyncio.run(main())


def test_extend_timeout_usec_pushes_the_ready_deadline(tmp_path: Path) -> None:
    """On a clock moved by hand: past the configured ready.timeout, within the extension."""
    clock = FakeClock()
    go = tmp_path / "go"
    os.mkfifo(go)

    async def main() -> None:
        toml = f"""
[services.x]
command = {prog("notifier.py", "send:EXTEND_TIMEOUT_USEC=20000000", f"wait:{go}", "send:READY=1")}
ready = {{ notify = true, timeout = "300ms" }}
"""
        async with running(tmp_path, toml, clock=clock) as h:
            await h.wait(lambda e: e.kind == "extend")
            clock.advance(10.0)                      # well past 300 ms
            assert h.find(lambda e: e.kind == "failing") is None
            fd = os.open(go, os.O_RDWR)   # never blocks; holds the byte until the program reads it
            try:
                os.write(fd, b"x")
                await h.reach("x", "running")
            finally:
                os.close(fd)
            clock.advance(30.0)                      # a late timer must not fire either
            assert h.find(lambda e: e.kind == "failing") is None
    run(main, clock)


def test_stopping_errno_and_garbage_are_reported_never_fatal(tmp_path: Path) -> None:
    async def main() -> None:
        cmd = prog("notifier.py", "send:not an assignment", "big:5000", "send:ERRNO=2", "send:STOPPING=1",
                   "send:FDSTORE=1" + NL + "READY=1")
        toml = f"""
[services.g]
command = {cmd}
ready = {{ notify = true, timeout = "20s" }}
"""
        async with running(tmp_path, toml) as h:
            await h.reach("g", "running")
            await h.wait(lambda e: e.kind == "errno" and e.data["errno"] == 2)
            await h.wait(lambda e: e.kind == "notify_stopping")
            warnings = [e for e in h.events if e.kind == "notify_warning"]
            assert len(warnings) == 2 and h.sup.notify.garbage == 2
            assert "oversized" in warnings[1].message
    asyncio.run(main())


def test_a_stranger_is_ignored(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, '[services.s]\ncommand = "sleep 60"\n') as h:
            await h.reach("s", "running")
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                addr = h.sup.notify.address
                s.sendto(b"READY=1", "\0" + addr[1:] if addr.startswith("@") else addr)
            await h.wait(lambda e: e.kind == "notify_warning" and "belongs to no instance" in e.message)
            assert h.sup.notify.strangers == 1
    asyncio.run(main())


def test_environment_notify_socket_and_watchdog_usec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_PID", "1")       # as if herder itself ran under systemd
    monkeypatch.setenv("WATCHDOG_USEC", "999")

    async def main() -> None:
        toml = f"""
[services.w]
command = {prog("notifier.py", "env:WATCHDOG_USEC", "env:WATCHDOG_PID", "send:READY=1", "ping:0.05")}
ready = {{ notify = true, timeout = "20s" }}
health = {{ watchdog = "5s" }}
[services.plain]
command = {prog("notifier.py", "env:WATCHDOG_USEC", "send:READY=1")}
ready = {{ notify = true, timeout = "20s" }}
"""
        async with running(tmp_path, toml) as h:
            await h.reach("w", "running")
            await h.reach("plain", "running")
            statuses = {(e.instance, e.data["status"]) for e in h.events if e.kind == "status"}
            assert ("w", "WATCHDOG_USEC=5000000") in statuses
            assert ("w", "WATCHDOG_PID=unset") in statuses
            assert ("plain", "WATCHDOG_USEC=unset") in statuses
    asyncio.run(main())


def test_gunicorn_is_a_real_notifier(tmp_path: Path) -> None:
    port = free_port()

    async def main() -> None:
        toml = f"""
[services.gunicorn]
command = ["{PY}", "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", "1", "--chdir", "{PROGRAMS}",
           "wsgi_app:app"]
ready = {{ notify = true, timeout = "60s" }}
health = {{ http = "http://127.0.0.1:{port}/", interval = "1s" }}
[services.client]
command = "sleep 60"
depends_on = {{ gunicorn = "healthy" }}
"""
        async with running(tmp_path, toml) as h:
            await h.reach("gunicorn", "running", timeout=60)
            assert h.sup.instances["gunicorn"].status == "Gunicorn arbiter booted"
            await h.wait(lambda e: e.instance == "client" and e.kind == "spawn", timeout=60)
            assert h.sup.instances["gunicorn"].healthy is True
    asyncio.run(main())


def test_a_child_that_speaks_before_its_spawn_is_answered_is_heard(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Under load the keeper's answer to a spawn can reach herder after the child has spoken
    (a CI run lost a STATUS= that way: "belongs to no instance"). The answer is held back here
    until the child's STATUS= and READY=1 are on the socket — the order load produces, forced
    at the one seam that decides it — then given: both are heard, after Spawned, and nothing
    is counted as a stranger's."""
    from herder.health.notify import NotifyServer
    from herder.runtime.processes import Processes

    held: list[tuple[Processes, dict[str, object]]] = []
    received: list[int] = []      # datagrams the notify socket took in
    both = asyncio.Event()        # the spawn's answer held back and both datagrams in (loop thread)
    real, real_one = Processes.answered, NotifyServer._one

    def hold(procs: Processes, msg: dict[str, object]) -> None:
        held.append((procs, msg))
        if len(received) >= 2:
            both.set()

    def one(server: NotifyServer, *args: object) -> None:
        received.append(1)
        real_one(server, *args)  # type: ignore[arg-type]
        if held and len(received) >= 2:
            both.set()

    monkeypatch.setattr(Processes, "answered", hold)
    monkeypatch.setattr(NotifyServer, "_one", one)

    async def main() -> None:
        # no cgroups: with them a child placed in its cgroup is known by that, answered or not
        toml = f"""cgroups = false
[services.n]
command = {prog("notifier.py", "send:STATUS=early", "send:READY=1")}
ready = {{ notify = true, timeout = "20s" }}
"""
        async with running(tmp_path, toml) as h:
            async with asyncio.timeout(30):
                await both.wait()
            procs, msg = held.pop()
            real(procs, msg)  # type: ignore[arg-type]
            await h.reach("n", "running")
            assert ("n", "early") in {(e.instance, e.data["status"]) for e in h.events if e.kind == "status"}
            assert h.sup.notify.strangers == 0
    asyncio.run(main())
