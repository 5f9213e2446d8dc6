"""Embeds svc.run(exit=False) in a program with handlers of its own (argv[1]: term | int)."""

from __future__ import annotations

import signal
import sys

from herder.service import Context, Service

seen: list[str] = []
if sys.argv[1] == "term":
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append("outer SIGTERM"))
else:   # Python's own SIGINT handling, as a program started from a terminal has it: a suite run in
    # the background of a non-interactive shell (`make test &`) starts with SIGINT ignored, and
    # an ignored SIGINT is rightly left ignored by run(), which then has nothing to re-deliver
    signal.signal(signal.SIGINT, signal.default_int_handler)
watched = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
before = {s: signal.getsignal(s) for s in watched}

svc = Service("embed")


@svc.main
async def main(ctx: Context) -> None:
    ctx.ready()
    print("READY", flush=True)
    await ctx.stopping


try:
    code = svc.run(exit=False)
    print(f"run returned {code}", flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt re-delivered", flush=True)
print("restored", all(signal.getsignal(s) is before[s] for s in watched), flush=True)
print("outer handler saw", seen, flush=True)
