"""Liveness for one instance: the probe verdict and the watchdog, as a pure table.

The runtime runs the probes (HTTP, TCP, exec) and the timers; this module only decides.
It is fed `PEv` events and returns effects: `Schedule` (run the next probe
after a delay), `ArmWatchdog`, `Verdict` (the instance's combined health changed: the
core records it, dependents waiting for `healthy` read it) and `Act` (take the
configured action; only made when `action = "restart"`). herder.core.step feeds it and
turns its effects into timers, checks and the instance table's HealthChanged and Fail. docs/health.md states these
rules in prose; tests/core/test_health_probe.py checks every line of it.

Why a table like the process machine: process-compose's users met liveness that did not
match its docs and a readiness failure that killed a service for good. Written as a table
of (verdict, event), every pair has one documented answer and a test walks all of them.

Rules in short:
- probing starts when the instance is ready (`READY`), after `initial_delay`; the next
  probe runs `interval` after the previous one finished (probes never overlap);
- `failure_threshold` consecutive failures → unhealthy (from unknown or healthy) → Act;
  `success_threshold` consecutive successes → healthy (from unknown or unhealthy);
- the watchdog is armed at spawn (as systemd does: WATCHDOG_USEC is in the environment
  from exec on); each `PING` re-arms it; `EXPIRE` (no ping in time, or WATCHDOG=trigger)
  makes the instance unhealthy at once (no threshold) → Act, with reason `watchdog`;
- combined health = unhealthy if the watchdog expired or the probe says so; healthy when
  the probe says so (or there is no probe and the instance is ready); else unknown;
- an Act is made once per fall into unhealthy; the step resets the tracker on each
  spawn and exit, so a restarted instance starts from unknown with fresh counters.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from herder.config.model import Health
from herder.core.events import FailReason


class PState(enum.Enum):
    IDLE = "idle"            # no process
    UNKNOWN = "unknown"      # spawned; no verdict yet (starting, initial delay, below thresholds)
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class PEv(enum.Enum):
    SPAWNED = "spawned"      # a new process: reset, arm the watchdog
    READY = "ready"          # the instance became ready: start probing after initial_delay
    PASS = "pass"            # a probe succeeded
    FAIL = "fail"            # a probe failed (why)
    PING = "ping"            # WATCHDOG=1
    EXPIRE = "expire"        # the watchdog deadline passed, or WATCHDOG=trigger (why)
    EXITED = "exited"        # the process is gone: stop everything


@dataclass(frozen=True)
class Schedule:
    delay: float


@dataclass(frozen=True)
class ArmWatchdog:
    delay: float


@dataclass(frozen=True)
class Verdict:
    healthy: bool | None
    reason: FailReason   # HEALTH | WATCHDOG
    message: str


@dataclass(frozen=True)
class Act:
    reason: FailReason   # HEALTH | WATCHDOG
    message: str


ProbeEffect = Schedule | ArmWatchdog | Verdict | Act


@dataclass
class Tracker:
    """One instance's liveness record; held by its Instance in the core's World."""

    policy: Health
    state: PState = PState.IDLE
    passes: int = 0
    fails: int = 0
    ready: bool = False
    watchdog_ok: bool = True
    last_why: str = ""

    @property
    def probed(self) -> bool:
        return self.policy.kind is not None

    def combined(self) -> bool | None:
        if self.state is PState.IDLE:
            return None
        if not self.watchdog_ok:
            return False
        if not self.probed:
            return True if self.ready else None
        return {PState.HEALTHY: True, PState.UNHEALTHY: False}.get(self.state)

    def handle(self, ev: PEv, why: str = "") -> list[ProbeEffect]:
        """Apply one event; `why` is a failed probe's reason or an expiry's message."""
        before = self.combined()
        rule = TABLE[(self.state, ev)]
        out, reason, message = rule.fn(self, why)
        after = self.combined()
        if after != before:
            out.insert(0, Verdict(after, reason, message))
        return out


_H, _W = FailReason.HEALTH, FailReason.WATCHDOG
RuleResult = tuple[list[ProbeEffect], FailReason, str]


@dataclass(frozen=True)
class Rule:
    fn: Callable[[Tracker, str], RuleResult]
    doc: str


def _ignore(t: Tracker, why: str) -> RuleResult:
    return [], _H, ""


def _spawned(t: Tracker, why: str) -> RuleResult:
    t.state, t.passes, t.fails, t.ready, t.watchdog_ok, t.last_why = PState.UNKNOWN, 0, 0, False, True, ""
    out: list[ProbeEffect] = [ArmWatchdog(t.policy.watchdog)] if t.policy.watchdog else []
    return out, _H, ""


def _ready(t: Tracker, why: str) -> RuleResult:
    t.ready = True
    out: list[ProbeEffect] = [Schedule(t.policy.initial_delay)] if t.probed else []
    return out, _H, "ready" + ("" if t.probed else "; no health probe")


def _pass(t: Tracker, why: str) -> RuleResult:
    t.passes, t.fails = t.passes + 1, 0
    message = ""
    if t.state is not PState.HEALTHY and t.passes >= t.policy.success_threshold:
        t.state = PState.HEALTHY
        message = f"{t.passes} consecutive health check(s) passed"
    return [Schedule(t.policy.interval)], _H, message


def _fail(t: Tracker, why: str) -> RuleResult:
    t.fails, t.passes, t.last_why = t.fails + 1, 0, why
    out: list[ProbeEffect] = [Schedule(t.policy.interval)]
    message = ""
    if t.state is not PState.UNHEALTHY and t.fails >= t.policy.failure_threshold:
        t.state = PState.UNHEALTHY
        message = f"{t.fails} consecutive health check failures; last: {t.last_why}"
        if t.policy.action == "restart":
            out.append(Act(_H, message))
    return out, _H, message


def _ping(t: Tracker, why: str) -> RuleResult:
    if not t.policy.watchdog:
        return [], _W, ""
    t.watchdog_ok = True
    return [ArmWatchdog(t.policy.watchdog)], _W, "WATCHDOG=1 arrived again"


def _expire(t: Tracker, why: str) -> RuleResult:
    if not t.watchdog_ok:
        return [], _W, ""
    t.watchdog_ok = False
    message = why or f"no WATCHDOG=1 within health.watchdog = {t.policy.watchdog:g}s"
    out: list[ProbeEffect] = [Act(_W, message)] if t.policy.action == "restart" else []
    return out, _W, message


def _exited(t: Tracker, why: str) -> RuleResult:
    t.state, t.passes, t.fails, t.ready, t.watchdog_ok = PState.IDLE, 0, 0, False, True
    return [], _H, "exited"


P, V = PEv, PState
LIVE = (V.UNKNOWN, V.HEALTHY, V.UNHEALTHY)
TABLE: dict[tuple[PState, PEv], Rule] = {}


def _rule(states: tuple[PState, ...], events: tuple[PEv, ...], fn: Callable[[Tracker, str], RuleResult],
          doc: str) -> None:
    for s in states:
        for e in events:
            if (s, e) in TABLE:
                raise ValueError(f"duplicate probe rule {(s, e)}")
            TABLE[(s, e)] = Rule(fn, doc)


_rule(tuple(PState), (P.SPAWNED,), _spawned, "reset to unknown; arm the watchdog when one is configured")
_rule((V.IDLE,), (P.READY, P.PASS, P.FAIL, P.PING, P.EXPIRE), _ignore, "no process: a late result, ignored")
_rule(tuple(PState), (P.EXITED,), _exited, "stop probing; health becomes unknown")
_rule((V.UNKNOWN,), (P.READY,), _ready, "first probe after initial_delay (no probe: healthy now)")
_rule((V.HEALTHY, V.UNHEALTHY), (P.READY,), _ignore, "ready again after a reload: probing continues")
_rule(LIVE, (P.PASS,), _pass, "success_threshold passes in a row → healthy; next probe after interval")
_rule(LIVE, (P.FAIL,), _fail,
      "failure_threshold failures in a row → unhealthy and Act (once); next probe after interval")
_rule(LIVE, (P.PING,), _ping, "re-arm the watchdog; health recovers if the watchdog had expired")
_rule(LIVE, (P.EXPIRE,), _expire, "unhealthy at once, Act (reason watchdog)")


def counts_healthy(policy: Health, healthy: bool | None) -> bool:
    """For the `healthy` dependency condition: with a probe, only a pass counts; without one
    (watchdog only, or nothing) a ready instance counts unless judged unhealthy."""
    if policy.kind is not None:
        return healthy is True
    return healthy is not False
