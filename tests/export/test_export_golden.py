"""Golden files: the shop example exported for every target, its report included.

A change in what herder writes shows up here as a diff to review. Regenerate with
HERDER_UPDATE_GOLDEN=1 after a deliberate change.
"""

from __future__ import annotations

import os

import pytest
from export_cases import HERE, TARGETS, exported, normalised

GOLDEN = HERE / "golden"


@pytest.mark.parametrize("target", TARGETS)
def test_shop_golden(target: str) -> None:
    files = exported("shop", target).files
    folder = GOLDEN / target
    if os.environ.get("HERDER_UPDATE_GOLDEN"):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, text in files.items():
            (folder / name).write_text(normalised("shop", text))
    assert sorted(files) == sorted(p.name for p in folder.iterdir())
    for name, text in files.items():
        assert normalised("shop", text) == (folder / name).read_text(), \
            f"{target}/{name} differs from the golden file (HERDER_UPDATE_GOLDEN=1 to accept)"
