"""The effects of one step, collected as the rules run, with the small helpers every rule
uses: publish an event, move an instance to a state (publishing the `state` event), arm
and cancel an instance's timers (recorded in the instance, so a late timer is told from
a live one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from herder.core.effects import JSON, ArmTimer, CancelTimer, Effect, Kind, Publish, TimerKey, TimerKind
from herder.core.instance import Instance, State


class Out:
    def __init__(self, spread: Callable[[], float]) -> None:
        self.effects: list[Effect] = []
        self.spread = spread          # jitter source in [-1, 1], injected for determinism

    def add(self, *effects: Effect) -> None:
        self.effects.extend(effects)

    def publish(self, name: str, kind: Kind, message: str, data: Mapping[str, JSON] | None = None) -> None:
        """An event about the supervisor (name "") or one whose data is complete."""
        self.effects.append(Publish(name, kind, message, dict(data or {})))

    def note(self, inst: Instance, kind: Kind, message: str, data: Mapping[str, JSON] | None = None) -> None:
        """An event about an instance; its data carries the instance's state (stamped once
        the rule that made it has finished: see `stamp`)."""
        self.effects.append(Publish(inst.name, kind, message, {"state": inst.state.value, **(data or {})}))

    def stamp(self, inst: Instance, start: int) -> None:
        """Give the instance's events added since index `start` its state as the rule left it."""
        for i in range(start, len(self.effects)):
            eff = self.effects[i]
            if isinstance(eff, Publish) and eff.name == inst.name:
                self.effects[i] = Publish(eff.name, eff.kind, eff.message, {**eff.data, "state": inst.state.value})

    def move(self, inst: Instance, state: State, now: float, reason: str = "") -> None:
        old = inst.state
        inst.state, inst.since, inst.reason = state, now, reason
        if old is not state:
            self.note(inst, Kind.STATE,
                         f"{inst.name}: {old.value} -> {state.value}" + (f" ({reason})" if reason else ""),
                         {"from": old.value, "to": state.value, "reason": reason})

    def arm(self, inst: Instance, kind: TimerKind, at: float) -> None:
        inst.timers[kind] = at
        self.effects.append(ArmTimer(TimerKey(kind, inst.name), at))

    def cancel(self, inst: Instance, *kinds: TimerKind) -> None:
        for kind in kinds:
            if inst.timers.pop(kind, None) is not None:
                self.effects.append(CancelTimer(TimerKey(kind, inst.name)))
