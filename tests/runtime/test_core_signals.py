"""A one-shot signal (SIGTERM) is never lost, even when the loop's self-pipe is full.

asyncio learns of signals through one byte each in its self-pipe; other threads'
call_soon_threadsafe fill the same pipe (~230 writes fill an AF_UNIX socket). This test
fills it for real while the loop is blocked, then delivers SIGTERM: herder must still stop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from herdertest import run_async

from herder.config import load
from herder.runtime.supervisor import Supervisor


def test_sigterm_survives_a_full_self_pipe(make_config: Callable[..., Path]) -> None:
    cfg = load(make_config('[services.a]\ncommand = ["sleep", "1000"]\n'))

    async def body() -> int:
        loop = asyncio.get_running_loop()
        sup = Supervisor(cfg)
        started = asyncio.Event()
        task = loop.create_task(sup.run(install_signals=True, ready=started.set))
        await started.wait()
        while sup.instances["a"].pid is None:
            await asyncio.sleep(0)   # yields to the loop only; the spawn happens on it

        def flood() -> None:          # a thread waking the loop 2,000 times, as a busy component might
            for _ in range(2000):
                loop.call_soon_threadsafe(lambda: None)

        t = threading.Thread(target=flood)
        t.start()
        t.join()                      # the loop is blocked in this join: the self-pipe is full now
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)              # still blocked: the signal's byte cannot be written (the thing under test)
        async with asyncio.timeout(30):
            return await task

    assert run_async(body()) == 0


def test_a_child_exit_while_the_self_pipe_is_full_is_still_reaped(make_config: Callable[..., Path]) -> None:
    """The SIGCHLD byte of a child that dies while the self-pipe is full is lost: herder must
    reap it anyway (before the fix, the stop that followed hung forever on a zombie)."""
    import select

    from herder.testing.harness import run_supervisor

    cfg = load(make_config('[services.a]\ncommand = ["sleep", "1000"]\nrestart = "never"\n'))

    async def body() -> None:
        loop = asyncio.get_running_loop()
        async with run_supervisor(cfg) as r:
            await r.wait_state("a", "running")
            pid = r.sup.instances["a"].pid
            assert pid is not None
            pidfd = os.pidfd_open(pid)
            t = threading.Thread(target=lambda: [loop.call_soon_threadsafe(lambda: None) for _ in range(2000)])
            t.start()
            t.join()                          # the loop is blocked here: its self-pipe is full
            os.kill(pid, signal.SIGKILL)
            ready, _, _ = select.select([pidfd], [], [], 10)   # the child has exited (a zombie now)
            os.close(pidfd)
            assert ready, "the child did not die"
            await r.wait_for(lambda e: e.instance == "a" and e.kind == "exit", timeout=10)

    run_async(body())
