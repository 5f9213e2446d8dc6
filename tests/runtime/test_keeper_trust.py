"""What the decision process and the keeper do not take on trust (issue 12, review findings 9
and 13), with real processes.

- A spawn request has a deadline: a keeper that does not answer (stopped here with
  SIGSTOP, a real stall) makes the instance's start fail through the core, never a
  decision process that waits forever; the late answer's process is killed, since the
  instance's start already failed and herder lists no such process.
- A pidfd for a process the keeper did not fork is opened first, then checked against
  the record (start time, cookie): a mismatch is "gone, status unknown", never a stranger
  followed and later signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from herdertest import PROGRAMS, PY, alive, run_async, toml_list, until, wait_until

from herder.config import load
from herder.keeper.children import Child, Children
from herder.process import tree
from herder.runtime import processes
from herder.testing.harness import run_supervisor

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the keeper is Linux-first (pidfd, SCM_RIGHTS)")


def test_a_spawn_the_keeper_does_not_answer_fails_the_start_and_its_late_process_is_killed(
        make_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "SPAWN_DEADLINE", 0.5)
    late: list[int] = []
    kill_late = processes.Processes._kill_late

    def spy(self: processes.Processes, msg: dict[str, Any]) -> None:    # the real kill, and which pid it was
        late.append(int(msg["pid"]))
        kill_late(self, msg)

    monkeypatch.setattr(processes.Processes, "_kill_late", spy)
    cfg = load(make_config(f'''
        [services.w]
        command = {toml_list([PY, str(PROGRAMS / "probe.py"), "wait"])}
        autostart = false
        backoff = {{ initial = "1h" }}
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            keeper = r.sup.link.pid if r.sup.link is not None else None
            assert keeper is not None
            os.kill(keeper, signal.SIGSTOP)       # a keeper that does not answer
            try:
                mark = r.mark()
                r.sup.start(["w"])
                ev = await r.wait_for(lambda e: e.kind == "spawn_failed", since=mark)
                assert "did not answer the spawn within 0.5s" in ev.message
                assert not r.sup.procs.in_flight            # nothing waits on it any more
                assert r.sup.instances["w"].state.value in ("backoff", "failed"), r.sup.instances["w"].state
            finally:
                os.kill(keeper, signal.SIGCONT)
            await until(lambda: bool(late), timeout=15, what="the keeper's late answer")   # the old request, now
            await until(lambda: not alive(late[0]), timeout=15, what="the late spawn's process killed")
            assert r.sup.instances["w"].pid is None          # ... which herder does not list

    run_async(body())


def test_a_followed_pid_is_checked_after_its_pidfd_is_open() -> None:
    env = {**os.environ, "HERDER_INSTANCE_ID": "tag.cookie-of-this-test"}
    proc = subprocess.Popen(["sleep", "600"], env=env)
    try:
        # Popen returns once exec has begun; the kernel shows the new environment a moment later
        wait_until("the child's environment", lambda: tree.cookie(proc.pid), timeout=10, interval=0.001)
        st = tree.start_time(proc.pid)
        kids = Children()
        right = Child("a", 1, proc.pid, st, "tag.cookie-of-this-test")
        fd = kids.watch(right)
        assert fd >= 0
        os.close(fd)
        for wrong in (Child("b", 1, proc.pid, (st or 0) + 1, "tag.cookie-of-this-test"),    # a reused pid
                      Child("c", 1, proc.pid, st, "tag.another-instance")):                  # not this instance
            assert kids.watch(wrong) == -1 and wrong.pidfd == -1
        unknown = Child("d", 1, proc.pid, None, "")       # nothing recorded to check: followed
        fd = kids.watch(unknown)
        assert fd >= 0
        os.close(fd)
    finally:
        proc.kill()
        proc.wait()
