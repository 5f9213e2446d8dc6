"""The floor under herder's stop-all figure: the least a Python asyncio supervisor can do.

    bench/.build/venv/bin/python bench/stop_floor.py [--n 200] [--timeout 2] [--rounds 3] [--kill cgroup]

The job is compare.py's `stop_all`: N children of bench/stamp.c in "stubborn" mode (they
ignore SIGTERM), each in its own session, the supervisor is sent SIGTERM, and the figure
is the time from that signal until every child is gone. The supervisor here is one asyncio
loop and nothing else: the children are `subprocess.Popen`ed (new session, close_fds,
stdin/stdout/stderr to /dev/null, as restart_floor.py does); on SIGTERM (through
`loop.add_signal_handler`, as herder's) it sends SIGTERM to every child, arms one
`loop.call_later(timeout, …)` that sends SIGKILL to every child, reaps on SIGCHLD and exits
when none is left: no journal, no events, no second process. `--kill cgroup` puts each
child in its own cgroup and kills it the way herder kills a tree (herder.process.cgroup:
read cgroup.procs, write cgroup.kill), so the floor of herder's own kill is measured too;
`--kill pid+cgroup` sends every main process its SIGKILL first, then kills every cgroup.

The measurement is compare.py's own: this module runs `compare.stop_all` on a `Floor` tool,
so the clock (the harness's `time.monotonic()` before `Session.begin_stop`), the "all gone"
test (no pid left that is alive and not a zombie, polled every 5 ms) and the 0.5 s settle
are the ones herder's figure is taken with. The supervisor also writes its own
CLOCK_MONOTONIC stamps (the clock the harness shares), so each round is split into: the
harness's work before it sends the signal (it walked the tool's process tree with psutil
there, 10-55 ms in every tool's figure, until it was moved before the clock), the signal's
delivery, the SIGTERM fan-out, the timer's lateness, the SIGKILL fan-out, and what is left
(the victims dying and the harness seeing it).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import compare
from tools import Session, Svc, Tool

from herder.process.cgroup import Cgroup, Cgroups  # --kill cgroup: herder's own kill, one cgroup a child
from herder.process.tree import reaped

TIMES = "floor-times.json"


# ---- the supervisor (a child of the harness: `stop_floor.py --serve CONFIG`) ----------------

async def serve(config: Path) -> None:
    cfg = json.loads(config.read_text())
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    stamps: dict[str, int] = {}
    children: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def reap() -> None:
        for pid, _ in reaped():
            p = children.pop(pid, None)
            if p is not None:
                p.returncode = 0   # reaped here: Popen must not wait for it
        if stopping and not children and not done.done():
            stamps["reaped"] = time.monotonic_ns()
            done.set_result(None)

    def kill() -> None:
        stamps["fired"] = time.monotonic_ns()
        if cfg["kill"] != "cgroup":
            for pid in list(children):
                os.kill(pid, signal.SIGKILL)
        for cg in groups:
            cg.kill()
        stamps["killed"] = time.monotonic_ns()

    def stop() -> None:
        nonlocal stopping
        stamps["received"] = time.monotonic_ns()
        stopping = True
        for pid in list(children):
            os.kill(pid, signal.SIGTERM)
        stamps["termed"] = time.monotonic_ns()
        loop.call_later(cfg["timeout"], kill)
        stamps["armed"] = time.monotonic_ns()

    cgroups = Cgroups.detect(config.parent) if cfg["kill"] != "pid" else None
    if cfg["kill"] != "pid" and cgroups is None:
        raise SystemExit(f"stop floor: --kill {cfg['kill']} needs cgroup2 and root")
    groups: list[Cgroup] = []
    loop.add_signal_handler(signal.SIGCHLD, reap)
    for i, argv in enumerate(cfg["argv"]):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True, close_fds=True)
        children[p.pid] = p
        if cgroups is not None:
            groups.append(cgroups.for_instance(f"c{i}"))
            groups[-1].enter(p.pid)     # after the exec: the stamp is only pausing, nothing forks
    loop.add_signal_handler(signal.SIGTERM, stop)
    await done
    (config.parent / TIMES).write_text(json.dumps(stamps))
    for cg in groups:
        cg.remove()
    if cgroups is not None:
        cgroups.remove_root()


# ---- the harness side: a compare.py tool ----------------------------------------------------

class Floor(Tool):
    """This module's supervisor as a tool of compare.py (stop-all only)."""

    name = "floor"
    settings: ClassVar[dict[str, str]] = {"spawn": "subprocess.Popen, start_new_session",
                                          "kill": "os.kill of the main pid, or cgroup.kill (--kill cgroup)"}
    commands: ClassVar[dict[str, str]] = {"launch": "stop_floor.py --serve CONFIG", "stop": "SIGTERM to it"}
    stop_exits = True

    def __init__(self, kill: str = "pid") -> None:
        super().__init__()
        self.kill = kill
        if kill != "pid":
            self.name = f"floor-{kill}"
        self.t0_ns: int | None = None    # Session.begin_stop, right after stop_all's t0
        self.sent_ns = 0

    def available(self) -> str | None:
        return None

    def version(self) -> str:
        return f"python {platform.python_version()}"

    def write_config(self, workdir: Path, services: list[Svc], stop_timeout: float) -> None:
        doc = {"timeout": stop_timeout, "argv": [list(s.argv) for s in services], "kill": self.kill}
        (workdir / "floor.json").write_text(json.dumps(doc))

    def launch_argv(self, workdir: Path) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "--serve", str(workdir / "floor.json")]

    def begin_stop(self, s: Session) -> subprocess.Popen[bytes] | None:
        self.sent_ns = time.monotonic_ns()
        if self.t0_ns is None:     # stop_all's clock starts right before (its tree walk now comes first)
            self.t0_ns = self.sent_ns
        s.launcher.send_signal(signal.SIGTERM)
        return None

    def status_argv(self, workdir: Path) -> list[str] | None:
        return None


