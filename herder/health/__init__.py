"""Health: readiness, liveness probes, the watchdog, sd_notify for children, limits.

`install(supervisor)` adds the component; see docs/health.md for the semantics.
"""

from herder.health.monitor import Health, install

__all__ = ["Health", "install"]
