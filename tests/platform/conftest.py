"""The Windows tier's machine, shared by its test modules (one Wine boot per session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wine_harness import WindowsMachine, close_machine, open_machine


@pytest.fixture(scope="session")
def windows() -> Iterator[WindowsMachine]:
    machine, why = open_machine()
    if machine is None:
        pytest.skip(why)
    try:
        yield machine
    finally:
        close_machine(machine)
