"""Sending: one outbox per target, worked by one task, messages in order, each retried.

Nothing here runs on the supervision path: the alerts component only puts notices into a
bounded queue (a full queue drops the notice and says so once a minute). A worker sends
one message at a time to its target: apprise in a worker thread (its `notify` blocks), an
`exec:` target as a child reaped by the supervisor's reaper (herder.health.probes.exec_check,
the same path as exec probes). A failed attempt is retried after 1 s, 2 s, 4 s … (at most
5 min) on the injected clock, `retries` times; then the message is given up and an
`alert_failed` event says so. Each attempt is bounded by `timeout` (real time, like a probe).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from typing import Any

from herder.alerts.policy import Notice
from herder.alerts.targets import AppriseTarget, exec_argv, is_exec
from herder.config.alerts import Alerts
from herder.health.probes import WatchPid, exec_check
from herder.process import spawn as spawner
from herder.runtime.clock import Clock

QUEUE = 1000
MAX_DELAY = 300.0
Emit = Callable[[str, str, dict[str, Any]], None]     # (kind, message, data): an event on the bus


async def sleep_on(clock: Clock, seconds: float) -> None:
    """Sleep on the injected clock (virtual under herder.testing.FakeClock)."""
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    wake = clock.wake_at(clock.now() + seconds, lambda: None if fut.done() else fut.set_result(None))
    try:
        await fut
    finally:
        wake.cancel()


def alert_env(n: Notice) -> dict[str, str]:
    return {"HERDER_ALERT_TITLE": n.title, "HERDER_ALERT_BODY": n.body, "HERDER_ALERT_CONDITION": n.condition,
            "HERDER_ALERT_INSTANCE": n.instance, "HERDER_ALERT_RESOLVED": "1" if n.resolved else "0",
            "HERDER_ALERT_JSON": json.dumps({"title": n.title, "body": n.body, **n.data})}


async def run_command(argv: tuple[str, ...], env: dict[str, str], timeout: float, watch: WatchPid,
                      base_env: dict[str, str], name: str) -> str:
    """Run a command of herder's own (an exec: target, an on_event hook); "" on exit 0, else why."""
    launch = spawner.Launch(name, argv, {**base_env, **env}, None, None, None)
    ok, why = await exec_check(launch, timeout, watch)
    return "" if ok else why


class Outbox:
    def __init__(self, target: str, cfg: Alerts, clock: Clock, watch: WatchPid, base_env: dict[str, str],
                 emit: Emit) -> None:
        self.target, self.cfg, self.clock, self.watch, self.base_env, self.emit = \
            target, cfg, clock, watch, base_env, emit
        self.label = target.split()[0] if is_exec(target) else target.split("?")[0]
        self.queue: asyncio.Queue[Notice] = asyncio.Queue(QUEUE)
        self.dropped = 0
        self._dropped_said = -1e18
        self._apprise: AppriseTarget | None = None

    def put(self, n: Notice) -> None:
        try:
            self.queue.put_nowait(n)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.clock.now() - self._dropped_said >= 60.0:
                self._dropped_said = self.clock.now()
                self.emit("alert_failed", f"herder: alerts to {self.label} are {QUEUE} behind; dropped "
                          f"{self.dropped} so far", {"target": self.label, "dropped": self.dropped})

    async def work(self) -> None:
        while True:
            n = await self.queue.get()
            try:
                await self._deliver(n)
            finally:
                self.queue.task_done()

    async def _deliver(self, n: Notice) -> None:
        delay, why = 1.0, ""
        for attempt in range(1, self.cfg.retries + 2):
            why = await self._attempt(n)
            if not why:
                self.emit("alert", f"herder: alert sent to {self.label}: {n.title}",
                          {"target": self.label, "attempts": attempt, **n.data})
                return
            if attempt <= self.cfg.retries:
                await sleep_on(self.clock, delay)
                delay = min(MAX_DELAY, delay * 2)
        self.emit("alert_failed", f"herder: could not send the alert \"{n.title}\" to {self.label} after "
                  f"{self.cfg.retries + 1} attempt(s): {why}", {"target": self.label, "error": why, **n.data})

    async def _attempt(self, n: Notice) -> str:
        if is_exec(self.target):
            return await run_command(exec_argv(self.target), alert_env(n), self.cfg.timeout, self.watch,
                                     self.base_env, "alert")
        try:
            if self._apprise is None:
                self._apprise = AppriseTarget(self.target)
            async with asyncio.timeout(self.cfg.timeout + 5.0):    # apprise bounds its own requests too
                return await asyncio.to_thread(self._apprise.send, n.title, n.body, not n.resolved)
        except TimeoutError:
            return f"no answer within {self.cfg.timeout:g}s"
        except Exception as e:  # noqa: BLE001 - a plugin's bug is a failed delivery, never a crash
            return f"{type(e).__name__}: {e}"


async def flush(queues: list[asyncio.Queue[Any]], seconds: float) -> None:
    """Wait (bounded) until every queue's work is done: the last alerts and on_event hooks
    run before herder exits."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            for q in queues:
                await q.join()


def host_name() -> str:
    return os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")
