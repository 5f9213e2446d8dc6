"""Which events become alerts, and when: pure code, no I/O, the time passed in.

Each condition of [alerts] `on` is raised by some event and, except the one-shot ones
(oom, adopted, spawn_failed, stop_timeout), cleared by another: `failed` and `exited` by
the instance running (or completing) again, `unhealthy` by `healthy`, `hook_failed` by
that hook succeeding, `restart_storm` (storm_restarts restarts within storm_window) by a
whole storm_window without a restart (`due` says when to call `tick`).

De-duplication: a condition already raised for an instance is not sent again until it
cleared; the same alert is sent at most once per `min_interval` (a flapping service), the
repeats counted into the next message. Rate limit: at most `max_per_hour` messages in all
(sliding hour); what is held back is counted into the next message that goes. A clear is
sent ("resolved") only for a raise that was sent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from herder.config.alerts import Alerts

ONE_SHOT = frozenset({"oom", "adopted", "spawn_failed", "stop_timeout"})
HOUR = 3600.0


@dataclass(frozen=True)
class Notice:
    """One message to send to every target."""

    condition: str
    instance: str                 # "" for herder itself
    title: str
    body: str
    resolved: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)


Key = tuple[str, str]             # (condition, instance or instance:hook)


class Policy:
    def __init__(self, cfg: Alerts, host: str = "") -> None:
        self.cfg = cfg
        self.host = host
        self.announced: dict[Key, float] = {}     # raised and sent: the time it was raised
        self.last_sent: dict[Key, float] = {}
        self.repeats: dict[Key, int] = {}          # raised again (or held back) since the last message
        self.restarts: dict[str, deque[float]] = {}
        self.storms: dict[str, float] = {}         # instance -> time of its last restart while in a storm
        self.sent: deque[float] = deque()
        self.held_back = 0

    # ---- events in ---------------------------------------------------------------------------------

    def observe(self, instance: str, kind: str, message: str, data: Mapping[str, Any], now: float) -> list[Notice]:
        """The notices one published event leads to."""
        out: list[Notice] = []
        if instance and self.cfg.services and instance.split(".")[0] not in self.cfg.services:
            return out
        to = data.get("to")
        if kind == "state" and to == "failed":
            out += self._raise("failed", instance, instance, message, data.get("reason") or message, now)
        elif kind == "state" and to == "exited" and data.get("reason") != "completed":
            out += self._raise("exited", instance, instance, message, data.get("reason") or message, now)
        elif kind == "state" and (to == "running" or (to == "exited" and data.get("reason") == "completed")):
            out += self._clear("failed", instance, f"{instance} is {to} again", now)
            out += self._clear("exited", instance, f"{instance} is {to} again", now)
        elif kind == "health" and data.get("health") == "unhealthy":
            out += self._raise("unhealthy", instance, instance, message, message, now)
        elif kind == "health" and data.get("health") == "healthy":
            out += self._clear("unhealthy", instance, f"{instance} is healthy again", now)
        elif kind == "exit" and data.get("reason") == "oom":
            out += self._raise("oom", instance, instance, message, message, now)
        elif (kind in ("adopted", "left_running") and not data.get("planned")) or \
                (kind == "supervisor" and data.get("left_running")):      # not after `herder upgrade`
            out += self._raise("adopted", instance, instance, message, message, now)
        elif kind in ("spawn_failed", "stop_timeout"):
            out += self._raise(kind, instance, instance, message, message, now)
        elif kind == "hook" and data.get("phase") == "end":
            key = f"{instance}:{data.get('hook')}"
            if data.get("ok"):
                out += self._clear("hook_failed", key, f"{instance}: the {data.get('hook')} hook succeeds again", now)
            else:
                tail = data.get("stderr_tail") or []
                detail = message + ("\n" + "\n".join(str(x) for x in tail[-5:]) if tail else "")
                out += self._raise("hook_failed", key, instance, message, detail, now)
        elif kind == "restart":
            out += self._restart(instance, message, now)
        return out

    def due(self) -> float | None:
        """When `tick` must be called next (a storm may end then)."""
        return min((t + self.cfg.storm_window for t in self.storms.values()), default=None)

    def tick(self, now: float) -> list[Notice]:
        out: list[Notice] = []
        for inst, last in list(self.storms.items()):
            if now >= last + self.cfg.storm_window:
                del self.storms[inst]
                out += self._clear("restart_storm", inst,
                                   f"{inst} ran {self.cfg.storm_window:g}s without a restart", now)
        return out

    # ---- conditions ----------------------------------------------------------------------------

    def _restart(self, instance: str, message: str, now: float) -> list[Notice]:
        times = self.restarts.setdefault(instance, deque())
        times.append(now)
        while times and times[0] <= now - self.cfg.storm_window:
            times.popleft()
        if instance in self.storms:
            self.storms[instance] = now
            return []
        if len(times) < self.cfg.storm_restarts:
            return []
        self.storms[instance] = now
        why = (f"{instance} restarted {len(times)} times within {self.cfg.storm_window:g}s "
               f"(storm_restarts = {self.cfg.storm_restarts}); last: {message}")
        return self._raise("restart_storm", instance, instance, why, why, now)

    def _raise(self, cond: str, key_name: str, instance: str, headline: str, body: Any,
               now: float) -> list[Notice]:
        if cond not in self.cfg.on:
            return []
        key = (cond, key_name)
        if key in self.announced and cond not in ONE_SHOT:
            self.repeats[key] = self.repeats.get(key, 0) + 1
            return []
        if now - self.last_sent.get(key, -1e18) < self.cfg.min_interval or not self._budget(now):
            self.repeats[key] = self.repeats.get(key, 0) + 1
            return []
        if cond not in ONE_SHOT:
            self.announced[key] = now
        return [self._notice(key, instance, f"{instance or 'herder'}: {cond}", str(body), False, now)]

    def _clear(self, cond: str, key_name: str, why: str, now: float) -> list[Notice]:
        key = (cond, key_name)
        since = self.announced.pop(key, None)
        if since is None or not self.cfg.resolved or cond not in self.cfg.on or not self._budget(now):
            return []
        instance = key_name.split(":")[0]
        return [self._notice(key, instance, f"{instance or 'herder'}: {cond} resolved",
                             f"{why} (after {now - since:.0f}s)", True, now)]

    def _budget(self, now: float) -> bool:
        while self.sent and self.sent[0] <= now - HOUR:
            self.sent.popleft()
        if len(self.sent) >= self.cfg.max_per_hour:
            self.held_back += 1
            return False
        return True

    def _notice(self, key: Key, instance: str, title: str, body: str, resolved: bool, now: float) -> Notice:
        self.sent.append(now)
        self.last_sent[key] = now
        notes = []
        repeats = self.repeats.pop(key, 0)
        if repeats:
            notes.append(f"{repeats} more like it since the last message")
        if self.held_back:
            notes.append(f"{self.held_back} other alert(s) held back by max_per_hour = {self.cfg.max_per_hour}")
            self.held_back = 0
        if notes:
            body += "\n(" + "; ".join(notes) + ")"
        if self.host:
            title = f"[{self.host}] {title}"
        return Notice(key[0], instance, title, body, resolved,
                      {"condition": key[0], "instance": instance, "resolved": resolved, "repeats": repeats})
