"""The real-engine tier: one private dockerd for the whole session (tests/engines/dockerd.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dockerd import Dockerd, open_dockerd
from shop_example import IMAGE, SHOP


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    with open_dockerd() as d:
        yield d


@pytest.fixture(scope="session")
def shop_image(dockerd: Dockerd) -> str:
    """examples/shop built with its own Dockerfile, FROM the local Debian base image."""
    return dockerd.build(SHOP, IMAGE, BASE=dockerd.base_image())
