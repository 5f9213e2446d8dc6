"""Handing a running keeper over to one its service manager just started (placeholder)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from herder.keeper.keeper import Keeper


def listen(k: Keeper) -> None:
    return None


def accept(k: Keeper) -> None:
    return None
