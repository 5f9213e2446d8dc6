"""The reload plan: what a new config changes, as a pure function of two configs.

`diff(old, new)` sorts every service into add / remove / restart (its definition
changed; the changed keys are named) / scale (only `replicas` changed between two
replicated definitions: instances are added or removed, the others keep running) /
unchanged (left alone: same pid). `settings` names changed [herder] keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from herder.config.model import ServiceSpec


@dataclass(frozen=True)
class Plan:
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    restart: dict[str, tuple[str, ...]] = field(default_factory=dict)   # service -> changed keys
    scale: dict[str, tuple[int, int]] = field(default_factory=dict)     # service -> (old, new) replicas
    unchanged: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.add or self.remove or self.restart or self.scale or self.settings)

    def as_dict(self) -> dict[str, Any]:
        return {"add": list(self.add), "remove": list(self.remove),
                "restart": {k: list(v) for k, v in self.restart.items()},
                "scale": {k: list(v) for k, v in self.scale.items()},
                "unchanged": list(self.unchanged), "settings": list(self.settings)}

    def lines(self) -> list[str]:
        out = [f"+ add      {s}" for s in self.add]
        out += [f"- remove   {s}" for s in self.remove]
        out += [f"~ restart  {s} (changed: {', '.join(keys)})" for s, keys in self.restart.items()]
        out += [f"~ scale    {s} ({a} -> {b} replicas; the others keep running)" for s, (a, b) in self.scale.items()]
        out += [f"  keep     {s}" for s in self.unchanged]
        out += [f"! settings {k}" for k in self.settings]
        if self.empty:
            out.append("nothing to change")
        return out


def changed_keys(a: Any, b: Any) -> tuple[str, ...]:
    return tuple(f.name for f in fields(a) if getattr(a, f.name) != getattr(b, f.name))


def diff(old: Mapping[str, ServiceSpec], new: Mapping[str, ServiceSpec],
         old_settings: Any = None, new_settings: Any = None) -> Plan:
    add = tuple(s for s in new if s not in old)
    remove = tuple(s for s in old if s not in new)
    restart: dict[str, tuple[str, ...]] = {}
    scale: dict[str, tuple[int, int]] = {}
    unchanged = []
    for s in old:
        if s not in new:
            continue
        keys = changed_keys(old[s], new[s])
        if not keys:
            unchanged.append(s)
        elif keys == ("replicas",) and old[s].replicas > 1 and new[s].replicas > 1:
            scale[s] = (old[s].replicas, new[s].replicas)
        else:
            restart[s] = keys
    settings = changed_keys(old_settings, new_settings) if old_settings is not None and new_settings is not None else ()
    return Plan(add, remove, restart, scale, tuple(unchanged), settings)
