from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from svc_harness import Child, NotifySocket


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Children a test starts; any still running at the end are killed (by pid)."""
    started: list[Child] = []
    yield started
    for child in started:
        if child.proc.returncode is None:
            child.kill()


@pytest.fixture
def spawn(children: list[Child]) -> Callable[..., Child]:
    """Start a Python program as a child that is cleaned up after the test."""

    def start(script: Path, env: dict[str, str], *args: str, **popen: object) -> Child:
        child = Child.python(script, env, *args, **popen)
        children.append(child)
        return child

    return start
