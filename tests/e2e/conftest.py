from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ctl_harness import Herd


@pytest.fixture
def herd() -> Iterator[Callable[..., Herd]]:
    """Make a Herd (config + state_dir); every supervisor started from one is stopped at the end."""
    made: list[Herd] = []

    def make(services: str, herder: str = "") -> Herd:
        h = Herd(services, herder)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
