"""A console program to wrap as a service (Windows side): prints, ticks, stops on Ctrl+C.

    python plain.py MARKS

Appends "start PID GREETING=…" to MARKS; on Ctrl+C (SIGINT) or Ctrl+Break (SIGBREAK)
appends "stop SIGNAL" and exits 0, as a well-behaved console program does.
"""

import os
import signal
import sys
import time

marks = sys.argv[1]


def mark(text):
    with open(marks, "a") as f:
        f.write(text + "\n")


def bye(signum, frame):
    mark(f"stop {signal.Signals(signum).name}")
    print(f"plain: got {signal.Signals(signum).name}, exiting", flush=True)
    sys.exit(0)


for name in ("SIGINT", "SIGBREAK"):
    signal.signal(getattr(signal, name), bye)
mark(f"start {os.getpid()} GREETING={os.environ.get('GREETING')}")
print(f"plain: pid {os.getpid()} GREETING={os.environ.get('GREETING')}", flush=True)
i = 0
while True:
    i += 1
    print(f"plain: tick {i}", flush=True)
    time.sleep(1)
