"""[services.*.logs] keys: defaults, and every bad value reported with its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from herder.config import load
from herder.errors import ConfigError


def test_defaults_and_values(tmp_path: Path) -> None:
    p = tmp_path / "herder.toml"
    p.write_text('[defaults.logs]\nforward = ["journald"]\n[services.a]\ncommand = "true"\n'
                 '[services.a.logs]\nmax_size = "1MB"\nrotate_every = "1h"\non_overflow = "drop"\nformat = "json"\n')
    logs = load(p).services["a"].logs
    assert (logs.max_size, logs.rotate_every, logs.on_overflow, logs.format) == (1 << 20, 3600.0, "drop", "json")
    assert logs.forward == ("journald",) and logs.timestamps is True and logs.stderr == "merge"


def test_bad_values_are_all_reported(tmp_path: Path) -> None:
    p = tmp_path / "herder.toml"
    p.write_text('[services.a]\ncommand = "true"\n[services.a.logs]\nformat = "xml"\nforward = ["kafka"]\n'
                 'on_overflow = "wait"\nstdout = ""\nforward2 = 1\n')
    with pytest.raises(ConfigError) as e:
        load(p)
    text = "\n".join(e.value.problems)
    for key in ("logs.format", "logs.forward", "logs.on_overflow", "logs.stdout", "logs.forward2"):
        assert f"services.a.{key}:" in text
    assert "syslog:HOST:PORT" in text
