"""Shared fixtures: config files in tmp dirs and the report socket of test programs."""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "e2e"))

from ctl_harness import herd  # noqa: F401  (the fixture: real `herder up -d` supervisors)
from herdertest import PROGRAMS, Reporter

# `make test` runs the suite on two workers (pytest-xdist); the tests mostly
# wait on real processes, so the two share the machine's 2 cores well (16 → ~9 min). A unit of
# work is one test file, so a module's fixtures are set up once; files that share one machine-wide
# resource form one unit, run by one worker in order: the private dockerd of tests/engines (a
# package fixture), the one Wine prefix and its SCM, the nspawn container. The longest units go
# first (measured durations), so no worker is left with a long one at the end.
_SHARED = (
    (re.compile(r"tests/engines/"), "engines"),
    (re.compile(r"tests/platform/(test_windows_|test_install_wine|test_install_windows)"), "wine"),
    (re.compile(r"tests/platform/.*nspawn"), "nspawn"),
)
_LONGEST_FIRST = ("tests/bench/", "@engines", "@wine", "tests/e2e/test_survive.py", "tests/e2e/test_hardening_state",
                  "tests/e2e/test_survive_upgrade", "tests/e2e/test_operator_cli", "tests/e2e/test_survive_crash",
                  "@nspawn", "tests/e2e/test_client_truth", "tests/e2e/test_control_api")


def _unit(path: str) -> str:
    for pattern, group in _SHARED:
        if pattern.match(path):
            return "@" + group
    return path


def _rank(unit: str) -> int:
    return next((i for i, prefix in enumerate(_LONGEST_FIRST) if unit.startswith(prefix)), len(_LONGEST_FIRST))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scheduler, with a unit of work per test file or shared resource (xdist's own
    `--dist loadgroup` marks do not reach its scheduler under pytest 9: it renames `_nodeid`,
    which pytest 9 no longer reads)."""
    from xdist.scheduler import LoadScopeScheduling

    class Units(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid.split("::", 1)[0])

    return Units(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist only: the longest units first (a stable sort: the order inside a file is kept)."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: _rank(_unit(item.nodeid.split("::", 1)[0])))


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
