"""The floor under herder's figures: the least a Python supervisor can do (issue 20).

    bench/.build/venv/bin/python bench/floor.py CONFIG.json

compare.py runs it as one more tool, "floor", in the restart, start-all (with idle) and
stop-all rounds, alternating with herder and the peers and timed by the same clocks, so
each of those rows has this machine's floor for a supervisor written in Python beside
herder's figure. It does what herder must do on those paths and nothing else: one asyncio
loop; each service started with `subprocess.Popen` (its own session, close_fds, stdio to
/dev/null); SIGCHLD through `loop.add_signal_handler`, `os.waitpid`, an immediate restart;
on SIGTERM, SIGTERM to every service, SIGKILL to those left when the stop timeout runs
out, and exit once all are reaped. No config language, no state records, no journal, no
logs, no API, no cgroup, no second process: what herder takes beyond this is herder's own.

CONFIG.json: {"stop_timeout": seconds, "services": [argv, ...]}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path


async def supervise(argvs: list[list[str]], stop_timeout: float) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    children: dict[int, int] = {}     # pid → index of its service
    stopping = False

    def spawn(i: int) -> None:
        p = subprocess.Popen(argvs[i], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        p.returncode = 0     # reaped by reap() below, never by Popen
        children[p.pid] = i

    def reap() -> None:   # not herder.process.tree.reaped: the floor imports nothing of herder's
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            i = children.pop(pid, None)
            if i is not None and not stopping:
                spawn(i)
        if stopping and not children and not done.done():
            done.set_result(None)

    def signal_all(sig: int) -> None:
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop() -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        signal_all(signal.SIGTERM)
        loop.call_later(stop_timeout, signal_all, signal.SIGKILL)
        reap()

    loop.add_signal_handler(signal.SIGCHLD, reap)
    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, stop)
    for i in range(len(argvs)):
        spawn(i)
    await done


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    asyncio.run(supervise([list(a) for a in spec["services"]], float(spec["stop_timeout"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
