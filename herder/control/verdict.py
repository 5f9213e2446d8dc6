"""`GET /v1/health/services` (`herder health`): is every critical service ready and healthy?

The answer a container engine's health check wants (a Dockerfile HEALTHCHECK, a
Kubernetes exec probe): the verdict of herder.core.critical over the World as it is now,
with one line per instance that is not there yet. Always a 200: an unhealthy deployment
is a fact to report, not a failed request (the CLI turns `ok` into its exit code). Also
says what herder is to the container (PID 1 …) and how many orphans it reaped, so the
duties of a container's init can be checked from outside.
"""

from __future__ import annotations

from typing import Any

from herder.control.server import Reply, Request
from herder.core.critical import verdict


async def services_health(req: Request) -> Reply:
    sup = req.control.sup
    v = verdict(sup.world)
    init = getattr(sup, "init", None)
    body: dict[str, Any] = {"ok": v.ok, "checked": list(v.checked), "problems": list(v.problems),
                            "critical": any(i.spec.critical for i in sup.instances.values()),
                            "init": init.describe() if init is not None else "",
                            "orphans_reaped": int(getattr(sup, "orphans_reaped", 0))}
    return Reply(200, body)
