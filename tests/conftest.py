"""Shared fixtures: config files in tmp dirs and the report socket of test programs."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "e2e"))

from ctl_harness import herd  # noqa: F401  (the fixture: real `herder up -d` supervisors)
from herdertest import PROGRAMS, Reporter


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a herder.toml (dedented) into a fresh dir; state_dir defaults into it."""

    def write(text: str, name: str = "herder.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("HERDER_CONFIG", "HERDER_SOCKET", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def reporter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reporter]:
    r = Reporter(tmp_path / "report.sock")
    monkeypatch.setenv("REPORT_SOCKET", str(r.path))
    monkeypatch.setenv("PYTHONPATH", str(PROGRAMS))
    yield r
    r.close()
