"""The Windows tier's machine: one fresh Wine prefix and boot per test module.

Per module, not per session: nothing a module leaves behind (services, records, a
persistent wineserver, the SCM agent, a child of this process) outlives it into the rest
of the suite, and each module starts from the cached prefix (2-4 s).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wine_harness import WindowsMachine, close_machine, open_machine


@pytest.fixture(scope="module")
def windows() -> Iterator[WindowsMachine]:
    machine, why = open_machine()
    if machine is None:
        pytest.skip(why)
    try:
        yield machine
    finally:
        close_machine(machine)
