"""The raw log fast path (docs/logs.md) under survive's guarantees, with real processes.

Services whose logs take the fast path (`timestamps = false`, stdout alone in its file:
the kernel splices their pipes into the files) flood numbered lines while herder is upgraded in place twice (with
rotation at 1 MB: its cuts pass through userspace) and while its keeper is killed -9 (the
decision process takes the pipes over and becomes the keeper). What a user checks
afterwards: the same pids, and every line in the files exactly once, in order.

That the fast path is what ran is observable from outside: a keeper copying a pipe by
splice holds a second descriptor of the log file (the copier's own, opened read-write
through /proc), besides the file's append descriptor.
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

from ctl_harness import Herd
from herdertest import wait_until
from test_survive import keeper_and_dp, kill_keeper, marked, services

FLOOD = ("import sys, time\n"
         "tag, out, i = sys.argv[1].encode(), sys.stdout.buffer, 0\n"
         "while True:\n"
         "    out.write(b''.join(b'%s %d\\n' % (tag, i + k) for k in range(1, 201)))\n"
         "    out.flush()\n"
         "    i += 200\n"
         "    time.sleep(0.002)\n")


def flooders(tag: str, n: int, logs: str) -> str:
    # stderr in a file of its own: stdout alone in its file is what takes the fast path
    # (with stderr = "merge" both streams are framed into whole lines instead)
    conf = f"[defaults.logs]\ntimestamps = false\nstderr = \"auto\"\n{logs}"
    for i in range(n):
        conf += f"[services.f{i}]\ncommand = {json.dumps([sys.executable, '-c', FLOOD, f'{tag}.{i}'])}\n"
    return conf


def fast(keeper: int, log: Path) -> bool:
    """The keeper holds the copier's second descriptor of this log file (the fast path)."""
    n = 0
    for fd in os.listdir(f"/proc/{keeper}/fd"):
        try:
            n += os.readlink(f"/proc/{keeper}/fd/{fd}") == str(log)
        except OSError:
            continue
    return n >= 2


def lines(log: Path, tag: str) -> list[int]:
    """The numbers of this tag's whole lines, over the rotated files (oldest first) and the
    current one. A last line cut by the stop (the flooder killed mid-write) is not counted."""
    files = sorted(log.parent.glob(f"{log.stem}.2*{log.suffix}")) + [log]
    data = b"".join(f.read_bytes() for f in files)
    out = []
    for line in data.split(b"\n")[:-1]:
        parts = line.split()
        if len(parts) == 2 and parts[0] == tag.encode():
            out.append(int(parts[1]))
    return out


def grows(log: Path, tag: str) -> None:
    n = len(lines(log, tag)) if log.exists() else 0
    wait_until(f"{log.name} to grow", lambda: len(lines(log, tag)) > n + 1000 or None, timeout=60, interval=0.02)


def exact(h: Herd, tag: str, n: int) -> None:
    for i in range(n):
        got = lines(h.state / "logs" / f"f{i}.log", f"{tag}.{i}")
        assert len(got) > 1000, f"f{i}: only {len(got)} lines"
        assert got == list(range(1, len(got) + 1)), f"f{i}: a gap or a repeat"


def started(herd: Callable[..., Herd], tag: str, logs: str) -> tuple[Herd, dict[str, int], int, Path]:
    """Two flooders under `herder up -d`, once f0's output takes the fast path: the herd,
    the services' pids, the keeper, f0's log."""
    h = herd(flooders(tag, 2, logs))
    assert h.up().returncode == 0
    before = {n: x["pid"] for n, x in services(h).items()}
    keeper, _ = keeper_and_dp(h)
    log = h.state / "logs" / "f0.log"
    wait_until("the fast path", lambda: fast(keeper, log), timeout=60, interval=0.02)
    return h, before, keeper, log


def test_upgrades_under_a_raw_flood_with_rotation_keep_every_line_once(herd: Callable[..., Herd]) -> None:
    tag = f"rawupg{os.getpid()}x{random.randrange(10 ** 6)}"
    h, before, keeper, log = started(herd, tag, 'max_size = "1MB"\nmax_files = 10000\ncompress = false\n')
    for _ in range(2):
        grows(log, f"{tag}.0")
        r = h.cli("upgrade")
        assert r.returncode == 0, r.stderr
        wait_until("the fast path after the upgrade", lambda: fast(keeper, log), timeout=60, interval=0.02)
    grows(log, f"{tag}.0")
    now = services(h)
    assert {n: x["pid"] for n, x in now.items()} == before
    assert all(x["restarts"] == 0 for x in now.values())
    assert keeper_and_dp(h)[0] == keeper
    r = h.cli("down")
    assert r.returncode == 0, r.stderr
    assert len(list(log.parent.glob("f0.2*.log"))) >= 2, "no rotation happened"
    exact(h, tag, 2)


def test_kill_9_of_the_keeper_under_a_raw_flood_loses_and_repeats_nothing(herd: Callable[..., Herd]) -> None:
    tag = f"rawkill{os.getpid()}x{random.randrange(10 ** 6)}"
    h, before, _, log = started(herd, tag, 'max_size = "0"\n')
    grows(log, f"{tag}.0")
    dp = kill_keeper(h)
    wait_until("the fast path in the new keeper", lambda: fast(dp, log), timeout=60, interval=0.02)
    grows(log, f"{tag}.0")
    now = services(h)
    assert {n: x["pid"] for n, x in now.items()} == before       # nothing restarted, nothing got SIGPIPE
    assert all(x["restarts"] == 0 for x in now.values())
    events = h.cli("events", "-n", "200").stdout
    assert "log_lost" not in events, events       # nothing was in flight: the kernel moves the bytes
    r = h.cli("down")
    assert r.returncode == 0, r.stderr
    exact(h, tag, 2)
    assert not marked(tag)
