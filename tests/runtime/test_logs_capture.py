"""Capture through the supervisor with real children: floods byte-exact (block), drops counted
and children never stalled (drop), binary and partial lines, exit events with stderr, output
modes, replicas, follow ordering, SIGUSR1 reopen, the console view and status counters."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import sys
import textwrap
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from herder.config import load
from herder.logs import LogHub
from herder.logs._console import ConsoleTap
from herder.runtime.events import Event
from herder.runtime.supervisor import Supervisor

PY = sys.executable
DEADLINE = 60.0


def config(tmp_path: Path, services: str) -> Path:
    p = tmp_path / "herder.toml"
    p.write_text("[herder]\ncgroups = false\n" + textwrap.dedent(services))
    return p


def prog(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return f'["{PY}", "{path}"]'


def run(cfg_path: Path, driver: Callable[[Supervisor, LogHub, list[Event]], Awaitable[None]],
        signals: bool = False) -> list[Event]:
    cfg = load(cfg_path)
    sup = Supervisor(cfg)
    hub = sup.logs
    events: list[Event] = []
    changed = asyncio.Event()

    def on(ev: Event) -> None:
        events.append(ev)
        changed.set()

    sup.events.subscribe(on)
    sup.changed = changed  # type: ignore[attr-defined]

    async def main() -> None:
        async def drive() -> None:
            try:
                async with asyncio.timeout(DEADLINE):
                    await driver(sup, hub, events)
            finally:
                sup.request_down()
        task = asyncio.ensure_future(drive())
        await sup.run(install_signals=signals)   # signals: SIGUSR1 reopens the files
        await task

    asyncio.run(main())
    return events


async def wait_event(sup: Supervisor, events: list[Event], pred: Callable[[Event], bool]) -> Event:
    while True:
        for ev in events:
            if pred(ev):
                return ev
        sup.changed.clear()  # type: ignore[attr-defined]
        await sup.changed.wait()  # type: ignore[attr-defined]


async def all_done(hub: LogHub, name: str) -> None:
    chans = hub.current[name]
    await asyncio.get_running_loop().run_in_executor(None, lambda: [c.done.wait(DEADLINE) for c in chans])


def exited(name: str) -> Callable[[Event], bool]:
    return lambda ev: ev.instance == name and ev.kind == "exit"


FLOOD = """
    import hashlib, os, sys
    total = {total}
    h = hashlib.sha256(); sent = 0; i = 0
    while sent < total:
        blk = b"".join(b"%08d " % (i * 700 + k) + bytes(range(i % 7, i % 7 + 80)).replace(b"\\n", b"?") + b"\\n"
                       for k in range(700))
        blk = blk[: total - sent]
        mv = memoryview(blk)
        while mv:
            mv = mv[os.write(1, mv):]
        h.update(blk); sent += len(blk); i += 1
    open(sys.argv[1], "w").write(h.hexdigest())
