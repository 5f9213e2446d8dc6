"""Which queued events the supervisor steps together, and in which order their effects go.

Why: a stop-all of 200 services that ignore SIGTERM ends with 200 stop timeouts falling
due in the same instant, then 200 exits. Stepped one at a time, each cost a step, a state
record to the keeper, then its effects (the SIGKILL, then the event's report to
herder.log, the console and the API) before the next was stepped: the last SIGKILL went
out ~135 ms after the first (issue 20, measured with timestamps in both processes).
Stepped together, the steps run one after the other (pure, in order, on the same World),
one state record covers them all (it still goes to the keeper before any of their
effects: the write-ahead rule of docs/supervisor.md), then their effects are carried out,
the signals and kills first, in order, then the rest in order.

Why that is the same as stepping them one at a time. The core sees the same events in the
same order, so it decides the same. What differs is only that an effect may be carried
out after a later event of the batch was stepped, so a batch takes only events that
cannot make an earlier effect mean something else:

- only an instance's own timer (stop timeout, backoff, ready timeout …) or its main
  process's exit; anything else (an operator's command, `down`, a spawn's answer, a job's
  deadline) is stepped alone, as before;
- never an event for an instance that an earlier step of the batch touched (its event or
  any of its effects named it): what an effect reads of its instance (its pid, its
  process group) is only changed by that instance's own events;
- nothing after a step that spawns: nothing may be stepped between a spawn and its answer
  (herder.runtime.processes), so the batch ends with it.

Signals first: an effect that signals processes is carried out at the time it was
decided, not one report later per instance (a report is a line for herder.log, the
console and the API, ~0.2 ms each here). Within one instance the order is kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from herder.core import effects as fx
from herder.core.events import Event, Exited, TimerFired

_SIGNALS = (fx.Signal, fx.Kill, fx.KillLeftovers)

Step = Callable[[Event], list[fx.Effect]]     # the core's step of one event, at the time of the drain


def take(queue: deque[Event], step: Step) -> tuple[list[Event], list[fx.Effect]]:
    """Step the first event of `queue`, then the ones after it that may be stepped with it;
    they leave the queue. Returns the events stepped and all their effects, in order."""
    ev = queue.popleft()
    evs, effects = [ev], step(ev)
    name = instance_of(ev)
    if name is None or spawns(effects):
        return evs, effects
    seen = touched(effects) | {name}
    while queue:
        name = instance_of(queue[0])
        if name is None or name in seen:
            break
        ev = queue.popleft()
        more = step(ev)
        evs.append(ev)
        effects += more
        if spawns(more):
            break
        seen |= touched(more) | {name}
    return evs, effects


def instance_of(ev: Event) -> str | None:
    """The instance a batchable event is about (None: the event is stepped alone)."""
    if isinstance(ev, Exited):
        return ev.name
    if isinstance(ev, TimerFired):
        owner = ev.key.owner
        return owner if owner and not owner.startswith(("#", "@")) else None
    return None


def touched(effects: Iterable[fx.Effect]) -> set[str]:
    """The instances these effects name (a timer's owner, an effect's instance)."""
    out: set[str] = set()
    for eff in effects:
        key = getattr(eff, "key", None)
        name = key.owner if isinstance(key, fx.TimerKey) else getattr(eff, "name", "")
        if isinstance(name, str) and name:
            out.add(name)
    return out


def spawns(effects: Iterable[fx.Effect]) -> bool:
    return any(isinstance(eff, fx.Spawn) for eff in effects)


def signals_first(effects: list[fx.Effect]) -> list[fx.Effect]:
    """The effects of a batch: those that signal processes first, each part in its order."""
    first = [eff for eff in effects if isinstance(eff, _SIGNALS)]
    if not first or len(first) == len(effects):
        return effects
    return first + [eff for eff in effects if not isinstance(eff, _SIGNALS)]
