"""Exports of the configs the pure tests use: the shop example and tests/export/configs/*."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from herder.config import load
from herder.export import Export, export

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONFIGS = {"shop": ROOT / "examples" / "shop" / "herder.toml", "full": HERE / "configs" / "full" / "herder.toml"}
TARGETS = ("compose", "swarm", "kubernetes", "systemd")


@cache
def exported(config: str, target: str) -> Export:
    return export(load(CONFIGS[config], check_accounts=False), target, image="shop:latest")


def normalised(config: str, text: str) -> str:
    """The config's folder (where the checkout is) as @BASE@, so golden files fit any checkout."""
    return text.replace(str(CONFIGS[config].parent), "@BASE@")
