"""Readiness checks, liveness probes, the watchdog and `bind`, with real servers.

The tests of timing logic (probe intervals, thresholds, ready timeouts, backoff, the
watchdog) run on the autojump FakeClock: their deadlines are minutes long and cost
nothing, and their outcome does not depend on how loaded the machine is. Readiness
checks there have ready.timeout = "0s" (wait for ever): under autojump every armed
deadline fires as soon as the loop waits for the outside world.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from health_harness import PY, free_port, prog, run, running

from herder.testing import FakeClock


def test_http_health_failing_restarts_after_threshold_intervals(tmp_path: Path) -> None:
    port, broken = free_port(), tmp_path / "broken"
    clock = FakeClock(autojump=True)

    async def main() -> None:
        toml = f"""
[services.web]
command = {prog("flaky_http.py", str(port), str(broken))}
ready = {{ http = "http://127.0.0.1:{port}/health", timeout = "0s", interval = "1s" }}
health = {{ http = "http://127.0.0.1:{port}/health", interval = "60s", timeout = "2s", failure_threshold = 3 }}
"""
        async with running(tmp_path, toml, clock=clock) as h:
            await h.wait(lambda e: e.kind == "health" and e.data["health"] == "healthy")
            broken.touch()
            t0 = clock.now()
            failing = await h.wait(lambda e: e.kind == "failing")
            assert failing.data["reason"] == "health" and "3 consecutive" in failing.message
            assert "HTTP 500" in failing.message
            # the probe after the healthy one, then two more, an interval apart (virtual time)
            assert 120.0 <= clock.now() - t0 <= 180.0
            unhealthy = h.find(lambda e: e.kind == "health" and e.data["health"] == "unhealthy")
            assert unhealthy is not None
            broken.unlink()
            n = len(h.events)
            await h.wait(lambda e: e.kind == "spawn", start=n)
            await h.wait(lambda e: e.kind == "health" and e.data["health"] == "healthy", start=n)
            assert h.sup.instances["web"].restarts == 1
    run(main, clock)


def test_action_none_only_records(tmp_path: Path) -> None:
    port, broken = free_port(), tmp_path / "broken"
    broken.touch()
    clock = FakeClock(autojump=True)

    async def main() -> None:
        toml = f"""
[services.web]
command = {prog("flaky_http.py", str(port), str(broken))}
ready = {{ tcp = "127.0.0.1:{port}", timeout = "0s", interval = "1s" }}
health = {{ http = "http://127.0.0.1:{port}/", interval = "30s", failure_threshold = 2, action = "none" }}
"""
        async with running(tmp_path, toml, clock=clock) as h:
            await h.wait(lambda e: e.kind == "health" and e.data["health"] == "unhealthy")
            assert h.sup.status(["web"])[0]["health"] == "unhealthy"
            broken.unlink()
            await h.wait(lambda e: e.kind == "health" and e.data["health"] == "healthy")
            assert h.find(lambda e: e.kind == "failing") is None
            assert h.sup.instances["web"].state.value == "running"
    run(main, clock)


def test_never_ready_is_a_failed_start_with_backoff_then_failed(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)

    async def main() -> None:
        toml = """
[services.stuck]
command = "sleep 60"
ready = { notify = true, timeout = "30s" }
backoff = { initial = "5s", jitter = 0.0 }
start_limit = { burst = 2, interval = "10m" }
stop_timeout = "5s"
"""
        async with running(tmp_path, toml, clock=clock) as h:
            t0 = clock.now()
            failed = await h.reach("stuck", "failed")
            fails = [e for e in h.events if e.kind == "failing"]
            assert len(fails) == 3 and all(e.data["reason"] == "ready_timeout" for e in fails)
            restarts = [e for e in h.events if e.kind == "restart"]
            assert [e.data["delay"] for e in restarts] == [5.0, 10.0]
            assert "ready_timeout" in failed.data["reason"]
            assert "ready.timeout" in fails[0].message
            # three ready timeouts and two backoff delays; each stop takes at most its stop_timeout
            assert 3 * 30 + 5 + 10 <= clock.now() - t0 <= 3 * 30 + 5 + 10 + 3 * 5
    run(main, clock)


def test_exec_readiness_and_exec_health_go_through_the_reaper(tmp_path: Path) -> None:
    flag = tmp_path / "ready"

    async def main() -> None:
        toml = f"""
[services.job]
command = ["/bin/sh", "-c", "touch {flag}; exec sleep 60"]
ready = {{ exec = ["test", "-e", "{flag}"], timeout = "20s", interval = "50ms" }}
health = {{ exec = ["{PY}", "-c", "import sys; sys.exit(0)"], interval = "100ms", success_threshold = 2 }}
"""
        async with running(tmp_path, toml) as h:
            await h.reach("job", "running")
            await h.wait(lambda e: e.kind == "health" and e.data["health"] == "healthy")
            assert h.sup.orphans_reaped == 0      # probe exits were routed, not counted as orphans
            assert h.sup.procs.helpers() == 0      # and nothing is left waiting
    asyncio.run(main())


def test_exec_probe_timeout_kills_the_probe(tmp_path: Path) -> None:
    async def main() -> None:
        toml = """
