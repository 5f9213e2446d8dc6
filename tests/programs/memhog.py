"""Allocates and touches memory, MB at a time: memhog.py TOTAL_MB [hold].

Prints "allocated N MB" after each 10 MB; with `hold` it keeps what it has and waits
for SIGTERM once TOTAL_MB are reached."""

from __future__ import annotations

import signal
import sys

total = int(sys.argv[1])
hold = "hold" in sys.argv[2:]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
chunks = []
for i in range(1, total + 1):
    chunks.append(bytearray(b"x" * (1024 * 1024)))   # written, so resident
    if i % 10 == 0:
        print(f"allocated {i} MB", flush=True)
print("done", flush=True)
if hold:
    while True:
        signal.pause()
