"""herder reporting upward, to the service manager that runs herder itself.

When systemd starts herder as a ``Type=notify`` unit (``herder install``), it waits for
READY=1 before it calls the unit started, and kills herder if WATCHDOG=1 stops arriving.
This component tells it: READY=1 once every instance herder was asked to start is
running (ready) or has settled as failed/exited, a one-line STATUS= whenever the counts
change, WATCHDOG=1 from a loop timer (so a stuck loop stops the pings, which is the
point), and STOPPING=1 as soon as herder begins its ordered shutdown.

It speaks through the library's sd_notify client (``herder.service._notify``), and any
object with the same four methods can stand in: the Windows service host passes the
SCM context, so ``herder install`` reports RUNNING to the SCM at the same moment.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Protocol

from herder.core.instance import State
from herder.runtime.events import Event
from herder.runtime.ports import Host
from herder.runtime.status import summary as _summary

SETTLED = frozenset({State.RUNNING, State.FAILED, State.EXITED})


class Upward(Protocol):
    def ready(self) -> None: ...
    def status(self, text: str) -> None: ...
    def watchdog(self) -> None: ...
    def stopping(self, budget: float | None) -> None: ...
    def stopped(self, exit_code: int) -> None: ...


def summary(sup: Host) -> str:
    """One line: '3/4 running, 1 failed' (counts of every state present, running first)."""
    return _summary(sup.world, sup.shutting_down)


class ManagerReport:
    """A Supervisor component: READY/STATUS/WATCHDOG/STOPPING to herder's own manager."""

    def __init__(self, sup: Host, reporter: Upward, watchdog_interval: float | None = None) -> None:
        self.sup = sup
        self.reporter = reporter
        self.watchdog_interval = watchdog_interval
        self.ready_sent = False
        self.stopping_sent = False
        self._armed = False
        self._last_status = ""
        self._unsubscribe: Callable[[], None] | None = None
        self._ping: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> ManagerReport:
        self._unsubscribe = self.sup.events.subscribe(self._on_event)
        # Not before the start has been applied: until then no instance wants up, and "every
        # instance herder was asked to start has settled" would hold of none (READY=1 went out
        # at "0/2 running", before any service had started, and systemctl returned too early).
        self.sup.when_started(self._arm)
        if self.watchdog_interval:
            self._send_ping()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ping is not None:
            self._ping.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.reporter.stopped(self.sup.exit_code)  # closes the notify socket

    def _arm(self) -> None:
        self._armed = True
        self._check()

    def _send_ping(self) -> None:
        """WATCHDOG=1 on the loop's real time: systemd's watchdog is real time, and a stuck
        loop must stop the pings (this is no decision about an instance)."""
        self.reporter.watchdog()
        if self.watchdog_interval:
            self._ping = asyncio.get_running_loop().call_later(self.watchdog_interval / 2, self._send_ping)

    def _on_event(self, ev: Event) -> None:
        if self.sup.shutting_down and not self.stopping_sent:
            self.stopping_sent = True
            self.reporter.stopping(self.sup.config.herder.shutdown_timeout)
        self._check()

    def _check(self) -> None:
        if not self._armed:
            return
        text = summary(self.sup)
        if text != self._last_status:
            self._last_status = text
            self.reporter.status(text)
        if self.ready_sent or self.stopping_sent:
            return
        if all(i.state in SETTLED for i in self.sup.instances.values() if i.want_up):
            self.ready_sent = True
            self.reporter.ready()


class ViaKeeper:
    """The keeper is herder's main process for its manager (systemd's MainPID, with
    NotifyAccess=main): this process reports through it. The keeper pings the manager's
    watchdog from its own loop and watches this process's pings itself: a decision process
    whose loop is stuck is killed and restarted by the keeper, not the whole unit by systemd."""

    def __init__(self, sup: Host) -> None:
        self.sup = sup

    def _send(self, text: str) -> None:
        link = getattr(self.sup, "link", None)
        if link is not None:
            link.send({"t": "notify", "text": text})

    def ready(self) -> None:
        self._send("READY=1")

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def stopping(self, budget: float | None) -> None:
        self._send("STOPPING=1")

    def stopped(self, exit_code: int) -> None:
        return None


def attach(sup: Host, environ: dict[str, str] | None = None) -> ManagerReport | None:
    """Add the component when herder's environment names a notify socket (systemd), or
    says the keeper relays to one."""
    env = os.environ if environ is None else environ
    if env.get("HERDER_UPWARD") == "keeper":
        wd = env.get("HERDER_UPWARD_WATCHDOG", "")
        interval = float(wd) if wd.replace(".", "", 1).isdigit() else None
        comp = ManagerReport(sup, ViaKeeper(sup), interval)
        sup.components.append(comp)
        return comp
    if not env.get("NOTIFY_SOCKET"):
        return None
    from herder.service._modes import detect
    from herder.service._notify import Notifier, NotifyReporter

    found = detect(env, platform=sys.platform, pid=os.getpid(), ppid=os.getppid())
    if found.notify_socket is None:
        return None
    comp = ManagerReport(sup, NotifyReporter(Notifier(found.notify_socket)), found.watchdog_interval)
    sup.components.append(comp)
    return comp
