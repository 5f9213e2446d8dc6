"""A herder.service program that is slow to reach the SCM's dispatcher (Windows side).

    python slow_connect.py MARKS GO

Appends "start PID" to MARKS, then waits for the file GO to exist before it starts the
service (as a program importing a large framework from a cold disk does). Until then the
SCM has no dispatcher to talk to and waits for one up to ServicesPipeTimeout: 1053 after
Wine's default 10 s, a successful start under the harness prefix's 60 s.
"""

import os
import sys
import time

MARKS, GO = sys.argv[1], sys.argv[2]
with open(MARKS, "a") as f:
    f.write(f"start {os.getpid()}\n")
while not os.path.exists(GO):
    time.sleep(0.05)

from herder.service import Service  # noqa: E402 - the slow part comes first, on purpose

svc = Service("slow-connect")


@svc.main
async def main(ctx):
    ctx.ready()
    await ctx.stopping


if __name__ == "__main__":
    svc.run()