[services.s]
command = "sleep 60"
health = { exec = ["sleep", "30"], timeout = "200ms", interval = "100ms", failure_threshold = 1, action = "none" }
"""
        async with running(tmp_path, toml) as h:
            ev = await h.wait(lambda e: e.kind == "health" and e.data["health"] == "unhealthy")
            assert "took longer than 0.2s" in ev.message
            assert h.sup.procs.helpers() == 0  # the killed probe was reaped
    asyncio.run(main())


def test_log_readiness(tmp_path: Path) -> None:
    async def main() -> None:
        toml = f"""
[services.app]
command = {prog("notifier.py", "print:booting", "print:INFO: Application startup complete.")}
ready = {{ log = "Application startup complete", timeout = "20s", interval = "50ms" }}
"""
        async with running(tmp_path, toml) as h:
            await h.reach("app", "running")
            ev = h.find(lambda e: e.kind == "ready_check")
            assert ev is not None and "Application startup complete" in ev.message
    asyncio.run(main())


def test_dependents_on_healthy_start_only_after_it(tmp_path: Path) -> None:
    port, broken = free_port(), tmp_path / "broken"
    clock = FakeClock(autojump=True)

    async def main() -> None:
        toml = f"""
[services.db]
command = {prog("flaky_http.py", str(port), str(broken))}
ready = {{ tcp = "127.0.0.1:{port}", timeout = "0s", interval = "1s" }}
health = {{ http = "http://127.0.0.1:{port}/", interval = "10s", initial_delay = "30s", success_threshold = 2 }}
[services.api]
command = "sleep 60"
depends_on = {{ db = "healthy" }}
"""
        async with running(tmp_path, toml, clock=clock) as h:
            await h.reach("db", "running")
            healthy = await h.wait(lambda e: e.instance == "db" and e.kind == "health"
                                   and e.data["health"] == "healthy")
            spawn = await h.wait(lambda e: e.instance == "api" and e.kind == "spawn")
            assert h.events.index(spawn) > h.events.index(healthy)
            assert h.find(lambda e: e.instance == "api" and e.kind == "waiting") is not None
    run(main, clock)


def test_dependents_keep_running_when_a_dependency_restarts_unless_bound(tmp_path: Path) -> None:
    async def main() -> None:
        toml = """
[services.db]
command = "sleep 60"
[services.loose]
command = "sleep 60"
depends_on = { db = "ready" }
[services.bound]
command = "sleep 60"
depends_on = { db = "ready" }
bind = true
"""
        async with running(tmp_path, toml) as h:
            for n in ("db", "loose", "bound"):
                await h.reach(n, "running")
            loose_pid, bound_pid = h.sup.instances["loose"].pid, h.sup.instances["bound"].pid
            n0 = len(h.events)
            h.sup.restart(["db"])
            await h.wait(lambda e: e.instance == "bound" and e.kind == "bind", start=n0)
            await h.wait(lambda e: e.instance == "bound" and e.kind == "spawn", start=n0)
            await h.reach("bound", "running", start=n0)
            assert h.sup.instances["bound"].pid != bound_pid
            assert h.sup.instances["loose"].pid == loose_pid
            db_running = h.find(lambda e: e.instance == "db" and e.kind == "state" and e.data["to"] == "running", n0)
            bound_spawn = h.find(lambda e: e.instance == "bound" and e.kind == "spawn", n0)
            assert db_running is not None and bound_spawn is not None
            assert h.events.index(bound_spawn) > h.events.index(db_running)   # it waited for db again
    asyncio.run(main())


def test_watchdog_missed_restarts_with_its_own_reason(tmp_path: Path) -> None:
    clock = FakeClock()      # moved by hand: the watchdog is armed at the spawn, before READY=1

    async def main() -> None:
        toml = f"""
[services.w]
command = {prog("notifier.py", "send:READY=1")}
ready = {{ notify = true, timeout = "0s" }}
health = {{ watchdog = "1m" }}
"""
        async with running(tmp_path, toml, clock=clock) as h:
            await h.reach("w", "running")
            clock.advance(59.0)
            assert h.find(lambda e: e.kind == "failing") is None
            clock.advance(1.0)                       # 60 s after the spawn, as systemd does
            failing = await h.wait(lambda e: e.kind == "failing")
            assert failing.data["reason"] == "watchdog"
            unhealthy = h.find(lambda e: e.kind == "health" and e.data["health"] == "unhealthy")
            assert unhealthy is not None and unhealthy.data["reason"] == "watchdog"
            await h.reach("w", "backoff", start=h.events.index(failing))
            clock.advance(1.0)
            await h.wait(lambda e: e.kind == "spawn", start=h.events.index(failing))
    run(main, clock)


def test_watchdog_trigger(tmp_path: Path) -> None:
    async def main() -> None:
        toml = f"""
[services.w]
command = {prog("notifier.py", "send:READY=1", "send:WATCHDOG=trigger")}
ready = {{ notify = true, timeout = "20s" }}
health = {{ watchdog = "60s" }}
"""
        async with running(tmp_path, toml) as h:
            failing = await h.wait(lambda e: e.kind == "failing")
            assert failing.data["reason"] == "watchdog" and "WATCHDOG=trigger" in failing.message
    asyncio.run(main())
