"""THE loop of a service process: one owner for the lifecycle state.

Signal handlers, SCM control codes and ctx calls from worker threads never touch state;
they ``post`` an event that runs on the loop. The lifecycle is a straight line:

    starting → main runs (ready at ctx.ready()) → stop requested (or main returned)
    → main given ``exit_timeout`` to return (then cancelled / abandoned)
    → deferred steps in reverse, each under min(own timeout, what is left overall)
    → stopped(exit code)

The overall deadline starts when the stop is requested, because that is when the
manager's stop timeout starts too; it is that timeout minus a small margin, so the last
step is over before the SIGKILL comes.

Exit codes: what main returned (an int, or 0 for None); 1 if main raised, or if main
or a shutdown step failed or overran during the stop; 130 for a forced exit.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from herder.service._calls import call
from herder.service._context import Context
from herder.service._modes import Mode
from herder.service._report import Reporter
from herder.service._shutdown import Outcome, ShutdownStack
from herder.service._signals import SignalCatcher

log = logging.getLogger("herder.service")

EXIT_OK, EXIT_FAILURE, EXIT_FORCED = 0, 1, 130

Hook = Callable[[Context], Any]


@dataclass(frozen=True)
class Hooks:
    main: Hook
    on_reload: Hook | None = None
    on_pause: Hook | None = None
    on_continue: Hook | None = None


@dataclass(frozen=True)
class Timing:
    """Seconds. ``stop_timeout`` None: no overall deadline (each step is still bounded)."""

    stop_timeout: float | None
    start_timeout: float = 30.0
    exit_timeout: float = 5.0
    watchdog_interval: float | None = None


def margin(stop_timeout: float) -> float:
    """Time kept back from the manager's stop timeout: 10%, at most one second."""
    return min(1.0, stop_timeout * 0.1)


