"""Test program: report argv, working directory and environment, then wait to be stopped.

Used to compare what two supervisors give the same program (tests/e2e/test_import_*.py)."""
import os
import signal
import sys

from report import report

report(event="env", argv=sys.argv[1:], cwd=os.getcwd(), env=dict(os.environ), pid=os.getpid())
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
while True:
    signal.pause()