PARTS = ("before_signal", "delivery", "sigterms", "timer_late", "sigkills", "gone_seen")


def parts(tool: Floor, stamps: dict[str, int], total_ms: float, timeout: float) -> dict[str, float]:
    """One round split on the shared monotonic clock (ms); the parts add up to the total."""
    t0 = tool.t0_ns or tool.sent_ns
    ms = {"before_signal": tool.sent_ns - t0, "delivery": stamps["received"] - tool.sent_ns,
          "sigterms": stamps["armed"] - stamps["received"],
          "timer_late": stamps["fired"] - stamps["armed"] - timeout * 1e9,
          "sigkills": stamps["killed"] - stamps["fired"]}
    out = {k: v / 1e6 for k, v in ms.items()}
    out["gone_seen"] = total_ms - (stamps["killed"] - t0) / 1e6
    return out


def run(n: int, timeout: float, rounds: int,
        kill: str) -> tuple[list[float], list[dict[str, float]], dict[str, object]]:
    plan = dataclasses.replace(compare.FULL, n=n, stop_timeout=timeout)
    res = compare.Results()
    root = Path(tempfile.mkdtemp(prefix="herder-stop-floor-"))
    split: list[dict[str, float]] = []
    try:
        for r in range(rounds):
            tool = Floor(kill)
            work = root / f"stop-{r}"
            compare.run_trial(res, "stop_ms", tool, lambda t=tool, w=work: compare.stop_all(res, t, w, plan))
            xs = res.slot("stop_ms", tool.name)["samples"]
            if len(xs) == len(split) + 1 and (work / TIMES).exists():
                split.append(parts(tool, json.loads((work / TIMES).read_text()), xs[-1], timeout))
    finally:
        compare.TRACKER.kill_all()
        shutil.rmtree(root, ignore_errors=True)
    name = Floor(kill).name
    return res.slot("stop_ms", name)["samples"], split, res.slot("stop_ms", name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="children (default 200, as compare.py)")
    ap.add_argument("--timeout", type=float, default=2.0, help="stop timeout in seconds (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="stop-alls to measure (default 3, as compare.py)")
    ap.add_argument("--kill", choices=("pid", "cgroup", "pid+cgroup"), default="pid",
                    help="SIGKILL by os.kill of each child (default); or each child in its own cgroup, killed the "
                    "way herder kills a tree (herder.process.cgroup: cgroup.procs read, cgroup.kill write); or "
                    "os.kill of every child first, then that cgroup kill of every child")
    ap.add_argument("--out", type=Path, help="write samples and their split here (JSON)")
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    if not compare.STAMP.exists():
        print(f"stop floor: {compare.STAMP} missing: run bench/setup.sh", file=sys.stderr)
        return 2
    load0 = os.getloadavg()[0]
    xs, split, slot = run(args.n, args.timeout, args.rounds, args.kill)
    load1 = os.getloadavg()[0]
    if not xs:
        print(f"stop floor: no sample: {slot}", file=sys.stderr)
        return 1
    print(f"stop floor (asyncio + Popen, no herder, kill by {args.kill}), {args.n} stubborn, "
          f"timeout {args.timeout:g} s: median "
          f"{statistics.median(xs):.1f} ms, min {min(xs):.1f}, max {max(xs):.1f}, n {len(xs)}; "
          f"load {load0:.2f}-{load1:.2f}", file=sys.stderr)
    if split:
        print("  split, median (min-max) ms: " + ", ".join(
            f"{k} {statistics.median(s[k] for s in split):.1f} ({min(s[k] for s in split):.1f}-"
            f"{max(s[k] for s in split):.1f})" for k in PARTS), file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps({"samples": xs, "split": split, "load": [load0, load1],
                                        "errors": slot.get("errors", []), "capped": slot.get("capped", [])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
