"""The process the Windows SCM starts for programs that do not speak its protocol.

``herder service install NAME -- CMD`` registers binPath ``python -m
herder.platform.winhost NAME``; this host reads NAME's install record and runs under the
SCM through the herder.service library (``Service.run`` sees that services.exe started
it and speaks the SCM status protocol; the same code runs in a console for debugging,
and on Linux in tests). It wraps the command NSSM-style:

- starts it with stdout and stderr appended to ``LOG_DIR\\NAME.log``, next to herder's
  own lines (started, exited, restarting, stopped and how);
- reports RUNNING once the program started; restarts it per its restart policy with the
  backoff curve, and gives up after the start limit, exiting non-zero so the SCM's
  failure actions take over (the SCM records 1066 and the code);
- on an SCM stop sends Ctrl+C to the program's own console, then terminates the whole
  tree (Job Object) after ``stop_timeout`` (see _children.py for why Ctrl+C and how).

The important lines also go to the Windows Event Log (the library's handler under the
SCM). Run for real under Wine's SCM by the Windows tier (tests/platform/test_windows_*);
the restart logic also runs on Linux (tests/runtime/test_winhost_wrapper.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import runpy
import sys
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

from herder.core import backoff
from herder.platform import _children, windows
from herder.platform.spec import InstallSpec

_log = logging.getLogger("herder.winhost")


def _log_line(log: IO[bytes], text: str, level: int = logging.INFO) -> None:
    """A line in the program's log file and, under the SCM, in the Event Log."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    log.write(f"{stamp} herder: {text}\n".encode())
    log.flush()
    _log.log(level, "%s", text)


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
                    _log_line(log, f"cannot start {svc.command[0]}: {e.strerror or e}", logging.ERROR)
                    return 1
                started = time.monotonic()
                _log_line(log, f"started pid {child.pid}")
                ctx.ready()
                waiter = asyncio.ensure_future(child.wait())
                await asyncio.wait({waiter, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    waiter.cancel()
                    result = await child.stop(svc.stop_signal, svc.stop_timeout)
                    _log_line(log, f"stopped pid {child.pid}: {result.how} (exit {result.code})")
                    return 0
                code = waiter.result()
                ran = time.monotonic() - started
                success = code in svc.success_exit_codes
                _log_line(log, f"exited with code {code} after {ran:.1f}s",
                          logging.INFO if success else logging.WARNING)
                failed_code = code if code > 0 else 1   # what the SCM records (1066 and this)
                if svc.restart == "never" or (svc.restart == "on-failure" and success):
                    return 0 if success else failed_code
                if ran >= svc.backoff.reset_after:
                    n = 0
                if ran < svc.min_uptime and backoff.over_start_limit(svc.start_limit, failures, time.monotonic()):
                    _log_line(log, f"gave up: more than {svc.start_limit.burst} failed starts within "
                              f"{svc.start_limit.interval:g}s; the SCM's recovery actions decide what is next",
                              logging.ERROR)
                    return failed_code
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


def load_record(name: str, path: str | None = None) -> InstallSpec:
    file = Path(path) if path else Path(str(windows.record_dir() / f"{name}.json"))
    return InstallSpec.from_record(json.loads(file.read_text(encoding="utf-8")))


def run_in_process(spec: InstallSpec) -> int:
    """A herder.service program: its cwd and environment, then the program itself, here.

    The SCM has no working directory or environment setting for a service, and the
    program must be the process the SCM talks to (it calls the dispatcher), so it cannot
    be a child. Like ``python prog.py`` / ``python -m mod``, minus the interpreter options.
    """
    svc = spec.service
    argv = list(svc.command[1:])
    if svc.cwd:
        os.chdir(svc.cwd)
    os.environ.update(svc.env)
    # what `python prog.py` / `python -m mod` put first on sys.path (inserted: an embedded
    # Python with a ._pth file has its standard library first, not the script's directory)
    if argv[0] == "-m":
        sys.argv = argv[1:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")
    return 0   # a herder.service program exits through svc.run(); one that returns succeeded


def main(argv: list[str] | None = None) -> int:
    from herder.service import Service

    args = list(sys.argv[1:] if argv is None else argv)
    record = None
    if len(args) == 3 and args[1] == "--record":   # tests and debugging: an explicit record file
        record = args[2]
    if not args:
        print("usage: python -m herder.platform.winhost NAME [--record FILE]", file=sys.stderr)
        return 2
    try:
        spec = load_record(args[0], record)
    except (OSError, ValueError, TypeError, KeyError) as e:
        return _refuse(args[0], f"cannot read herder's install record for {args[0]}: {e}; "
                                f"run `herder service install {args[0]}` again")
    if windows.runs_in_host(spec):
        return run_in_process(spec)
    log_dir = Path(spec.log_dir) if spec.log_dir else Path(str(windows.log_dir(spec)))
    svc = Service(spec.name, stop_timeout=spec.service.stop_timeout + 5, exit_timeout=spec.service.stop_timeout + 3)

    @svc.main
    async def _main(ctx: Any) -> int:
        return await wrap(ctx, spec, log_dir)

    return svc.run()  # exits with the service's code


def _refuse(name: str, why: str) -> int:
    """Still speak to the SCM, so it records a failure (1066/2) and the Event Log says why."""
    from herder.service import Service

    svc = Service(name)

    @svc.main
    def _main(ctx: Any) -> int:
        _log.error("%s", why)
        return 2

    return svc.run()


if __name__ == "__main__":
    sys.exit(main())
