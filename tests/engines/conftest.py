"""The real-engine tier: one private dockerd for this package's tests (tests/engines/dockerd.py).

Package scope (this folder is a package for that reason): the daemon stops once the last
test here has run, not at the end of the whole session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from shop_example import IMAGE, SHOP

from engines.dockerd import Dockerd, open_dockerd


@pytest.fixture(scope="package")
def dockerd() -> Iterator[Dockerd]:
    with open_dockerd() as d:
        yield d


@pytest.fixture(scope="package")
def shop_image(dockerd: Dockerd) -> str:
    """examples/shop built with its own Dockerfile, FROM the local Debian base image."""
    return dockerd.build(SHOP, IMAGE, BASE=dockerd.base_image())
