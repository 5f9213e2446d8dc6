"""limits: rlimits before exec, max_memory_restart, cgroup memory limit and the oom reason."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from health_harness import prog, run, running

from herder.process import rlimits
from herder.testing import FakeClock


def test_nofile_is_set_before_exec(tmp_path: Path) -> None:
    async def main() -> None:
        toml = f"""
[services.r]
command = {prog("notifier.py", "rlimit", "send:READY=1")}
ready = {{ notify = true, timeout = "20s" }}
limits = {{ nofile = 123 }}
"""
        async with running(tmp_path, toml) as h:
            await h.reach("r", "running")
            assert h.sup.instances["r"].status == "nofile=123:123"
    asyncio.run(main())


def test_a_limit_above_the_hard_limit(tmp_path: Path) -> None:
    """Raised when herder may (root with CAP_SYS_RESOURCE, even for another user);
    otherwise a spawn failure that says why, never a crash."""
    async def main() -> None:
        toml = """
[services.r]
command = "sleep 60"
limits = { nproc = "unlimited" }
restart = "never"
user = "nobody"
"""
        async with running(tmp_path, toml) as h:
            ev = await h.wait(lambda e: e.instance == "r" and e.kind in ("spawn", "spawn_failed"))
            if rlimits.may_raise_hard_limits():
                assert ev.kind == "spawn", ev.message
            else:
                assert ev.kind == "spawn_failed"
                assert "limits.nproc = unlimited is above herder's own hard limit" in ev.message
                await h.reach("r", "exited")
    asyncio.run(main())


def test_max_memory_restart(tmp_path: Path) -> None:
    """On a clock moved by hand: the RSS is sampled once the hog holds its memory."""
    clock = FakeClock()

    async def main() -> None:
        toml = f"""
[services.hog]
command = {prog("memhog.py", "120", "hold")}
ready = {{ log = "^done$", timeout = "0s" }}
limits = {{ max_memory_restart = "60MB", memory_check_interval = "10s" }}
stop_timeout = "5s"
"""
        async with running(tmp_path, toml, clock=clock) as h:
            await h.reach("hog", "running")          # it printed "done": 120 MB are resident
            clock.advance(10.0)
            failing = await h.wait(lambda e: e.kind == "failing")
            assert failing.data["reason"] == "memory" and "max_memory_restart" in failing.message
            ex = await h.wait(lambda e: e.kind == "exit")
            assert ex.data["signal"] is None and ex.data["code"] == 0     # graceful: SIGTERM, clean exit
            await h.reach("hog", "backoff", start=h.events.index(ex))
            clock.advance(1.0)
            await h.wait(lambda e: e.kind == "spawn", start=h.events.index(ex))
    run(main, clock)


def test_cgroup_memory_limit_oom_is_reported(tmp_path: Path) -> None:
    async def main() -> None:
        toml = f"""
[services.hog]
command = {prog("memhog.py", "400", "hold")}
limits = {{ memory = "64MB" }}
restart = "never"
"""
        async with running(tmp_path, toml) as h:
            ev = await h.wait(lambda e: e.kind in ("exit", "limit_warning"))
            if ev.kind == "limit_warning":
                pytest.skip(f"no memory cgroup controller here: {ev.message}")
            assert ev.data["signal"] == "SIGKILL" and ev.data["reason"] == "oom", ev.message
            state = await h.reach("hog", "exited")
            assert "oom" in state.data["reason"]
    asyncio.run(main())


def test_cpu_limit_lands_in_a_cgroup(tmp_path: Path) -> None:
    async def main() -> None:
        toml = """
[services.c]
command = "sleep 60"
limits = { cpu = 0.25 }
"""
        async with running(tmp_path, toml) as h:
            await h.reach("c", "running")
            if h.find(lambda e: e.kind == "limit_warning"):
                pytest.skip("no cpu cgroup controller here")
            pid = h.sup.instances["c"].pid
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
            place = h.sup.limits.placements["c"]
            assert place.join
            for procs in place.join:
                members = Path(procs).read_text().split()
                assert str(pid) in members, (procs, lines)
            quota_files = [Path(p).with_name("cpu.cfs_quota_us") for p in place.join]
            quota = [f.read_text().strip() for f in quota_files if f.exists()]
            max_files = [Path(p).with_name("cpu.max") for p in place.join]
            quota += [f.read_text().split()[0] for f in max_files if f.exists()]
            assert "25000" in quota
    asyncio.run(main())
