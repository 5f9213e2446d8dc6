"""A configurable service for the tests, driven by environment variables.

STEPS       comma list of NAME:KIND:TIMEOUT deferred in that order; KIND is
            ok | aok (async) | raise | hang (sync, never returns) | ahang (async)
MAIN_EXIT   if set, main returns this int right after ready instead of waiting
RELOAD      block: an async on_reload that blocks the event loop for 1s (watchdog test);
            print: a sync on_reload that prints; unset: no on_reload
RUN         kwargs for svc.run as NAME=VALUE;... (pidfile=..., daemonize=1)
REPORT      if set, send a JSON status about our session/tty before ready (daemon test)
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import sys
import threading
import time

from herder.service import Context, Service

svc = Service("svcprog")
faulthandler.register(__import__("signal").SIGUSR1, all_threads=True)  # stack dumps for debugging hangs
never = threading.Event()


def make_step(name: str, kind: str):  # type: ignore[no-untyped-def]
    def ok() -> None:
        print(f"step {name} start", flush=True)
        if kind == "raise":
            raise RuntimeError(f"{name} exploded")
        if kind == "hang":
            never.wait()
        print(f"step {name} end", flush=True)

    async def aok() -> None:
        print(f"step {name} start", flush=True)
        if kind == "ahang":
            await asyncio.Event().wait()
        print(f"step {name} end", flush=True)

    return aok if kind in ("aok", "ahang") else ok


def tty_nr() -> int:
    with open("/proc/self/stat") as f:
        return int(f.read().rpartition(")")[2].split()[4])


def report() -> dict[str, object]:
    try:
        os.close(os.open("/dev/tty", os.O_RDWR))
        has_tty = True
    except OSError:
        has_tty = False
    return {
        "pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "pgid": os.getpgid(0),
        "tty_nr": tty_nr(), "can_open_dev_tty": has_tty, "cwd": os.getcwd(),
    }


@svc.main
async def main(ctx: Context) -> int | None:
    for spec in filter(None, os.environ.get("STEPS", "").split(",")):
        name, kind, timeout = spec.split(":")
        ctx.defer(make_step(name, kind), timeout=timeout, name=name)
    if os.environ.get("REPORT"):
        ctx.status(json.dumps(report()))
    ctx.ready()
    print(f"READY pid={os.getpid()}", flush=True)
    if os.environ.get("MAIN_EXIT"):
        return int(os.environ["MAIN_EXIT"])
    await ctx.stopping
    print(f"main saw stopping: {ctx.stopping.reason}", flush=True)
    return None


if os.environ.get("RELOAD") == "block":

    @svc.on_reload
    async def reload_blocking(ctx: Context) -> None:
        print("reload: blocking the loop", flush=True)
        time.sleep(1.0)  # deliberately blocks the event loop: watchdog pings must stop

elif os.environ.get("RELOAD") == "print":

    @svc.on_reload
    def reload_print(ctx: Context) -> None:
        print("reload called", flush=True)


if __name__ == "__main__":
    kwargs: dict[str, object] = {}
    for item in filter(None, os.environ.get("RUN", "").split(";")):
        key, _, value = item.partition("=")
        kwargs[key] = value if key == "pidfile" else bool(int(value))
    if os.environ.get("REPORT"):
        print(f"PARENT {json.dumps(report())}", flush=True)
    sys.stdout.flush()
    svc.run(**kwargs)  # type: ignore[arg-type]