"""


def test_flood_is_captured_byte_exact_in_block_mode(tmp_path: Path) -> None:
    total = 24 << 20
    cmd = prog(tmp_path, "flood", FLOOD.format(total=total))
    cfg = config(tmp_path, f"""
        [services.flood]
        command = {cmd[:-1]}, "{tmp_path / 'sum'}"]
        restart = "never"
        logs = {{ timestamps = false, buffer = "256KB", max_size = "0" }}
    """)

    async def drive(sup: Supervisor, hub: LogHub, events: list[Event]) -> None:
        await wait_event(sup, events, exited("flood"))
        await all_done(hub, "flood")

    run(cfg, drive)
    data = (tmp_path / ".herder" / "logs" / "flood.log").read_bytes()
    assert len(data) == total
    assert hashlib.sha256(data).hexdigest() == (tmp_path / "sum").read_text()


def test_block_mode_holds_the_child_while_the_disk_is_stuck_and_loses_nothing(tmp_path: Path) -> None:
    total = 8 << 20
    cmd = prog(tmp_path, "flood", FLOOD.format(total=total))
    cfg = config(tmp_path, f"""
        [services.flood]
        command = {cmd[:-1]}, "{tmp_path / 'sum'}"]
        restart = "never"
        logs = {{ timestamps = true, buffer = "64KB", max_size = "0" }}
    """)
    gate = threading.Event()

    async def drive(sup: Supervisor, hub: LogHub, events: list[Event]) -> None:
        real = hub.pump._deliver
        hub.pump._deliver = lambda chunk: (gate.wait(DEADLINE), real(chunk))  # type: ignore[method-assign]
        await wait_event(sup, events, lambda ev: ev.instance == "flood" and ev.kind == "spawn")
        # the writer is stuck: memory stays bounded, the child waits (no exit while gated)
        loop = asyncio.get_running_loop()
        for _ in range(50):
            await loop.run_in_executor(None, lambda: threading.Event().wait(0.02))
            assert hub.pump.total <= (64 << 10) + (1 << 20) + (1 << 20)
        assert not any(exited("flood")(e) for e in events)
        gate.set()
        await wait_event(sup, events, exited("flood"))
        await all_done(hub, "flood")

    run(cfg, drive)
    lines = (tmp_path / ".herder" / "logs" / "flood.log").read_bytes().split(b"\n")[:-1]
    assert all(re.match(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", x) for x in lines)
    body = b"".join(x[25:] + b"\n" for x in lines)
    assert len(body) == total + 1  # the flood ends mid-line: that line is flushed with a newline at exit
    assert hashlib.sha256(body[:-1]).hexdigest() == (tmp_path / "sum").read_text()


def test_drop_mode_never_stalls_the_child_and_counts_every_dropped_byte(tmp_path: Path) -> None:
    total = 16 << 20
    cmd = prog(tmp_path, "flood", FLOOD.format(total=total))
    cfg = config(tmp_path, f"""
        [services.flood]
        command = {cmd[:-1]}, "{tmp_path / 'sum'}"]
        restart = "never"
        logs = {{ timestamps = false, buffer = "64KB", max_size = "0", on_overflow = "drop" }}
    """)
    gate = threading.Event()
    status: list[dict[str, Any]] = []

    async def drive(sup: Supervisor, hub: LogHub, events: list[Event]) -> None:
        real = hub.pump._deliver
        hub.pump._deliver = lambda chunk: (gate.wait(DEADLINE), real(chunk))  # type: ignore[method-assign]
        await wait_event(sup, events, exited("flood"))  # the child finished while the writer was stuck
        gate.set()
        await all_done(hub, "flood")
        await wait_event(sup, events, lambda ev: ev.kind == "log_dropped")
        status.extend(sup.status(["flood"]))

    events = run(cfg, drive)
    size = (tmp_path / ".herder" / "logs" / "flood.log").stat().st_size
    dropped = status[0]["logs"]["dropped_bytes"]
    assert dropped > 0 and size + dropped == total
    assert any(e.kind == "log_dropped" and e.data["dropped_bytes"] > 0 for e in events)


def test_binary_multiline_partial_and_exit_event_with_stderr_tail(tmp_path: Path) -> None:
    cmd = prog(tmp_path, "crash", """
        import os, sys
        os.write(1, b"one\\ntwo\\n\\xff\\xfe\\x00bin\\n")
        os.write(2, b"Traceback (most recent call last):\\n  boom\\nValueError: bad config")
        os.write(1, b"no newline at the end")
        sys.exit(3)
    """)
    cfg = config(tmp_path, f"""
        [services.raw]
        command = {cmd}
        restart = "never"
        logs = {{ timestamps = false, stderr = "auto" }}
        [services.crash]
        command = {cmd}
        restart = "never"
        logs = {{ tail_lines = 2 }}
    """)
    got: dict[str, Event] = {}

    async def drive(sup: Supervisor, hub: LogHub, events: list[Event]) -> None:
        for name in ("raw", "crash"):
            got[name] = await wait_event(sup, events, exited(name))
            await all_done(hub, name)

    run(cfg, drive)
    logs = tmp_path / ".herder" / "logs"
    assert (logs / "raw.log").read_bytes() == b"one\ntwo\n\xff\xfe\x00bin\nno newline at the end"
    assert (logs / "raw.err.log").read_bytes() == b"Traceback (most recent call last):\n  boom\nValueError: bad config"
    stamped = (logs / "crash.log").read_bytes().split(b"\n")
    assert [x[25:] for x in stamped[:-1]].count(b"no newline at the end") == 1
    assert got["crash"].data["stderr_tail"] == ["  boom", "ValueError: bad config"]
    assert got["raw"].data["stderr_tail"][-1] == "ValueError: bad config"


def test_output_modes_and_replicas_get_their_own_files(tmp_path: Path) -> None:
    cmd = prog(tmp_path, "hello", """
        import os, sys
        print("out", os.environ["HERDER_INSTANCE"]); print("err", os.environ["HERDER_INSTANCE"], file=sys.stderr)
    """)
    cfg = config(tmp_path, f"""
        [defaults]
        restart = "never"
        logs = {{ timestamps = false }}
        [services.rep]
        command = {cmd}
        replicas = 2
        [services.path]
        command = {cmd}
        logs = {{ stdout = "custom/out.txt", stderr = "null" }}
        [services.quiet]
        command = {cmd}
        logs = {{ stdout = "null" }}
    """)

    async def drive(sup: Supervisor, hub: LogHub, events: list[Event]) -> None:
        for name in ("rep.0", "rep.1", "path", "quiet"):
            await wait_event(sup, events, exited(name))
            await all_done(hub, name)

    events = run(cfg, drive)
    logs = tmp_path / ".herder" / "logs"
    for i in (0, 1):
        lines = sorted((logs / f"rep.{i}.log").read_bytes().splitlines())
        assert lines == [f"err rep.{i}".encode(), f"out rep.{i}".encode()]
    assert (tmp_path / "custom" / "out.txt").read_bytes() == b"out path\n"
    assert not (logs / "quiet.log").exists()
    # null stdout still keeps stderr's tail for the exit event
    assert next(e for e in events if exited("quiet")(e)).data["stderr_tail"] == ["err quiet"]


def test_follow_merges_services_in_time_order_without_gaps(tmp_path: Path) -> None:
    body = """
        import os, sys, time
        for i in range(300):
            os.write(1, b"%s %d\\n" % (sys.argv[1].encode(), i))
            if i % 50 == 0:
                time.sleep(0.001)
    """
    a = prog(tmp_path, "talk", body)
    cfg = config(tmp_path, f"""
        [defaults]
        restart = "never"
        autostart = false
        [services.a]
        command = {a[:-1]}, "a"]
        [services.b]
        command = {a[:-1]}, "b"]
    """)
    seen: list[Any] = []

    async def drive(sup: Supervisor, hub: LogHub, events: list[Event]) -> None:
        async def collect() -> None:
            async for rec in hub.follow(["a", "b"], tail=10):
                seen.append(rec)
                if len(seen) == 600:
                    return
        task = asyncio.ensure_future(collect())
        await asyncio.sleep(0)
        await hub_ready(hub)
        sup.start(["a", "b"])
        await task

    run(cfg, drive)
    assert [r.ts for r in seen] == sorted(r.ts for r in seen)
    for name in ("a", "b"):
        mine = [r.line for r in seen if r.instance == name]
        assert mine == [f"{name} {i}".encode() for i in range(300)]


async def hub_ready(hub: LogHub) -> None:
    """Wait until the writer thread has run everything queued so far (the follower is attached)."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    hub.pump.in_writer(lambda: loop.call_soon_threadsafe(done.set))
    await done.wait()


