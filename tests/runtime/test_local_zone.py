"""The machine's zone for schedules (herder.runtime.calendar.local_zone) is found at its
first use, so a decision process without schedules never imports zoneinfo (issue 20,
memory). Standing in for the zone it finds, it must answer exactly as that zone does,
across both daylight-saving changes: the next run of cron expressions, the times shown,
the offsets."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from herder.core.calendar import next_due, show
from herder.runtime.calendar import local_zone

EXPRS = ["30 2 * * *", "0 * * * *", "*/10 * * * * *", "15 1-3 * * 0", "@daily"]


def instants() -> list[float]:
    out = []
    for change in (datetime(2025, 3, 30, 1, 0, tzinfo=UTC), datetime(2025, 10, 26, 0, 0, tzinfo=UTC)):
        out += [(change + timedelta(minutes=m)).timestamp() for m in range(-150, 150, 17)]
    return out


@pytest.mark.parametrize("name", ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "UTC"])
def test_answers_as_the_zone_it_stands_for(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("TZ", name)
    mine, real = local_zone(), ZoneInfo(name)
    for t in instants():
        assert show(t, mine) == show(t, real)
        a, b = datetime.fromtimestamp(t, mine), datetime.fromtimestamp(t, real)
        assert (a.replace(tzinfo=None), a.fold, a.utcoffset(), a.dst(), a.tzname()) == \
               (b.replace(tzinfo=None), b.fold, b.utcoffset(), b.dst(), b.tzname())
        assert a.timestamp() == t
        for expr in EXPRS:
            assert next_due(expr, mine, t) == next_due(expr, real, t), (expr, t)


def test_etc_localtime_when_tz_is_unset_or_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        with open("/etc/localtime", "rb") as f:
            real = ZoneInfo.from_file(f, key="localtime")
    except OSError:
        pytest.skip("this machine has no /etc/localtime")
    for tz in (None, "Nowhere/Atlantis"):
        if tz is None:
            monkeypatch.delenv("TZ", raising=False)
        else:
            monkeypatch.setenv("TZ", tz)
        zone = local_zone()
        for t in instants():
            assert datetime.fromtimestamp(t, zone).utcoffset() == datetime.fromtimestamp(t, real).utcoffset()


def test_zoneinfo_is_imported_at_the_first_use_only() -> None:
    code = ("import sys\nfrom datetime import datetime\nfrom herder.runtime.calendar import local_zone\n"
            "z = local_zone()\nbefore = 'zoneinfo' in sys.modules\ndatetime.now(z)\n"
            "print(before, 'zoneinfo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "True"], out
