"""Cron expressions as OnCalendar= (the timers of `herder export systemd`): the next runs
systemd computes (`systemd-analyze calendar`, the real parser) are the ones herder's cron
parser computes, for every form the conversion writes; and what OnCalendar= cannot say is
refused with the reason."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from export_cases import exported

from herder.config.lifecycle import cron_fields
from herder.export.oncalendar import Untranslatable, on_calendar

BASE = datetime(2025, 3, 28, 0, 0, 30, tzinfo=UTC)     # the Friday before Europe's spring-forward night
CASES = [("30 3 * * *", "Europe/Paris"), ("*/15 9-17 * jan-mar mon-fri", None), ("@daily", None),
         ("0 6 * * mon-fri", "America/New_York"), ("*/20 * * * * *", None), ("0 0 1 * *", None),
         ("0 0 * * 0,7", None), ("5 4 1-3,28 */2 *", "UTC"), ("@hourly", "Asia/Kolkata")]


def systemd_next(spec: str, n: int) -> list[datetime]:
    res = subprocess.run(["systemd-analyze", "calendar", f"--base-time={BASE:%Y-%m-%d %H:%M:%S} UTC",
                          f"--iterations={n}", spec], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "TZ": "UTC"})
    assert res.returncode == 0, res.stderr
    found = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", res.stdout)
    return [datetime.fromisoformat(t).replace(tzinfo=UTC) for t in found]


def cron_next(expr: str, zone: str | None, n: int) -> list[datetime]:
    from cronsim import CronSim

    it = CronSim(cron_fields(expr), BASE.astimezone(ZoneInfo(zone or "UTC")))
    return [next(it).astimezone(UTC) for _ in range(n)]


@pytest.mark.parametrize(("expr", "zone"), CASES)
def test_systemd_runs_it_when_herder_would(expr: str, zone: str | None) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    spec = on_calendar(expr, zone)
    if zone is None:     # herder's default is the host's zone; here both read TZ=UTC
        spec += " UTC"
    assert systemd_next(spec, 6) == cron_next(expr, zone, 6), spec


@pytest.mark.parametrize(("expr", "why"), [("0 0 1 * mon", "both day-of-month and day-of-week"),
                                           ("0 0 L * *", "L, W or #"), ("0 0 * * 5L", "L or #")])
def test_what_oncalendar_cannot_say_is_refused(expr: str, why: str) -> None:
    with pytest.raises(Untranslatable, match=why):
        on_calendar(expr)


def test_full_export_has_the_timers() -> None:
    result = exported("full", "systemd")
    files = result.files
    assert "OnCalendar=*-*-* 02:30:00 Europe/Berlin\n" in files["full-nightly.timer"]
    assert "Persistent=true\n" in files["full-nightly.timer"]
    assert "ExecStart=systemctl try-restart full-web.service\n" in files["full-web-restart.service"]
    assert "Unit=full-web-restart.service\n" in files["full-web-restart.timer"]
    target = files["full.target"]
    assert "Wants=full-nightly.timer\n" in target and "Wants=full-nightly.service\n" not in target
    overlap = result.report.find("nightly", "overlap")
    assert overlap is not None and overlap.status == "not carried"
