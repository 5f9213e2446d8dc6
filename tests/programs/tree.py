"""Leaves descendants behind: a `setsid sleep` (new session) and a plain `sleep` (same group).

argv[1] = "stay" (block until killed) or "leave" (exit 3 right after reporting).
"""
import signal
import subprocess
import sys

from report import report

escaped = subprocess.Popen(["sleep", "1000"], start_new_session=True)  # setsid() before exec
same_group = subprocess.Popen(["sleep", "1000"])
report(event="tree", setsid=escaped.pid, group=same_group.pid)
if sys.argv[1] == "leave":
    sys.exit(3)
signal.pause()
