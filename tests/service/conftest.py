from __future__ import annotations

from collections.abc import Iterator
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