class Runtime:
    def __init__(
        self,
        name: str,
        mode: Mode,
        hooks: Hooks,
        reporter: Reporter,
        timing: Timing,
        *,
        auto_watchdog: bool = True,
        on_force: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.mode = mode
        self._hooks = hooks
        self._reporter = reporter
        self._timing = timing
        self._auto_watchdog = auto_watchdog
        self._on_force = on_force
        self._clock = clock
        self._shutdown = ShutdownStack(clock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ctx: Context | None = None
        self._ready = False
        self._stop_at: float | None = None
        self._stop_requested = asyncio.Event()
        self._hook_lock = asyncio.Lock()
        self._group: asyncio.TaskGroup | None = None
        self._early: list[tuple[str, str]] = []
        self._hook_tasks: list[asyncio.Task[None]] = []

    # ---- entry points -------------------------------------------------------------

    def run(self, *, signals: bool, redeliver: bool) -> int:
        """Block until fully stopped; return the exit code."""
        with asyncio.Runner() as runner:
            self._loop = runner.get_loop()
            if not signals:
                return runner.run(self._lifecycle())
            catcher = SignalCatcher(self._loop, self._on_signal, self._force, redeliver=redeliver)
            with catcher:
                return runner.run(self._lifecycle())

    def post(self, kind: str, reason: str) -> None:
        """Thread-safe: hand an event (stop / reload / pause / continue) to the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_event, kind, reason)

    # ---- signal-handler context: record and hand over, nothing more ----------------

    def _on_signal(self, name: str) -> None:
        self.post("reload" if name == "SIGHUP" else "stop", name)

    def _force(self) -> None:
        pending = len(self._shutdown)
        log.warning(
            "second interrupt: exiting now, without waiting (%d shutdown steps not run)", pending
        )
        self._on_force()

    # ---- loop thread ----------------------------------------------------------------

    def _on_event(self, kind: str, reason: str) -> None:
        if self._group is None:  # arrived before the lifecycle began: replayed there
            self._early.append((kind, reason))
            return
        if kind == "stop":
            self._request_stop(reason)
        elif self._stop_at is not None:
            log.info("%s ignored: already stopping", reason)
        elif kind == "reload":
            if self._hooks.on_reload is None:
                log.info("%s received; no on_reload handler, ignoring it", reason)
                return
            self._hook_tasks.append(self._group.create_task(self._reload(reason)))
        elif kind in ("pause", "continue"):
            self._hook_tasks.append(self._group.create_task(self._pause(kind == "pause", reason)))

    def _request_stop(self, reason: str) -> None:
        assert self._ctx is not None
        if self._stop_at is not None:
            log.info("%s: already stopping", reason)
            return
        self._stop_at = self._clock()
        hint = " (press Ctrl+C again to exit without waiting)" if (
            self.mode is Mode.CONSOLE and reason == "SIGINT"
        ) else ""
        log.info("stopping %s: %s%s", self.name, reason, hint)
        self._ctx.stopping._set(reason)
        self._stop_requested.set()
        self._reporter.stopping(self._stop_budget())

    def _deadline(self) -> float | None:
        stop = self._timing.stop_timeout
        if stop is None or self._stop_at is None:
            return None
        return self._stop_at + stop - margin(stop)

    def _stop_budget(self) -> float:
        """What the stop may take, for the manager's wait hints."""
        deadline = self._deadline()
        if deadline is not None:
            return max(0.0, deadline - self._clock())
        steps = self._shutdown.pending_seconds()
        return self._timing.exit_timeout + steps

    def _on_ready(self) -> None:
        if self._ready or self._stop_at is not None:
            return
        self._ready = True
        log.info("%s is ready", self.name)
        self._reporter.ready()

    def _on_status(self, text: str) -> None:
        log.info("status: %s", text)
        self._reporter.status(text)

    async def _reload(self, reason: str) -> None:
        assert self._hooks.on_reload is not None
        async with self._hook_lock:
            log.info("reloading (%s)", reason)
            self._reporter.reloading()
            try:
                await call(self._hooks.on_reload, self._ctx, name="reload")
            except Exception:
                log.exception("on_reload failed; still running with the previous settings")
            self._reporter.reloaded()

    async def _pause(self, pause: bool, reason: str) -> None:
        hook = self._hooks.on_pause if pause else self._hooks.on_continue
        async with self._hook_lock:
            log.info("%s", reason)
            self._reporter.pausing(pause)
            if hook is not None:
                try:
                    await call(hook, self._ctx, name="pause" if pause else "continue")
                except Exception:
                    log.exception("%s failed", "on_pause" if pause else "on_continue")
            self._reporter.paused(pause)

    async def _watchdog(self, interval: float) -> None:
        """Pings from the loop itself, so a blocked loop stops them (as it should)."""
        while True:
            self._reporter.watchdog()
            await asyncio.sleep(interval / 2)

    async def _ticks(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self._reporter.tick()

    async def _main(self) -> tuple[int, bool]:
        """Run main; (exit code, whether it failed). Never raises (except cancellation)."""
        main = self._hooks.main
        try:
            result = await call(main, self._ctx, name="main")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            return code, code != 0
        except Exception:
            log.exception("main of %s failed", self.name)
            return EXIT_FAILURE, True
        if isinstance(result, bool) or not isinstance(result, int):
            return EXIT_OK, False
        return result, result != 0

    async def _await_main(self, task: asyncio.Task[tuple[int, bool]]) -> tuple[int, bool]:
        """After a stop request: give main exit_timeout (capped by the deadline) to return."""
        wait = self._timing.exit_timeout
        deadline = self._deadline()
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - self._clock()))
        done, _ = await asyncio.wait({task}, timeout=wait)
        if done:
            return task.result()
        sync = not inspect.iscoroutinefunction(self._hooks.main)
        task.cancel()
        if sync:
            log.error(
                "main did not return within %.3gs of the stop request; running the shutdown "
                "steps without it (check ctx.stopping in its loop)", wait
            )
            return EXIT_FAILURE, True
        log.warning("main did not return within %.3gs of the stop request; cancelled it", wait)
        await asyncio.wait({task}, timeout=1.0)
        if task.done() and not task.cancelled():
            return task.result()
        return EXIT_OK, False

    async def _lifecycle(self) -> int:
        loop = asyncio.get_running_loop()
        self._ctx = Context(
            self.name,
            self.mode,
            loop,
            on_ready=self._on_ready,
            on_status=self._on_status,
            on_watchdog=self._reporter.watchdog,
            shutdown=self._shutdown,
        )
        log.info("starting %s (mode: %s)", self.name, self.mode.value)
        self._reporter.starting(self._timing.start_timeout)
        background: list[asyncio.Task[None]] = []
        async with asyncio.TaskGroup() as group:
            self._group = group
            if self._timing.watchdog_interval and self._auto_watchdog:
                background.append(group.create_task(self._watchdog(self._timing.watchdog_interval)))
            if self._reporter.tick_interval:
                background.append(group.create_task(self._ticks(self._reporter.tick_interval)))
            main_task = group.create_task(self._main())
            for kind, reason in self._early:
                self._on_event(kind, reason)
            stop_task = group.create_task(self._stop_requested.wait())
            await asyncio.wait({main_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            if main_task.done():
                stop_task.cancel()
                code, failed = main_task.result()
                if self._stop_at is None:
                    self._request_stop(f"main returned (exit code {code})")
            else:
                code, failed = await self._await_main(main_task)
            results = await self._shutdown.run(self._deadline(), self._reporter.step)
            for task in background + self._hook_tasks:
                task.cancel()
        if code == EXIT_OK and (failed or any(r.outcome is not Outcome.OK for r in results)):
            code = EXIT_FAILURE
        log.info("%s stopped (exit code %d)", self.name, code)
        self._reporter.stopped(code)
        return code
