"""Ignores SIGTERM (reports when it got one), so only SIGKILL ends it."""
import signal

from report import report

signal.signal(signal.SIGTERM, lambda *_: report(event="sigterm"))
report(event="up")
while True:
    signal.pause()
