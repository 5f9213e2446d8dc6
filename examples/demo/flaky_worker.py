"""A worker that does 'work' and crashes now and then, so the demo shows a restart."""
import os
import random
import sys
import time

wid = os.environ.get("WORKER_ID", "?")
print(f"worker {wid}: up (pid {os.getpid()})", flush=True)
for tick in range(random.randint(3, 8)):
    time.sleep(1)
    print(f"worker {wid}: tick {tick}", flush=True)
print(f"worker {wid}: crashing on purpose", file=sys.stderr, flush=True)
sys.exit(3)
