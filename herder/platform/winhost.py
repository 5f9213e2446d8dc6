"""The process the Windows SCM starts for services herder installed.

binPath is ``python -m herder.platform.winhost NAME``; the host reads NAME's install
record and runs under the SCM through the herder.service library (``Service.run`` sees
it was started by services.exe and speaks the SCM status protocol; the same code runs
in a console for debugging, and on Linux in tests).

- ``kind = "supervisor"`` (``herder install``): hosts the herder supervisor; RUNNING is
  reported when every autostart service is up or failed (the same component that sends
  READY=1 to systemd), and an SCM stop becomes herder's ordered shutdown.
- ``kind = "program"`` (``herder service install``): wraps the command NSSM-style:
  starts it with output appended to ``LOG_DIR/NAME.log``, restarts it per its restart
  policy with the backoff curve and start limit, and on stop sends CTRL_BREAK, then
  terminates the whole tree (Job Object) after ``stop_timeout``. When the wrapper gives
  up it exits non-zero, so the SCM's failure actions take over.

Not run under a real Windows SCM in this project's CI; the wrapper's logic is tested on
Linux (POSIX process groups instead of consoles and jobs).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

from herder.core import backoff
from herder.platform import _children
from herder.platform.spec import InstallSpec


def _log_line(log: IO[bytes], text: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    log.write(f"{stamp} herder: {text}\n".encode())
    log.flush()


async def wrap(ctx: Any, spec: InstallSpec, log_dir: Path) -> int:
    """Run the program until stopped or given up on; return the host's exit code."""
    svc = spec.service
    env = {**os.environ, **svc.env, "HERDER_STOP_TIMEOUT_USEC": str(round(svc.stop_timeout * 1e6))}
    log_dir.mkdir(parents=True, exist_ok=True)
    failures: deque[float] = deque()
    n = 0
    stopping = asyncio.ensure_future(_stopping(ctx))
    with open(log_dir / f"{spec.name}.log", "ab") as log:
        try:
            while True:
                try:
                    child = await _children.start(svc.command, env, svc.cwd, log)
                except OSError as e:
                    _log_line(log, f"cannot start {svc.command[0]}: {e.strerror or e}")
                    return 1
                started = time.monotonic()
                _log_line(log, f"started pid {child.pid}")
                ctx.ready()
                waiter = asyncio.ensure_future(child.wait())
                await asyncio.wait({waiter, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    code = await child.stop(svc.stop_signal, svc.stop_timeout)
                    waiter.cancel()
                    _log_line(log, f"stopped (exit {code})")
                    return 0
                code = waiter.result()
                ran = time.monotonic() - started
                success = code in svc.success_exit_codes
                _log_line(log, f"exited with code {code} after {ran:.1f}s")
                if svc.restart == "never" or (svc.restart == "on-failure" and success):
                    return 0 if success else 1
                if ran >= svc.backoff.reset_after:
                    n = 0
                if ran < svc.min_uptime and backoff.over_start_limit(svc.start_limit, failures, time.monotonic()):
                    _log_line(log, f"gave up: more than {svc.start_limit.burst} failed starts within "
                              f"{svc.start_limit.interval:g}s; the SCM's recovery actions decide what is next")
                    return code or 1
                delay = backoff.delay(svc.backoff, n)
                n += 1
                _log_line(log, f"restarting in {delay:.3f}s")
                await asyncio.wait({stopping}, timeout=delay)
                if stopping.done():
                    return 0
        finally:
            stopping.cancel()


async def _stopping(ctx: Any) -> None:
    await ctx.stopping


async def supervise(ctx: Any, spec: InstallSpec) -> int:
    from herder.config import load
    from herder.runtime.supervisor import Supervisor
    from herder.runtime.upward import ManagerReport

    cfg = load(spec.service.command[-1])   # the command is `… herder up -c CONFIG`
    sup = Supervisor(cfg)
    sup.components.append(ManagerReport(sup, _ContextReport(ctx)))
    run = asyncio.ensure_future(sup.run(install_signals=False))
    stopping = asyncio.ensure_future(_stopping(ctx))
    await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not run.done():
        sup.request_down()
    stopping.cancel()
    return await run


class _ContextReport:
    """herder's upward reports, to the library context (SCM: RUNNING at ready)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def ready(self) -> None:
        self.ctx.ready()

    def status(self, text: str) -> None:
        self.ctx.status(text)

    def watchdog(self) -> None:
        pass

    def stopping(self, budget: float | None) -> None:
        pass

    def stopped(self, exit_code: int) -> None:
        pass


def load_record(name: str, path: str | None = None) -> InstallSpec:
    from herder.platform.windows import record_dir

    file = Path(path) if path else Path(str(record_dir() / f"{name}.json"))
    return InstallSpec.from_record(json.loads(file.read_text(encoding="utf-8")))


def main(argv: list[str] | None = None) -> int:
    from herder.service import Service

    args = list(sys.argv[1:] if argv is None else argv)
    record = None
    if len(args) == 3 and args[1] == "--record":   # tests and debugging: an explicit record file
        record = args[2]
    if not args:
        print("usage: python -m herder.platform.winhost NAME [--record FILE]", file=sys.stderr)
        return 2
    spec = load_record(args[0], record)
    log_dir = Path(spec.log_dir) if spec.log_dir else Path(str(_default_logs()))
    svc = Service(spec.name, stop_timeout=spec.service.stop_timeout + 5, exit_timeout=spec.service.stop_timeout + 3)

    @svc.main
    async def _main(ctx: Any) -> int:
        if spec.kind == "supervisor":
            return await supervise(ctx, spec)
        return await wrap(ctx, spec, log_dir)

    return svc.run()  # exits with the service's code


def _default_logs() -> Any:
    from herder.platform.windows import record_dir

    return record_dir().parent / "logs"


if __name__ == "__main__":
    sys.exit(main())
