"""Hooks with real processes: order around the service's process, the service's cwd and
environment, output in the service's log marked `[hook NAME]`, a failing pre_start as a
failed start with its stderr in the event, a hanging hook killed at its (virtual) timeout,
a pre_stop that sees the service still alive, and nothing left running afterwards."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from herdertest import alive, toml_list, until

from herder.config import load
from herder.testing import FakeClock, run
from herder.testing.harness import run_supervisor


def sh(script: str) -> str:
    return toml_list(["sh", "-c", script])


def test_hooks_run_in_order_with_the_service_environment_and_log(make_config: Callable[..., Path],
                                                                  tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    work = tmp_path / "work"
    work.mkdir()
    cfg = load(make_config(f'''
        [services.web]
        command = {sh(f'echo $$ > pid; echo "web $MYVAR" >> {trace}; echo serving; exec sleep 1000')}
        cwd = "work"
        env = {{ MYVAR = "v1" }}
        stop_timeout = "5s"
        [services.web.hooks]
        pre_start = {sh(f'echo "pre_start $HERDER_HOOK $MYVAR $PWD" >> {trace}; echo migrating; echo oops >&2')}
        post_start = {sh(f'echo post_start >> {trace}')}
        pre_stop = {sh(f'kill -0 $(cat pid) && echo "pre_stop alive" >> {trace}')}
        post_stop = {sh(f'kill -0 $(cat pid) 2>/dev/null || echo "post_stop gone" >> {trace}')}
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            await r.wait_state("web", "running")
            r.sup.stop(["web"])
            await r.wait_state("web", "stopped")
            hooks = [(e.data["hook"], e.data["phase"], e.data.get("ok")) for e in r.events if e.kind == "hook"]
            assert hooks == [(h, p, ok) for h in ("pre_start", "post_start", "pre_stop", "post_stop")
                             for p, ok in (("start", None), ("end", True))]
            kinds = [e.kind for e in r.events if e.instance == "web" and e.kind in ("hook", "spawn", "exit")]
            assert kinds == ["hook", "hook", "spawn", "hook", "hook", "hook", "hook", "exit", "hook", "hook"]

    run(body())
    assert trace.read_text().splitlines() == [
        f"pre_start pre_start v1 {work}", "web v1", "post_start", "pre_stop alive", "post_stop gone"]
    log = (tmp_path / ".herder" / "logs" / "web.log").read_text()
    assert "[hook pre_start] migrating" in log and "[hook pre_start] oops" in log and "serving" in log
    assert "[hook" not in next(line for line in log.splitlines() if "serving" in line)


def test_a_failing_pre_start_is_a_failed_start_with_its_stderr(make_config: Callable[..., Path]) -> None:
    cfg = load(make_config(f'''
        [services.web]
        command = ["sleep", "1000"]
        backoff = {{ initial = "0s", jitter = 0.0 }}
        start_limit = {{ burst = 2, interval = "1h" }}
        [services.web.hooks]
        pre_start = {sh('echo "database is not reachable" >&2; exit 3')}
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            await r.wait_state("web", "failed")
            assert not [e for e in r.events if e.kind == "spawn"]
            ends = [e for e in r.events if e.kind == "hook" and e.data["phase"] == "end"]
            assert len(ends) == 3 and all(not e.data["ok"] and e.data["code"] == 3 for e in ends)
            assert ends[0].data["stderr_tail"] == ["database is not reachable"]
            assert "pre_start hook exited" not in ends[0].message and "exit 3" in ends[0].message
            reason = r.sup.instances["web"].reason
            assert "3 failed starts" in reason and "last: pre_start hook exit 3" in reason

    run(body())


def test_a_hanging_hook_is_killed_at_its_virtual_timeout_with_what_it_started(make_config: Callable[..., Path],
                                                                             tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    cfg = load(make_config(f'''
        [services.web]
        command = ["sleep", "1000"]
        backoff = {{ initial = "1h" }}
        [services.web.hooks]
        pre_start = {{ command = {sh(f'sleep 1000 & echo $! > {pids}; trap "" TERM; wait')}, timeout = "45s" }}
        '''))
    clock = FakeClock()        # moved by hand: first the hook must have started its child

    async def body() -> None:
        async with run_supervisor(cfg, clock=clock) as r:
            t0 = clock.now()
            await until(lambda: pids.exists() and pids.read_text().strip() != "", what="the hook's child")
            child = int(pids.read_text())
            clock.advance(44.9)
            assert r.find(lambda e: e.kind == "hook" and e.data["phase"] == "end") is None
            clock.advance(0.2)
            ev = await r.wait_for(lambda e: e.kind == "hook" and e.data["phase"] == "end")
            assert ev.data["signal"] == "SIGKILL" and "timed out after 45s" in ev.message
            assert r.at[r.events.index(ev)] - t0 >= 45.0
            await r.wait_state("web", "backoff")
            await until(lambda: not alive(child), what="the hook's child killed with its group")

    run(body(), clock)


def test_down_stops_a_running_pre_start_and_nothing_is_left(make_config: Callable[..., Path],
                                                          tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    cfg = load(make_config(f'''
        [services.web]
        command = ["sleep", "1000"]
        stop_timeout = "2s"
        [services.web.hooks]
        pre_start = {sh(f'echo $$ > {pids}; exec sleep 1000')}
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            await r.wait_for(lambda e: e.kind == "hook")
            await until(lambda: pids.exists() and pids.read_text().strip() != "", what="the hook's pid")
            r.sup.stop(["web"])
            await r.wait_state("web", "stopped")
            end = r.find(lambda e: e.kind == "hook" and e.data["phase"] == "end")
            assert end is not None and end.data["signal"] == "SIGTERM" and "stopped" in end.message
            assert not [e for e in r.events if e.kind == "spawn"]

    run(body())
    assert not alive(int(pids.read_text()))
