"""Schedules with real processes on the virtual clock: a `schedule` job runs on its calendar
(each run a real process that completes), overlap = "skip" while a run still runs, the last
run remembered in the state directory, and `restart_schedule` restarting a long-running
service (a new pid) at the wall-clock time it names. The FakeClock's wall clock starts at
2025-01-01T00:00:00Z and autojumps, so a nightly restart takes no real time."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from herdertest import toml_list

from herder.config import load
from herder.testing import FakeClock, run
from herder.testing.harness import run_supervisor


def sh(script: str) -> str:
    return toml_list(["sh", "-c", script])


def wall_of(clock: FakeClock, at: float) -> datetime:
    return datetime.fromtimestamp(at + clock.wall() - clock.now(), UTC)


def test_a_scheduled_job_runs_on_its_calendar_and_is_remembered(make_config: Callable[..., Path],
                                                                tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cfg = load(make_config(f'''
        [services.report]
        command = {sh(f'echo "run $$" >> {runs}; echo reported')}
        schedule = "*/15 * * * *"
        timezone = "UTC"
        '''))
    clock = FakeClock(autojump=True)

    async def body() -> None:
        async with run_supervisor(cfg, clock=clock) as r:
            done = []
            for _ in range(2):
                ev = await r.wait_for(lambda e: e.instance == "report" and e.kind == "state"
                                      and e.data.get("to") == "exited", since=r.events.index(done[-1]) + 1
                                      if done else 0)
                done.append(ev)
            # every due time is an event at its quarter hour: a run, or (the virtual clock may
            # jump past a due time while a real run still runs) a skip under overlap = "skip"
            due = [(wall_of(clock, r.at[i]).strftime("%H:%M:%S"), e.data.get("action"))
                   for i, e in enumerate(r.events) if e.kind == "schedule"]
            quarters = [datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=15 * k) for k in range(1, len(due) + 1)]
            assert [t for t, _ in due] == [q.strftime("%H:%M:%S") for q in quarters]
            assert due[0][1] == "run" and {a for _, a in due} <= {"run", "skip"}
            assert len([a for _, a in due if a == "run"]) >= 2
            assert all(e.data.get("reason") == "completed" for e in done)

    run(body(), clock)
    assert len(runs.read_text().splitlines()) >= 2          # two real processes ran
    last = json.loads((tmp_path / ".herder" / "schedules.json").read_text())["last"]["report"]
    assert datetime.fromtimestamp(last, UTC).minute % 15 == 0


def test_overlap_skip_while_the_last_run_still_runs(make_config: Callable[..., Path]) -> None:
    cfg = load(make_config('''
        [services.slow]
        command = ["sleep", "1000"]
        schedule = "* * * * *"
        timezone = "UTC"
        overlap = "skip"
        '''))
    clock = FakeClock(autojump=True)

    async def body() -> None:
        async with run_supervisor(cfg, clock=clock) as r:
            await r.wait_state("slow", "running")
            skip = await r.wait_for(lambda e: e.kind == "schedule" and e.data.get("action") == "skip")
            assert 'overlap = "skip"' in skip.message and skip.data["reason"] == "overlap"
            assert len([e for e in r.events if e.kind == "spawn"]) == 1

    run(body(), clock)


def test_restart_schedule_restarts_a_running_service_at_its_time(make_config: Callable[..., Path]) -> None:
    cfg = load(make_config('''
        [services.web]
        command = ["sleep", "100000"]
        restart_schedule = "0 3 * * *"
        timezone = "UTC"
        '''))
    clock = FakeClock(autojump=True)

    async def body() -> None:
        async with run_supervisor(cfg, clock=clock) as r:
            await r.wait_state("web", "running")
            first = r.pid("web")
            ev = await r.wait_for(lambda e: e.kind == "schedule" and e.data.get("action") == "restart")
            assert wall_of(clock, r.at[r.events.index(ev)]).strftime("%Y-%m-%d %H:%M") == "2025-01-01 03:00"
            assert "restart_schedule" in ev.message
            spawn = await r.wait_for(lambda e: e.kind == "spawn" and e.instance == "web",
                                     since=r.events.index(ev))
            await r.wait_state("web", "running", since=r.events.index(spawn))
            assert r.pid("web") not in (None, first)

    run(body(), clock)
