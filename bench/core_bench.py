"""Core figures for issue 2: restart latency, start-200, idle CPU and RSS.

Runs `herder up` as users do (a subprocess), with bench/stamp.c as the child: it records
its own start time (CLOCK_MONOTONIC, shared by all processes), so kill -> next start is
measured from outside herder. Prints JSON; `--quick` for a short run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).parent
BUILD = HERE / ".build"


def build_stamp() -> Path:
    BUILD.mkdir(exist_ok=True)
    exe = BUILD / "stamp"
    if not exe.exists() or exe.stat().st_mtime < (HERE / "stamp.c").stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(HERE / "stamp.c")], check=True)
    return exe


def stamps(path: Path) -> list[tuple[int, int]]:
    try:
        return [tuple(map(int, line.split())) for line in path.read_text().splitlines() if line]  # type: ignore[misc]
    except FileNotFoundError:
        return []


def wait_lines(path: Path, n: int, timeout: float = 30.0) -> list[tuple[int, int]]:
    deadline = time.monotonic() + timeout
    while True:
        got = stamps(path)
        if len(got) >= n:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path}: {len(got)} of {n} stamps")
        time.sleep(0.0005)


def herder_up(cfg: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return subprocess.Popen([sys.executable, "-m", "herder", "up", "-c", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)


def stop(p: subprocess.Popen[bytes]) -> None:
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)


def config(tmp: Path, stamp: Path, n: int, out: Path, extra: str = "") -> Path:
    cfg = tmp / "herder.toml"
    cfg.write_text(f"""
[defaults]
restart = "always"
min_uptime = "0s"
backoff = {{ initial = "0s" }}
start_limit = {{ burst = 100000 }}
logs = {{ stdout = "null" }}
{extra}
""" + "".join(f'[services.s{i}]\ncommand = ["{stamp}", "{out}"]\n' for i in range(n)))
    return cfg


def restart_latency(stamp: Path, kills: int) -> list[float]:
    with tempfile.TemporaryDirectory() as d:
        tmp, out = Path(d), Path(d) / "stamps"
        p = herder_up(config(tmp, stamp, 1, out))
        try:
            lat = []
            for i in range(kills):
                pid, _ = wait_lines(out, i + 1)[-1]
                time.sleep(0.05)  # let the service settle; not a synchronisation
                t0 = time.monotonic_ns()
                os.kill(pid, signal.SIGKILL)
                _, started = wait_lines(out, i + 2)[-1]
                lat.append((started - t0) / 1e6)
            return lat
        finally:
            stop(p)


def start_all(stamp: Path, n: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as d:
        tmp, out = Path(d), Path(d) / "stamps"
        cfg = config(tmp, stamp, n, out)
        subprocess.run(["sync"])
        t0 = time.monotonic_ns()
        p = herder_up(cfg)
        try:
            got = wait_lines(out, n, timeout=60)
            total = (max(s for _, s in got) - t0) / 1e6
            first = (min(s for _, s in got) - t0) / 1e6
            return total, first, total - first
        finally:
            stop(p)


def idle(stamp: Path, n: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        tmp, out = Path(d), Path(d) / "stamps"
        p = herder_up(config(tmp, stamp, n, out))
        try:
            wait_lines(out, n, timeout=60)
            time.sleep(1.0)
            proc = psutil.Process(p.pid)
            c0 = proc.cpu_times()
            time.sleep(seconds)
            c1 = proc.cpu_times()
            mem = proc.memory_info()
            return {"cpu_seconds": round((c1.user + c1.system) - (c0.user + c0.system), 4), "seconds": seconds,
                    "rss_mb": round(mem.rss / 2**20, 1), "uss_mb": round(proc.memory_full_info().uss / 2**20, 1)}
        finally:
            stop(p)


def summary(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 3), "min": round(min(xs), 3), "max": round(max(xs), 3), "n": len(xs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    stamp = build_stamp()
    n = 20 if args.quick else 200
    res: dict[str, object] = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "restart_ms": summary(restart_latency(stamp, 5 if args.quick else 20)),
    }
    runs = [start_all(stamp, n) for _ in range(2 if args.quick else 5)]
    res[f"start_{n}_ms"] = summary([r[0] for r in runs])
    res[f"start_{n}_first_ms"] = summary([r[1] for r in runs])
    res[f"idle_{n}"] = idle(stamp, n, 3 if args.quick else 30)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
