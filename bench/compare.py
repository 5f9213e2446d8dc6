"""herder side by side with supervisord, circus and PM2: one run, tools alternating.

    bench/.build/venv/bin/python bench/compare.py [--quick] [--tools herder,pm2] [--out FILE]

(`make bench` installs the peers with bench/setup.sh, runs this, then bench/report.py.)
Every measure runs in rounds, and each round runs every tool in turn (herder, supervisord,
circus, pm2, herder, …), so a burst of load from elsewhere hits all tools alike. The
children are C programs that record their own start (bench/stamp.c, bench/flood.c) on
CLOCK_MONOTONIC, which this process shares, so a time is measured from outside the tool.
Raw results go to bench/out/results.json (or --out); nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import hashlib
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from daemontools import PEERS as DAEMONTOOLS
from procs import Tracker, alive, cpu_seconds, memory, stamps, sync, wait_stamps, wait_until
from recovery import recover
from scaling import scaling
from tools import BUILD, HERE, PYTHON_NODE, Floor, Herder, Session, Svc, Tool, stamp_services

ALL: list[type[Tool]] = [*PYTHON_NODE, *DAEMONTOOLS, Floor]

TRACKER = Tracker()
STAMP = BUILD / "stamp"   # the same path as tools.stamp_services uses
FLOOD = BUILD / "flood"
ORPHANS = HERE / "orphans.sh"
LINE, PER_WRITE = 100, 655


@dataclass(frozen=True)
class Plan:
    """How much of each measure to run (full, or --quick so a test can keep the harness alive)."""

    n: int
    restart_rounds: int
    kills_per_round: int
    start_rounds: int
    idle_seconds: float
    status_reps: int
    log_bytes: int
    log_rounds: int
    stop_rounds: int
    stop_cap: float
    scale_ns: tuple[int, ...]
    scale_idle_seconds: float
    recover_rounds: int
    stop_timeout: float = 2.0
    settle_seconds: float = 1.0   # after every service started, before memory is read (scale)


FULL = Plan(n=200, restart_rounds=4, kills_per_round=5, start_rounds=5, idle_seconds=30.0, status_reps=3,
            log_bytes=300_000_000, log_rounds=3, stop_rounds=3, stop_cap=60.0, scale_ns=(50, 200, 1000),
            scale_idle_seconds=30.0, recover_rounds=5)
# --quick keeps the harness from rotting (tests/bench): every measure once on every tool, the
# shortest timers that still run each path (a whole second of stop timeout: supervisord's
# stopwaitsecs and runit's `sv -w` take whole seconds), one kill per restart trial
QUICK = Plan(n=10, restart_rounds=1, kills_per_round=1, start_rounds=1, idle_seconds=0.5, status_reps=1,
             log_bytes=20_000_000, log_rounds=1, stop_rounds=1, stop_cap=4.0, scale_ns=(2, 5),
             scale_idle_seconds=0.2, recover_rounds=1, stop_timeout=1.0, settle_seconds=0.2)


class Results:
    """results[measure][tool] = {"samples": [...], "errors": [...], ...}."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, dict[str, Any]]] = {}

    def slot(self, measure: str, tool: str) -> dict[str, Any]:
        return self.data.setdefault(measure, {}).setdefault(tool, {"samples": [], "errors": []})

    def add(self, measure: str, tool: str, value: float) -> None:
        self.slot(measure, tool)["samples"].append(round(value, 4))

    def error(self, measure: str, tool: str, msg: str) -> None:
        print(f"bench: {measure}: {tool}: {msg}", file=sys.stderr)
        self.slot(measure, tool)["errors"].append(msg)


def session(tool: Tool, workdir: Path, services: list[Svc], stop_timeout: float,
            stamp_files: list[Path]) -> Session:
    return tool.launch(workdir, services, stop_timeout, TRACKER, stamp_files)


