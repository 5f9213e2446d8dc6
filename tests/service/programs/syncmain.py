"""A sync main (runs in a worker thread). argv[1]: cooperative | stubborn."""

from __future__ import annotations

import sys
import threading

from herder.service import Context, Service, ServiceError

svc = Service("syncmain", exit_timeout="300ms")
never = threading.Event()


@svc.main
def main(ctx: Context) -> None:
    ctx.defer(lambda: print("step close ran", flush=True), timeout="2s", name="close")
    ctx.ready()
    ctx.status("working")
    print("READY", flush=True)
    if sys.argv[1] == "stubborn":
        never.wait()  # ignores ctx.stopping
    while not ctx.stopping.wait(timeout=30):
        pass
    print(f"sync main saw stopping: {ctx.stopping.reason}", flush=True)


@svc.on_reload
async def reload(ctx: Context) -> None:
    try:
        ctx.stopping.wait(0)
    except ServiceError as exc:
        print(f"refused: {exc}", flush=True)


svc.run()
