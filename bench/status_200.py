"""Benchmark: `herder status` wall time against a supervisor with 200 services.

Not a test (speed is never asserted in tests). Run: .venv/bin/python bench/status_200.py
It byte-compiles herder first and unsets PYTHONDONTWRITEBYTECODE, as an installed herder
would run, then times N runs of the real CLI (Python start-up included) and prints the
median and min–max. Also reports the supervisor's RSS before and after a /metrics
scrape (prometheus_client is imported on the first scrape) and import costs.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_SERVICES = 200
RUNS = 30
ROOT = Path(__file__).resolve().parent.parent
HERDER = str(Path(sys.executable).parent / "herder")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def timed(argv: list[str], env: dict[str, str], runs: int = RUNS) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
        out.append((time.perf_counter() - t) * 1000)
    return out


def show(label: str, ms: list[float]) -> str:
    return f"{label}: median {statistics.median(ms):.1f} ms (min {min(ms):.1f}, max {max(ms):.1f}, n={len(ms)})"


def import_ms(module: str, env: dict[str, str]) -> float:
    code = f"import time; t=time.perf_counter(); import {module}; print((time.perf_counter()-t)*1000)"
    vals = [float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                 check=True).stdout) for _ in range(5)]
    return statistics.median(vals)


def main() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "herder")], env=env, check=True)
    d = Path(tempfile.mkdtemp(prefix="hbench-"))
    cfg = d / "herder.toml"
    cfg.write_text(f'[herder]\nstate_dir = "{d / "state"}"\n' + "".join(
        f'[services.s{i:03d}]\ncommand = ["sleep", "100000"]\nlogs = {{ stdout = "null" }}\n' for i in range(N_SERVICES)))
    try:
        subprocess.run([HERDER, "up", "-d", "-c", str(cfg)], env=env, check=True, stdout=subprocess.DEVNULL)
        pid = int((d / "state" / "herder.pid").read_text())
        sock = str(d / "state" / "herder.sock")
        print(f"machine: {os.cpu_count()} cpus, Python {sys.version.split()[0]}, {N_SERVICES} services")
        rss0 = rss_kb(pid)
        print(show("herder status (-c config)", timed([HERDER, "status", "-c", str(cfg)], env)))
        print(show("herder status --socket", timed([HERDER, "status", "--socket", sock], env)))
        print(show("herder status --json", timed([HERDER, "status", "--json", "--socket", sock], env)))
        print(show("python -c pass (floor)", timed([sys.executable, "-c", "pass"], env)))
        # as a regular (non-editable) install (pure Python: the package copied to a path): the editable finder alone costs 15-30 ms here
        target = d / "site"
        shutil.copytree(ROOT / "herder", target / "herder", ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(target / "herder")], env=env, check=True)
        main_code = "import sys; from herder.cli import main; sys.exit(main())"
        installed = {**env, "PYTHONPATH": str(target)}
        print(show("herder status (regular install, --socket)",
                   timed([sys.executable, "-c", main_code, "status", "--socket", sock], installed)))
        rss1 = rss_kb(pid)
        subprocess.run(["curl", "-s", "--unix-socket", sock, "http://x/metrics", "-o", "/dev/null"], check=True)
        rss2 = rss_kb(pid)
        print(f"supervisor RSS: {rss0 / 1024:.1f} MB after start, {rss1 / 1024:.1f} MB after the status runs, "
              f"{rss2 / 1024:.1f} MB after the first /metrics scrape")
        for m in ("h11", "prometheus_client", "sqlite3", "herder.control.client"):
            print(f"import {m}: {import_ms(m, env):.1f} ms")
        n = len(json.loads(subprocess.run([HERDER, "status", "--json", "--socket", sock], env=env,
                                          capture_output=True, check=True).stdout))
        assert n == N_SERVICES, n
    finally:
        subprocess.run([HERDER, "down", "-c", str(cfg)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
