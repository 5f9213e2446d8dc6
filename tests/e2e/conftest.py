"""Fixtures of the CLI tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from herderproc import HerderProc


@pytest.fixture
def procs() -> Iterator[list[HerderProc]]:
    """`herder up` processes a test started (append them): SIGKILLed if still running at the end."""
    started: list[HerderProc] = []
    yield started
    for p in started:
        p.kill()
