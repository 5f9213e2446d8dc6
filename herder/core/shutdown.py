"""The shutdown phase: `down` (stop everything in reverse dependency order, then finish),
`force`, herder's own deadline, and how long an ordered stop can take.

Three inputs end here: SIGTERM, `herder down` and the first Ctrl+C (`Down`); a second
Ctrl+C (`Force`); and the exit policy of critical services (herder.core.critical), which
begins the same ordered stop with its own exit code and reason. The stop itself is the
reconcile's rule (herder.core.reconcile: an instance goes once nothing alive depends on
it); every instance gets its stop_signal, then SIGKILL at its own stop_timeout.

Why a stop budget: a container engine sends SIGTERM, waits its grace period, then
SIGKILLs herder and everything with it. Because each level of the dependency graph is
stopped together and each instance is killed at its stop_timeout, the ordered stop
cannot take longer than the heaviest dependency chain of stop_timeouts (plus the time a
SIGKILLed process needs to be reaped at each level, and herder's own exit). That sum is
the grace period `herder check --container` tells users to give the engine
(docs/container.md). A `completed` dependency is no link of such a chain: a dependent
starts only once the job has ended, so the two are never stopping at the same time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from herder.config import Config
from herder.core import effects as fx
from herder.core import graph, jobs
from herder.core.context import Ctx
from herder.core.effects import Kind, TimerKey, TimerKind
from herder.core.events import Kill
from herder.core.world import Phase

KILL_MARGIN = 0.5   # per level: from SIGKILL to the exit reaped and the next level signalled
EXIT_MARGIN = 1.0   # after the last instance stopped: logs flushed, journal closed, herder gone
FORCED = 1          # the exit code of a forced stop (second Ctrl+C, shutdown_timeout)


def begin(ctx: Ctx, code: int = 0, why: str = "") -> None:
    """Enter DOWN (once): answer every job, arm herder's deadline; the reconcile stops the
    instances. A non-zero `code` (the exit policy) becomes herder's exit code."""
    world = ctx.world
    if world.phase is not Phase.UP:
        return
    world.phase = Phase.DOWN
    if code:
        world.exit_code, world.exit_reason = code, why
    ctx.out.publish("", Kind.SUPERVISOR, "herder: stopping all services")
    jobs.cancel_all(ctx, "herder is stopping")
    key = TimerKey(TimerKind.SHUTDOWN)
    world.timers[key] = at = ctx.now + world.config.herder.shutdown_timeout
    ctx.out.add(fx.ArmTimer(key, at))


def force(ctx: Ctx) -> None:
    """SIGKILL to everything left now. The exit code becomes 1, unless the exit policy
    already set one (it says more: which critical service failed)."""
    world = ctx.world
    if world.phase is Phase.DONE:
        return
    if world.phase is Phase.UP:
        jobs.cancel_all(ctx, "herder is stopping")
    world.phase, world.forced = Phase.DOWN, True
    world.exit_code = world.exit_code or FORCED
    ctx.out.publish("", Kind.SUPERVISOR, "herder: forced stop: SIGKILL to everything left")
    for name in list(world.instances):
        ctx.apply(Kill(name))


def deadline(ctx: Ctx) -> None:
    """herder.shutdown_timeout passed during `down`."""
    world = ctx.world
    if world.phase is not Phase.DOWN or world.forced:
        return
    ctx.out.publish("", Kind.SUPERVISOR, f"herder: shutdown_timeout ({world.config.herder.shutdown_timeout:g}s) "
                    "reached; killing what is left")
    force(ctx)


def finished_message(code: int, why: str) -> str:
    """herder's last event: how it ends, and why when that is not a plain stop."""
    return f"herder: every service stopped; exit code {code}" + (f" ({why})" if why else "")


# ---- how long an ordered stop can take -------------------------------------------------------

@dataclass(frozen=True)
class StopBudget:
    seconds: float                 # the longest ordered stop, margins included
    chain: tuple[str, ...]         # the heaviest chain, dependents first
    capped: bool                   # shutdown_timeout ends it sooner (herder then kills what is left)

    @property
    def grace(self) -> int:
        """Whole seconds for the engine's grace period (`docker stop -t` takes an integer)."""
        return max(1, math.ceil(self.seconds - 1e-9))


def stop_budget(config: Config) -> StopBudget:
    services = config.services
    links = {s: [d for d, cond in spec.depends_on.items() if cond != "completed"] for s, spec in services.items()}
    total, chain = graph.heaviest_chain(links, lambda s: services[s].stop_timeout + KILL_MARGIN)
    natural = total + EXIT_MARGIN
    cap = config.herder.shutdown_timeout + KILL_MARGIN + EXIT_MARGIN
    return StopBudget(min(natural, cap), tuple(chain), cap < natural)
