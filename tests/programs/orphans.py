"""Spawns grandchildren that outlive their parent and then exit: herder must reap them."""
import os
import signal
import subprocess
import sys

from report import report

n = int(sys.argv[1])
for _ in range(n):
    # sh forks a background `sleep` and exits at once: the sleep is re-parented to the subreaper
    subprocess.run(["sh", "-c", "sleep 0.2 &"], check=True)
report(event="orphans", n=n, pid=os.getpid())
signal.pause()
