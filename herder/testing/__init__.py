"""Helpers for testing herder and programs run under it (shipped with the package).

`FakeClock` (manual or autojump virtual time) and `run(main, clock)` to run a coroutine
on a loop it drives; `run_supervisor` / `Running` (herder.testing.harness) for a real
supervisor in a test; `Sim` (herder.testing.sim) to drive the pure core without
processes.
"""

from herder.testing.clock import FakeClock, run

__all__ = ["FakeClock", "run"]