def test_sigusr1_reopens_files_after_an_outside_rename(tmp_path: Path) -> None:
    writer = prog(tmp_path, "two", """
        import os, sys, time
        os.write(1, b"before\\n")
        while not os.path.exists(sys.argv[1]):
            time.sleep(0.01)
        os.write(1, b"after\\n")
    """)
    cfg = config(tmp_path, f"""
        [services.w]
        command = {writer[:-1]}, "{tmp_path / 'go'}"]
        restart = "never"
        logs = {{ timestamps = false }}
    """)
    log = tmp_path / ".herder" / "logs" / "w.log"

    async def drive(sup: Supervisor, hub: LogHub, events: list[Event]) -> None:
        async with asyncio.timeout(30):  # the file has no event of its own: re-check, bounded
            while not (log.exists() and log.read_bytes() == b"before\n"):
                await hub_ready(hub)
                await asyncio.sleep(0.01)
        os.rename(log, tmp_path / "w.log.1")
        os.kill(os.getpid(), signal.SIGUSR1)
        await wait_event(sup, events, lambda ev: ev.kind == "log_reopen")
        (tmp_path / "go").touch()
        await wait_event(sup, events, exited("w"))
        await all_done(hub, "w")

    run(cfg, drive, signals=True)
    assert (tmp_path / "w.log.1").read_bytes() == b"before\n"
    assert log.read_bytes() == b"after\n"


def test_console_prefixes_each_line_with_its_service(tmp_path: Path) -> None:
    r, w = os.pipe()
    out = os.fdopen(w, "wb")
    tap = ConsoleTap(["web", "worker.0"], out=out, colour=False)
    from herder.logs._framing import Record
    tap.offer([Record(1.0, "web", "stdout", b"GET /"), Record(1.0, "worker.0", "stderr", b"job 1")])
    tap.close()
    out.close()
    with os.fdopen(r, "rb") as f:
        assert f.read() == b"web      | GET /\nworker.0 | job 1\n"
