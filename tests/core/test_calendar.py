"""Schedules in the pure core (herder.core.calendar) on the simulated clock: jobs on a
calendar, nightly restarts, overlap and missed-run policies, wall-clock steps, time zones
and daylight-saving changes (cronsim's Debian-cron rules)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from herder.config.model import Backoff, ServiceSpec
from herder.core import effects as fx
from herder.core.calendar import RECHECK, next_due
from herder.core.events import Command, Up, Verb, WallClock
from herder.testing.sim import Sim

JOB = ServiceSpec(command=("report",), schedule="0 3 * * *", timezone="UTC", restart="never", min_uptime=0.0)
WEB = ServiceSpec(command=("web",), restart_schedule="0 4 * * *", timezone="UTC", backoff=Backoff(jitter=0.0))


def at(*args: int, tz: str = "UTC") -> float:
    return datetime(*args, tzinfo=ZoneInfo(tz)).timestamp()    # type: ignore[misc]


def sim_at(wall: float, services: dict[str, ServiceSpec], **kw: object) -> Sim:
    sim = Sim(services, **kw)  # type: ignore[arg-type]
    sim.wall_offset = wall - sim.now
    return sim


def runs(sim: Sim, svc: str) -> list[str]:
    return [str(e.data["action"]) for e in sim.events if e.kind == "schedule" and e.data.get("service") == svc]


def spawns(sim: Sim, name: str) -> int:
    return sum(1 for e in sim.effects if isinstance(e, fx.Spawn) and e.name == name)


def test_a_job_runs_on_its_calendar_and_not_at_up() -> None:
    sim = sim_at(at(2025, 1, 1, 2, 0), {"report": JOB})
    sim.post(WallClock(sim.wall_offset))
    sim.post(Up())
    assert sim.state("report") == "stopped"
    sim.advance(3599)
    assert spawns(sim, "report") == 0
    sim.advance(2)
    assert spawns(sim, "report") == 1 and sim.state("report") == "running"
    assert runs(sim, "report") == ["run"]
    assert sim.records["report"] == pytest.approx(at(2025, 1, 1, 3, 0), abs=1)
    sim.exit("report", code=0)
    assert sim.state("report") == "exited" and sim.inst("report").completed
    sim.advance(86400)
    assert spawns(sim, "report") == 2          # the next night


def test_timers_are_never_armed_further_than_recheck_ahead() -> None:
    sim = sim_at(at(2025, 1, 1, 0, 0), {"report": JOB})
    sim.post(WallClock(sim.wall_offset))
    armed = [e for e in sim.effects if isinstance(e, fx.ArmTimer) and e.key.kind is fx.TimerKind.SCHEDULE]
    assert armed and all(e.at - sim.now <= RECHECK for e in armed)


def test_a_failed_run_is_not_retried_with_restart_never_and_the_next_run_starts_fresh() -> None:
    sim = sim_at(at(2025, 1, 1, 2, 59, 59), {"report": JOB})
    sim.post(WallClock(sim.wall_offset))
    sim.advance(2)
    sim.exit("report", code=4)
    assert sim.state("report") == "exited" and not sim.inst("report").completed
    sim.advance(86400)
    assert sim.state("report") == "running"


@pytest.mark.parametrize(("overlap", "expect"), [("skip", "skip"), ("queue", "queue"), ("replace", "replace")])
def test_overlap_policies(overlap: str, expect: str) -> None:
    sim = sim_at(at(2025, 1, 1, 2, 59, 59), {"report": dataclasses.replace(JOB, schedule="0 * * * *",
                                                                          overlap=overlap)})
    sim.post(WallClock(sim.wall_offset))
    sim.advance(2)
    first_pid = sim.inst("report").pid
    sim.advance(3600)                           # still running at the next hour
    assert runs(sim, "report") == ["run", expect]
    if overlap == "skip":
        assert sim.inst("report").pid == first_pid
    elif overlap == "queue":
        assert sim.inst("report").pid == first_pid
        sim.exit("report", code=0)
        assert sim.state("report") == "running" and runs(sim, "report")[-1] == "run"   # the queued run
    else:
        assert sim.inst("report").pid != first_pid and sim.state("report") == "running"


def test_a_held_job_is_skipped_until_started_by_hand() -> None:
    sim = sim_at(at(2025, 1, 1, 2, 59, 59), {"report": JOB})
    sim.post(WallClock(sim.wall_offset))
    sim.post(Command(Verb.STOP, ("report",)))
    sim.advance(2)
    assert runs(sim, "report") == ["skip"] and spawns(sim, "report") == 0
    sim.post(Command(Verb.START, ("report",)))          # run now, and release
    assert spawns(sim, "report") == 1
    sim.exit("report", code=0)
    sim.advance(86400)
    assert spawns(sim, "report") == 2


@pytest.mark.parametrize(("missed", "ran"), [("run", True), ("skip", False)])
def test_runs_missed_while_herder_was_down(missed: str, ran: bool) -> None:
    sim = sim_at(at(2025, 1, 3, 9, 0), {"report": dataclasses.replace(JOB, missed=missed)})
    sim.post(WallClock(sim.wall_offset, last=(("report", at(2025, 1, 1, 3, 0)),)))
    assert (spawns(sim, "report") == 1) is ran
    assert ("missed" in runs(sim, "report")) is ran
    assert sim.records["report"] == pytest.approx(sim.wall) if ran else "report" not in sim.records


def test_nothing_missed_when_herder_was_up_at_the_last_due_time_or_never_ran_before() -> None:
    sim = sim_at(at(2025, 1, 3, 2, 0), {"report": dataclasses.replace(JOB, missed="run")})
    sim.post(WallClock(sim.wall_offset, last=(("report", at(2025, 1, 2, 3, 0)),)))
    assert spawns(sim, "report") == 0
    first = sim_at(at(2025, 1, 3, 2, 0), {"report": dataclasses.replace(JOB, missed="run")})
    first.post(WallClock(first.wall_offset))
    assert spawns(first, "report") == 0 and first.records["report"] == pytest.approx(first.wall)   # a baseline


def test_restart_schedule_restarts_a_running_service_through_the_restart_path() -> None:
    sim = sim_at(at(2025, 1, 1, 3, 59, 0), {"web": WEB})
    sim.post(WallClock(sim.wall_offset))
    sim.post(Up())
    pid = sim.inst("web").pid
    sim.advance(61)
    assert sim.state("web") == "running" and sim.inst("web").pid != pid
    assert runs(sim, "web") == ["restart"]
    assert sim.inst("web").restarts == 1


def test_restart_schedule_is_rolling_for_replicas() -> None:
    sim = sim_at(at(2025, 1, 1, 3, 59, 0), {"web": dataclasses.replace(WEB, replicas=3)})
    sim.post(WallClock(sim.wall_offset))
    sim.post(Up())
    sim.advance(61)
    assert [e.message for e in sim.events if e.kind == "rolling"] == [
        "web.0: rolling restart 1/3", "web.1: rolling restart 2/3", "web.2: rolling restart 3/3"]


def test_restart_schedule_skips_a_stopped_service() -> None:
    sim = sim_at(at(2025, 1, 1, 3, 59, 0), {"web": WEB})
    sim.post(WallClock(sim.wall_offset))
    sim.advance(61)
    assert runs(sim, "web") == ["skip"] and spawns(sim, "web") == 0


def test_a_wall_clock_step_forward_runs_what_became_due_and_back_never_runs_early() -> None:
    sim = sim_at(at(2025, 1, 1, 1, 0), {"report": JOB})
    sim.post(WallClock(sim.wall_offset))
    sim.wall_offset += 2.5 * 3600                   # NTP steps the clock to 03:30
    sim.post(WallClock(sim.wall_offset))
    sim.advance(0.001)
    assert spawns(sim, "report") == 1
    sim.exit("report", code=0)
    back = sim_at(at(2025, 1, 1, 2, 59, 0), {"report": JOB})
    back.post(WallClock(back.wall_offset))
    back.wall_offset -= 3600                        # the clock goes back an hour: 01:59
    back.advance(RECHECK + 1)                       # the capped timer fires; not due on the wall clock
    assert spawns(back, "report") == 0
    back.post(WallClock(back.wall_offset))
    back.advance(3600)
    assert spawns(back, "report") == 1
    assert back.inst("report").started_at is not None
    assert back.wall == pytest.approx(at(2025, 1, 1, 3, 0), abs=RECHECK + 1)


def test_local_zone_and_dst_follow_debian_cron() -> None:
    paris = ZoneInfo("Europe/Paris")
    # spring forward 2025-03-30: 02:30 does not exist; it runs at the first minute after the gap
    due = next_due("30 2 * * *", paris, at(2025, 3, 30, 0, 0, tz="Europe/Paris"))
    assert datetime.fromtimestamp(due, paris).strftime("%m-%d %H:%M %Z") == "03-30 03:00 CEST"
    # fall back 2025-10-26: 02:30 happens twice; it runs once
    first = next_due("30 2 * * *", paris, at(2025, 10, 26, 0, 0, tz="Europe/Paris"))
    again = next_due("30 2 * * *", paris, first)
    assert datetime.fromtimestamp(again, paris).strftime("%m-%d %H:%M") == "10-27 02:30"
    # the machine's zone is the World's (injected), used when a service sets no timezone
    sim = sim_at(at(2025, 6, 1, 2, 59, tz="Europe/Paris"), {"report": dataclasses.replace(JOB, timezone=None)})
    sim.world.local_tz = paris
    sim.post(WallClock(sim.wall_offset))
    sim.advance(61)
    assert spawns(sim, "report") == 1
    assert "CEST" in next(e.message for e in sim.events if e.kind == "schedule")


def test_six_fields_and_shorthands() -> None:
    utc = UTC
    assert next_due("*/10 * * * * *", utc, at(2025, 1, 1, 0, 0, 1)) == at(2025, 1, 1, 0, 0, 10)
    assert next_due("@hourly", utc, at(2025, 1, 1, 0, 30)) == at(2025, 1, 1, 1, 0)
