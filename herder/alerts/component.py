"""The alerts component: [alerts] and [hooks] on_event, subscribed to the supervisor's events.

It lives as long as the supervisor (entered before the first service starts, left after
the last one stopped, with a bounded wait so the last alerts go out). For each published
event it asks the pure policy (herder.alerts.policy) what to send and hands the notices to
the outboxes (herder.alerts.deliver); it also hands every event of the kinds an on_event
hook names to that hook's queue, run one at a time in order. Nothing it does can block or
fail supervision: a subscriber only enqueues. Its own events (`alert`, `alert_failed`,
`on_event_failed`) are never fed back to the on_event hooks or the policy.

The [alerts] and [hooks] tables are read when herder starts; a reload keeps them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from herder.alerts.deliver import QUEUE, Outbox, flush, host_name, run_command
from herder.alerts.policy import Notice, Policy
from herder.config.alerts import OnEvent
from herder.health.probes import WatchPid
from herder.runtime.clock import Wakeup
from herder.runtime.events import Event
from herder.runtime.ports import Host

OWN = frozenset({"alert", "alert_failed", "on_event_failed"})
FLUSH = 5.0       # real seconds the last alerts get when herder stops


@dataclass
class _OnEvent:
    hook: OnEvent
    queue: asyncio.Queue[Event]
    dropped: int = 0


class AlertsComponent:
    def __init__(self, host: Host, watch: WatchPid, base_env: dict[str, str]) -> None:
        self.host = host
        self.watch = watch
        self.base_env = base_env
        cfg = host.config
        self.policy = Policy(cfg.alerts, host_name())
        self.boxes = [Outbox(t, cfg.alerts, host.clock, watch, base_env, self._emit) for t in cfg.alerts.targets]
        self.on_event = [_OnEvent(h, asyncio.Queue(QUEUE)) for h in cfg.hooks.on_event]
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._tick: Wakeup | None = None
        self._tick_at: float | None = None

    @staticmethod
    def wanted(host: Host) -> bool:
        return bool(host.config.alerts.targets or host.config.hooks.on_event)

    async def __aenter__(self) -> AlertsComponent:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(b.work(), name=f"alerts:{b.label}") for b in self.boxes]
        self._tasks += [loop.create_task(self._run_hooks(h), name=f"on_event:{h.hook.command[0]}")
                        for h in self.on_event]
        self._unsubscribe = self.host.events.subscribe(self._on_event)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._tick is not None:
            self._tick.cancel()
        await flush([b.queue for b in self.boxes] + [h.queue for h in self.on_event], FLUSH)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def replay(self, ev: Event) -> None:
        """An event published before the component listened (instances a previous herder left)."""
        self._on_event(ev)

    # ---- on the loop: only enqueue ----------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        if ev.kind in OWN:
            return
        now = self.host.clock.now()
        self._send(self.policy.observe(ev.instance, ev.kind, ev.message, ev.data, now))
        self._arm_tick()
        for h in self.on_event:
            if not h.hook.on or ev.kind in h.hook.on:
                try:
                    h.queue.put_nowait(ev)
                except asyncio.QueueFull:
                    h.dropped += 1

    def _send(self, notices: list[Notice]) -> None:
        for n in notices:
            for box in self.boxes:
                box.put(n)

    def _arm_tick(self) -> None:
        due = self.policy.due()
        if due == self._tick_at:
            return
        if self._tick is not None:
            self._tick.cancel()
        self._tick_at = due
        self._tick = None if due is None else self.host.clock.wake_at(due, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = self._tick_at = None
        self._send(self.policy.tick(self.host.clock.now()))
        self._arm_tick()

    def _emit(self, kind: str, message: str, data: dict[str, Any]) -> None:
        self.host.events.emit("", kind, message, data)

    # ---- on_event hooks ----------------------------------------------------------------------------

    async def _run_hooks(self, h: _OnEvent) -> None:
        while True:
            ev = await h.queue.get()
            try:
                await self._run_hook(h, ev)
            finally:
                h.queue.task_done()

    async def _run_hook(self, h: _OnEvent, ev: Event) -> None:
        env = {"HERDER_EVENT_KIND": ev.kind, "HERDER_EVENT_INSTANCE": ev.instance,
               "HERDER_EVENT_MESSAGE": ev.message, "HERDER_EVENT_JSON": json.dumps(ev.as_dict(), default=str)}
        why = await run_command(h.hook.command, env, h.hook.timeout, self.watch, self.base_env, "on_event")
        if why or h.dropped:
            extra = f"; {h.dropped} event(s) dropped (queue full)" if h.dropped else ""
            self._emit("on_event_failed", f"herder: on_event hook {h.hook.command[0]} for {ev.kind} event: "
                       f"{why or 'ok'}{extra}", {"command": list(h.hook.command), "event": ev.kind,
                                                  "error": why, "dropped": h.dropped})
            h.dropped = 0
