"""Per-instance CPU and memory (herder.process.usage) of real process trees, with the
sampling window on a fake clock so the CPU percentage is checked exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from herder.process.tree import descendants, read_small, write_small
from herder.process.usage import Sampler, read_stat
from herder.testing import FakeClock

TREE = ("import subprocess\n"
        "c = subprocess.Popen(['sleep', '1000'])\n"
        "print(c.pid, flush=True)\n"
        "x = 0\n"
        "while True:\n"
        "    x += 1\n")
NOTHING = {"cpu": None, "rss": None, "procs": 0}


def test_a_tree_without_a_cgroup_counts_every_process_and_the_window_is_exact() -> None:
    with subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True) as main:
        assert main.stdout is not None
        child = int(main.stdout.readline())
        asleep(child)                             # the tree is complete: main burning CPU, a sleeping child
        try:
            clock = FakeClock()
            s = Sampler(clock.now)
            first = s.sample("busy", main.pid, descendants(main.pid))
            assert first["procs"] == 2
            st = read_stat(child)
            assert st is not None and first["rss"] > st.rss > 0
            burned(main.pid, more_than=first["cpu_seconds"] + 0.05)
            clock.advance(10.0)
            second = s.sample("busy", main.pid, descendants(main.pid))
            spent = second["cpu_seconds"] - first["cpu_seconds"]
            assert spent > 0                           # it burns CPU all the time
            assert abs(second["cpu"] - spent / 10.0 * 100) <= 0.11   # % of one core over the 10 s window
            clock.advance(0.1)                         # a second client right after: the same figure
            assert s.sample("busy", main.pid, descendants(main.pid))["cpu"] == second["cpu"]
            s.forget(keep=[])                          # a reload removed it
            assert "busy" not in s._last
        finally:
            main.send_signal(signal.SIGKILL)
            os.kill(child, signal.SIGKILL)
    assert Sampler().sample("busy", main.pid, descendants(main.pid)) == NOTHING   # gone


def asleep(pid: int) -> None:
    """Until the child runs `sleep` and sleeps in it: between fork and exec, and early in exec,
    it has no memory of its own (rss 0, seen once in CI under load). Bounded."""
    deadline = time.monotonic() + 60
    while True:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        comm, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
        if comm == "sleep" and state == "S":
            return
        assert time.monotonic() < deadline, f"the child never slept in `sleep`: {comm} {state}"
        time.sleep(0.01)


def burned(pid: int, more_than: float) -> None:
    """Until the process has used more CPU than that (it only has /proc to show it): look
    again every 10 ms, bounded."""
    deadline = time.monotonic() + 60
    while (st := read_stat(pid)) is not None and st.cpu <= more_than:
        assert time.monotonic() < deadline, "the busy loop never got the CPU"
        time.sleep(0.01)


def test_an_instance_that_is_not_running_has_no_figures() -> None:
    assert Sampler().sample("idle", None, ()) == NOTHING


def test_a_kernel_file_longer_than_one_read_is_read_whole(tmp_path: Path) -> None:
    """read_small reads to the end: /proc/self/maps of an interpreter spans pages (the kernel
    hands out about one per read), and a plain file larger than one 64 KiB read."""
    with open("/proc/self/maps", "rb") as f:
        last = f.read().splitlines()[-1]       # the last mapping (x86-64: [vsyscall]); it never moves
    maps = read_small(f"/proc/{os.getpid()}/maps")
    assert len(maps) > 4096 and maps.splitlines()[-1] == last
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 1000)
    assert read_small(str(big)) == bytes(range(256)) * 1000
    (tmp_path / "empty").touch()
    assert read_small(str(tmp_path / "empty")) == b""
    with pytest.raises(FileNotFoundError):
        read_small(str(tmp_path / "absent"))
    write_small(str(big), "x")            # one write at offset 0, no truncation (as a cgroup file takes it)
    assert read_small(str(big))[:2] == b"x\x01"
