"""Helpers for testing herder and programs run under it (shipped with the package)."""

from herder.testing.clock import FakeClock

__all__ = ["FakeClock"]
