"""A small sd_notify program for the health tests, driven by its arguments.

Each argument is one step, run in order:
  send:TEXT      one datagram (\\n in TEXT becomes a newline: several assignments at once)
  sleep:SECONDS  (only to let time pass for a watchdog; tests never sleep to synchronise)
  wait:FIFO      block until the test writes a byte to the named pipe FIFO
  fork-main      fork a child that becomes the main process: the child sends
                 MAINPID=<its pid> and READY=1 in one datagram, then the parent exits 0
  hold           wait for SIGTERM, then exit 0
  ping:SECONDS   send WATCHDOG=1 every SECONDS until SIGTERM
  pings:N:SEC    send WATCHDOG=1 N times, SEC apart, then go on
  env:VAR        send STATUS=VAR=<its value, or "unset">
  rlimit         send STATUS=nofile=SOFT:HARD
  print:TEXT     print TEXT on stdout (flushed)
  big:N          one datagram of N bytes
  exit:CODE
Without `hold`/`exit` at the end, the program holds.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time


def send(text: str) -> None:
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(text.replace("\\n", "\n").encode(), addr)


def main(steps: list[str]) -> None:
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    for step in steps:
        kind, _, arg = step.partition(":")
        if kind == "send":
            send(arg)
        elif kind == "sleep":
            time.sleep(float(arg))
        elif kind == "wait":
            with open(arg, "rb") as fifo:
                fifo.read(1)
        elif kind == "exit":
            sys.exit(int(arg))
        elif kind == "fork-main":
            r, w = os.pipe()
            pid = os.fork()
            if pid:   # the parent leaves once the child has announced itself (a daemon hand-over)
                os.close(w)
                os.read(r, 1)
                os._exit(0)
            os.close(r)
            send(f"MAINPID={os.getpid()}\nREADY=1\nSTATUS=child is main")
            os.write(w, b"x")
            os.close(w)
        elif kind == "ping":
            while not stop:
                send("WATCHDOG=1")
                time.sleep(float(arg))
            sys.exit(0)
        elif kind == "pings":
            n, _, sec = arg.partition(":")
            for _ in range(int(n)):
                send("WATCHDOG=1")
                time.sleep(float(sec))
        elif kind == "env":
            send(f"STATUS={arg}={os.environ.get(arg, 'unset')}")
        elif kind == "rlimit":
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            send(f"STATUS=nofile={soft}:{hard}")
        elif kind == "print":
            print(arg, flush=True)
        elif kind == "big":
            send("STATUS=" + "x" * int(arg))
        elif kind == "hold":
            break
    # hold until SIGTERM. Not `while not stop: signal.pause()`: a SIGTERM landing between the
    # check and pause() was lost and the program hung until herder's SIGKILL (seen under load).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    if not stop:
        signal.sigwait({signal.SIGTERM})
    sys.exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