def run_trial(res: Results, measure: str, tool: Tool, fn: Callable[[], None]) -> None:
    """One tool's turn at one measure: an exception is recorded, never fatal to the run."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - a peer misbehaving is a result, not a crash
        res.error(measure, tool.name, f"{type(e).__name__}: {e}")


# 1. restart latency ------------------------------------------------------------------------

def restart(res: Results, tool: Tool, work: Path, kills: int, plan: Plan) -> None:
    out = work / "stamps"
    s = session(tool, work, stamp_services(1, out), plan.stop_timeout, [out])
    try:
        if wait_stamps(out, 1, 30) is None:
            raise TimeoutError("service did not start within 30 s")
        for i in range(kills):
            pid = stamps(out)[-1][0]
            time.sleep(tool.min_run_s)  # let the tool settle into "running"; between trials, not a sync
            t0 = time.monotonic_ns()
            os.kill(pid, signal.SIGKILL)
            got = wait_stamps(out, i + 2, 10)
            if got is None:
                res.error("restart_ms", tool.name, "no restart within 10 s")
                return
            res.add("restart_ms", tool.name, (got[-1][1] - t0) / 1e6)
    finally:
        s.close()


# 2-4. start-all, idle, status ----------------------------------------------------------------

def start_idle_status(res: Results, tool: Tool, work: Path, plan: Plan, idle: bool) -> None:
    out = work / "stamps"
    work.mkdir(parents=True, exist_ok=True)
    sync()
    t0 = time.monotonic_ns()
    s = session(tool, work, stamp_services(plan.n, out), plan.stop_timeout, [out])
    try:
        got = wait_stamps(out, plan.n, 60)
        if got is None:
            raise TimeoutError(f"{len(stamps(out))} of {plan.n} started within 60 s")
        res.add("start_ms", tool.name, (max(t for _, t in got[: plan.n]) - t0) / 1e6)
        res.slot("start_ms", tool.name).setdefault("first_ms", []).append(round((min(t for _, t in got) - t0) / 1e6, 1))
        if idle:
            measure_idle(res, tool, s, plan)
        if tool.takes("status_ms"):
            measure_status(res, tool, s, plan)
    finally:
        s.close()


def measure_idle(res: Results, tool: Tool, s: Session, plan: Plan) -> None:
    time.sleep(min(1.0, plan.idle_seconds))  # let start-up work finish; the window below is what we measure
    procs = s.own_processes()
    if not procs:
        raise RuntimeError("found none of the supervisor's processes")

    c0 = cpu_seconds(procs)
    time.sleep(plan.idle_seconds)
    c1 = cpu_seconds(procs)
    mem = memory(procs)
    res.add("idle_cpu_s", tool.name, sum(c1[k] - c0[k] for k in c1 if k in c0))
    res.add("idle_rss_mb", tool.name, mem["rss"] / 2**20)
    res.add("idle_pss_mb", tool.name, mem["pss"] / 2**20)
    names = sorted({p.name() for p in procs if p.is_running()})
    res.slot("idle_rss_mb", tool.name).update(uss_mb=round(mem["uss"] / 2**20, 1), processes=names,
                                              process_count=len(procs))
    if len(procs) <= 4:   # a few processes (herder's keeper and decision process): each one's share
        res.slot("idle_rss_mb", tool.name)["per_process"] = per_process(procs)
    res.slot("idle_cpu_s", tool.name)["seconds"] = plan.idle_seconds


def per_process(procs: list[psutil.Process]) -> list[dict[str, Any]]:
    out = []
    for p in procs:
        try:
            mi, cmd = p.memory_full_info(), " ".join(p.cmdline())
        except psutil.Error:
            continue
        role = ("keeper" if "herder.keeper" in cmd else "decision process" if "herder.runtime.dp" in cmd
                else p.name())
        out.append({"role": role, "rss_mb": round(mi.rss / 2**20, 1), "pss_mb": round(mi.pss / 2**20, 1),
                    "uss_mb": round(mi.uss / 2**20, 1)})
    return out


def measure_status(res: Results, tool: Tool, s: Session, plan: Plan) -> None:
    argv = tool.status_argv(s.workdir)
    if argv is None:
        res.slot("status_ms", tool.name)["pending"] = "no `herder status` in this build (control API not merged)"
        return
    for _ in range(plan.status_reps):
        t0 = time.perf_counter()
        r = subprocess.run(argv, cwd=s.workdir, env=tool.env(s.workdir), capture_output=True, text=True,
                           timeout=60)
        ms = (time.perf_counter() - t0) * 1000
        listed = tool.status_count(r.stdout)
        if listed < plan.n:
            res.error("status_ms", tool.name, f"exit {r.returncode}, listed {listed} of {plan.n}: "
                      f"{(r.stderr or r.stdout)[-200:]!r}")
            continue
        res.add("status_ms", tool.name, ms)


# 5. logs -----------------------------------------------------------------------------------

_EXPECTED: dict[int, tuple[int, str]] = {}



def expected(total: int) -> tuple[int, str]:
    if total not in _EXPECTED:
        h = hashlib.sha256()
        size = 0
        step = 1_000_000  # lines per chunk, to bound memory
        lines = total // LINE
        for start in range(0, lines, step):
            chunk = b"".join(b"%09d " % k + b"x" * (LINE - 11) + b"\n" for k in range(start, min(lines, start + step)))
            h.update(chunk)
            size += len(chunk)
        _EXPECTED[total] = (size, h.hexdigest())
    return _EXPECTED[total]


def check_log(path: Path, size: int) -> dict[str, int]:
    """Lost and duplicated lines, by line number (only when size or checksum differ)."""
    seen: set[int] = set()
    lines = bad = 0
    with open(path, "rb") as f:
        for line in f:
            lines += 1
            try:
                seen.add(int(line[:9]))
            except ValueError:
                bad += 1
    want = size // LINE
    return {"lines": lines, "lost_lines": want - len(seen & set(range(want))), "duplicated_lines": lines - len(seen) - bad,
            "malformed_lines": bad}


def logs(res: Results, tool: Tool, work: Path, plan: Plan) -> None:
    size, digest = expected(plan.log_bytes)
    work.mkdir(parents=True, exist_ok=True)
    out, log = work / "stamps", work / "flood.log"
    sync()
    s = session(tool, work, [Svc("flood", (str(FLOOD), str(out), str(plan.log_bytes)), log)], plan.stop_timeout,
                [out])
    try:
        got = wait_stamps(out, 1, 30)
        if got is None:
            raise TimeoutError("flood did not start within 30 s")
        t0 = got[0][1]
        last = [0, time.monotonic()]

        def done() -> bool:
            try:
                cur = log.stat().st_size
            except FileNotFoundError:
                cur = 0
            if cur != last[0]:
                last[:] = [cur, time.monotonic()]
            return cur >= size or time.monotonic() - last[1] > 10.0  # stalled 10 s: bytes are lost

        wait_until(done, 300, 0.001)
        t1 = time.monotonic_ns()
        have = log.stat().st_size if log.exists() else 0
        slot = res.slot("logs_mbps", tool.name)
        if have >= size:
            res.add("logs_mbps", tool.name, size / 1e6 / ((t1 - t0) / 1e9))
        if len(stamps(out)) > 1:
            slot.setdefault("notes", []).append("the flood child was restarted during the run")
        h = hashlib.sha256()
        with open(log, "rb") as f:
            while chunk := f.read(8 << 20):
                h.update(chunk)
        check = {"bytes_expected": size, "bytes_in_file": have, "sha256_ok": h.hexdigest() == digest}
        if not check["sha256_ok"]:
            check.update(check_log(log, size))
        slot.setdefault("checks", []).append(check)
        if have < size:
            res.error("logs_mbps", tool.name, f"file stalled at {have} of {size} bytes")
    finally:
        s.close()
        log.unlink(missing_ok=True)


# 6. stop-all -------------------------------------------------------------------------------

def stop_all(res: Results, tool: Tool, work: Path, plan: Plan, measure: str = "stop_ms", exit: bool = False) -> None:
    out = work / "stamps"
    s = session(tool, work, stamp_services(plan.n, out, stubborn=True), plan.stop_timeout, [out])
    try:
        got = wait_stamps(out, plan.n, 60)
        if got is None:
            raise TimeoutError(f"{len(stamps(out))} of {plan.n} started within 60 s")
        time.sleep(0.5)  # the stamp is written before the SIGTERM handler is set: let them all set it
        pids = [pid for pid, _ in got]
        s.tracker.add_tree(s.roots())     # before the clock: a walk of every process on the machine
        t0 = time.monotonic()
        s.begin_stop(exit=exit, tracked=True)
        if wait_until(lambda: not any(alive(p) for p in pids), plan.stop_cap, 0.005):
            res.add(measure, tool.name, (time.monotonic() - t0) * 1000)
        else:
            left = sum(alive(p) for p in pids)
            res.slot(measure, tool.name).setdefault("capped", []).append(
                {"cap_s": plan.stop_cap, "still_running": left})
    finally:
        s.close(timeout=1)


# 7. orphans --------------------------------------------------------------------------------

def orphans(res: Results, tool: Tool, work: Path, plan: Plan) -> None:
    pidfile = work / "orphans"
    s = session(tool, work, [Svc("orph", (str(ORPHANS), str(pidfile)))], plan.stop_timeout, [])
    left: list[tuple[str, int]] = []
    try:
        def both() -> bool:
            return pidfile.exists() and len(pidfile.read_text().split("\n")) > 2

        if not wait_until(both, 30, 0.005):
            raise TimeoutError("orphans.sh did not start within 30 s")
        kids = [(kind, int(pid)) for kind, pid in (line.split() for line in pidfile.read_text().splitlines())]
        for _, pid in kids:
            TRACKER.add(pid, ("sleep",))
        s.begin_stop(exit=True)
        wait_until(lambda: not any(alive(r) for r in s.roots() + [s.launcher.pid]), 30, 0.01)
        wait_until(lambda: not any(alive(p) for _, p in kids), 2.0, 0.01)  # a kill may still be in flight
        left = [(kind, pid) for kind, pid in kids if alive(pid)]
    finally:
        s.close(timeout=5)
    slot = res.slot("orphans", tool.name)
    slot["samples"].append(len(left))
    slot.setdefault("survivors", []).append([kind for kind, _ in left])


# the run -----------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "kernel": platform.release(), "os": platform.platform(), "python": platform.python_version(),
            "loadavg_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 10, one round, short idle: keeps the harness alive")
    ap.add_argument("--tools", help="comma-separated subset of: " + ", ".join(t.name for t in ALL))
    ap.add_argument("--measures", default="restart,start,logs,stop,orphans,scale,recover",
                    help="subset of restart,start (with idle and status),logs,stop,orphans,scale (memory per "
                    "service, start and idle at the largest N),recover (kill -9 of herder)")
    ap.add_argument("--log-mb", type=int, help="override the size of the log flood (MB)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "results.json")
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.log_mb:
        plan = dataclasses.replace(plan, log_bytes=args.log_mb * 1_000_000)
    wanted = set(args.tools.split(",")) if args.tools else None
    tools: list[Tool] = []
    skipped: dict[str, str] = {}
    for cls in ALL:
        t = cls()
        if wanted is not None and t.name not in wanted:
            continue
        why = t.available()
        if why:
            skipped[t.name] = why
            print(f"bench: skipping {t.name}: {why}", file=sys.stderr)
        else:
            tools.append(t)
    if not tools:
        print("bench: no tool to measure", file=sys.stderr)
        return 2
    for exe in (STAMP, FLOOD):
        if not exe.exists():
            print(f"bench: {exe} missing: run bench/setup.sh", file=sys.stderr)
            return 2

    root = Path(tempfile.mkdtemp(prefix="herder-bench-"))
    atexit.register(TRACKER.kill_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res = Results()
    started = time.time()
    info: dict[str, Any] = {"machine": machine(), "quick": args.quick, "plan": plan.__dict__,
                            "versions": {t.name: t.version() for t in tools},
                            "settings": {t.name: t.settings for t in tools}, "skipped": skipped,
                            "commands": {t.name: t.commands for t in tools},
                            "only": {t.name: sorted(t.only) for t in tools if t.only is not None}}
    herder = next((t for t in tools if isinstance(t, Herder)), None)
    if herder:
        info["herder_logs_mode"] = herder.logs_mode(root / "probe")
        info["herder_status"] = "available" if herder.has_status() else "pending (control API not merged)"
    measures = set(args.measures.split(","))

    def rounds(measure: str, count: int, fn: Callable[[Tool, Path, int], None],
               only: Callable[[Tool], bool] = lambda t: True) -> None:
        if measure.split("_")[0] not in measures:
            return
        for r in range(count):
            for t in (t for t in tools if only(t) and t.takes(measure)):
                t0 = time.monotonic()
                run_trial(res, measure, t, lambda: fn(t, root / f"{measure}-{r}-{t.name}", r))
                print(f"bench: {measure} round {r + 1}/{count}: {t.name} ({time.monotonic() - t0:.1f} s)",
                      file=sys.stderr, flush=True)

    try:
        rounds("restart_ms", plan.restart_rounds, lambda t, w, r: restart(res, t, w, plan.kills_per_round, plan))
        rounds("start_ms", plan.start_rounds, lambda t, w, r: start_idle_status(res, t, w, plan, idle=r == 0))
        rounds("logs_mbps", plan.log_rounds, lambda t, w, r: logs(res, t, w, plan))
        rounds("stop_ms", plan.stop_rounds, lambda t, w, r: stop_all(res, t, w, plan))
        # supervisorctl shutdown runs into the cap (60 s) with 200 stubborn programs: one round says it
        rounds("stop_exit_ms", 1, lambda t, w, r: stop_all(res, t, w, plan, "stop_exit_ms", exit=True),
               only=lambda t: t.exit_row)
        rounds("orphans", 1, lambda t, w, r: orphans(res, t, w, plan))
        rounds("scale", 1, lambda t, w, r: scaling(res, t, w, plan, TRACKER))
        rounds("recover_ms", plan.recover_rounds, lambda t, w, r: recover(res, t, w, r, plan, TRACKER),
               only=lambda t: isinstance(t, Herder))
    finally:
        killed = TRACKER.kill_all()
        shutil.rmtree(root, ignore_errors=True)
    info["machine"]["loadavg_end"] = os.getloadavg()
    info["seconds"] = round(time.time() - started, 1)
    info["leftovers_killed"] = len(killed)
    for measure in res.data.values():
        for slot in measure.values():
            xs = slot["samples"]
            if xs:
                slot.update(median=round(statistics.median(xs), 4), min=min(xs), max=max(xs), n=len(xs))
    doc = {"info": info, "results": res.data}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"bench: wrote {args.out} ({info['seconds']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
