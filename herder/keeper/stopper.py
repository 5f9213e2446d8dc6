"""The keeper stops the services itself: a stop was asked and no decision process can do it.

A stop request (SIGTERM from `systemctl stop` or `docker stop`, SIGINT, SIGPWR) is the
decision process's to carry out: it knows the config, the dependency order, the stop
commands and the deadlines. But a decision process that fails at start-up (a bug, a
bad environment, a crash loop) never comes to it, and the service manager would then
SIGKILL the whole unit after its timeout: no ordered stop at all. So when a stop is
pending and no decision process is up (one failed at start-up with the stop pending, or
none came up within ALONE_AFTER seconds), the keeper does the part it can do without
one: each instance gets its stop signal, tier by tier in reverse dependency order as
the last decision process told it (`config` message: `tiers`; unknown names last),
and SIGKILL after its stop_timeout; no stop commands, no hooks (they are the decision
process's). It says so on stderr, to the manager (STATUS=) and in herder.log, and the
keeper then exits 1: a stop without its decision process is not a clean one.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from herder.keeper.children import Child, signal_child

if TYPE_CHECKING:
    from herder.keeper.keeper import Keeper

ALONE_AFTER = 5.0       # a stop pending this long with no decision process up: the keeper stops alone
KILL_REAP_WAIT = 2.0    # after SIGKILL, how long a tier may take to be reaped before the next one starts
STOP_KINDS = ("down", "interrupt")


class AloneStop:
    """Stop every child of `k`, tier by tier; `done()` is called once none is left."""

    def __init__(self, k: Keeper, tiers: list[list[str]], why: str, done: Callable[[], None]) -> None:
        self.k = k
        self.why = why
        self.done = done
        named = {n for tier in tiers for n in tier}
        rest = sorted({c.name for c in k.children.by_pid.values()} - named)
        self.tiers = [list(t) for t in tiers if t] + ([rest] if rest else [])
        self.current: list[str] = []
        self.generation = 0
        self.finished = False

    def start(self) -> None:
        n = len(self.k.children.by_pid)
        say(self.k, f"herder: {self.why}; the keeper (pid {os.getpid()}) stops the {n} running instance(s) "
                    "itself: stop signal, then SIGKILL after stop_timeout, in reverse dependency order "
                    "(no stop commands or hooks); it then exits 1")
        self._next()

    def _alive(self, names: list[str]) -> list[Child]:
        return [c for c in self.k.children.by_pid.values() if c.name in names]

    def _next(self) -> None:
        while self.tiers:
            tier = self.tiers.pop(0)
            children = self._alive(tier)
            if not children:
                continue
            self.current = tier
            self.generation += 1
            gen = self.generation
            for child in children:
                signal_child(child, child.stop_signal)
            wait = max(c.stop_timeout for c in children)
            self.k.later(wait, functools.partial(self._kill, gen))
            return
        if self.k.children.by_pid:     # a child started meanwhile, or one of no tier: one last sweep
            for child in list(self.k.children.by_pid.values()):
                signal_child(child, signal.SIGKILL)
            self.current = [c.name for c in self.k.children.by_pid.values()]
            self.generation += 1
            gen = self.generation
            self.k.later(KILL_REAP_WAIT, functools.partial(self._end, gen))
            return
        self._end(self.generation)

    def _kill(self, gen: int) -> None:
        if gen != self.generation or self.finished:
            return
        late = self._alive(self.current)
        for child in late:
            signal_child(child, signal.SIGKILL)
        if late:
            say(self.k, "herder: " + ", ".join(sorted({c.name for c in late}))
                + " did not stop within stop_timeout; killed (SIGKILL)")
            self.k.later(KILL_REAP_WAIT, functools.partial(self._skip, gen))
        else:
            self._next()

    def _skip(self, gen: int) -> None:
        if gen == self.generation and not self.finished:
            self._next()

    def progress(self) -> None:
        """A child ended: the next tier once this one is gone."""
        if self.finished or self._alive(self.current):
            return
        self.generation += 1
        self._next()

    def _end(self, gen: int) -> None:
        if self.finished or gen != self.generation:
            return
        self.finished = True
        left = len(self.k.children.by_pid)
        say(self.k, "herder: the keeper stopped every instance without a decision process; exiting 1"
            if not left else f"herder: {left} process(es) could not be stopped; exiting 1")
        self.done()


def say(k: Keeper, message: str) -> None:
    """stderr (the journal, `docker logs`), the manager's STATUS=, and herder.log when known."""
    print(message, file=sys.stderr, flush=True)
    k.manager(f"STATUS={message}")
    rec = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "warning", "instance": "",
           "kind": "keeper_stop", "message": message}
    k.capture.write_own([(json.dumps(rec, ensure_ascii=False) + "\n").encode()])


def tiers_of(msg_tiers: object) -> list[list[str]]:
    """The `tiers` a decision process sent (stop order), checked."""
    if not isinstance(msg_tiers, list):
        return []
    return [[str(n) for n in t] for t in msg_tiers if isinstance(t, list)]
