"""Benchmark: how fast does herder capture a child that floods stdout? (docs/performance.md)

A child writes 300 MiB of 100-byte lines in 64 KB writes as fast as it can, under a real
`herder up -d` (its keeper captures the output; `--herder PATH` measures another build).
We time from its first byte (the child records time.time() just before its first write)
until the log file holds every byte (raw) or every line (timestamps: each grows by its
25-byte prefix), then check the file: size and SHA-256 (raw), or line count and the
SHA-256 of the lines without their timestamp prefix. The RSS of herder's processes (the
keeper and its decision process) is sampled during the flood and compared with idle.

    python bench/logs_flood.py [--timestamps] [--runs 5] [--mib 300] [--drop] [--herder PATH]
    python bench/logs_flood.py --alone [--runs 5] [--mib 300]

`--alone` measures the raw fast path by itself (herder.logs._splice, no supervisor): the
C flooder (bench/flood.c, built by bench/setup.sh) writes into a 1 MiB pipe, RawCopy moves
it to the file, once with splice and once through os.read/os.pwrite (its fallback),
alternating; from the child's first byte (its CLOCK_MONOTONIC stamp) until the file holds
every byte, then size and SHA-256 against the expected bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

CHILD = textwrap.dedent("""
    import os, sys, time
    total = int(sys.argv[1]); start_file = sys.argv[2]
    lines_per_write = 655                      # 655 x 100 B = 65,500 B per write
    blocks = []
    for b in range(64):
        block = b"".join(b"%09d " % (b * lines_per_write + i) + b"x" * 89 + b"\\n" for i in range(lines_per_write))
        blocks.append(block)
    n_lines = total // 100
    with open(start_file, "w") as f:
        f.write(repr(time.time()))
    written = 0; i = 0
    while written < n_lines * 100:
        blk = blocks[i % 64]
        left = n_lines * 100 - written
        if left < len(blk):
            blk = blk[:left]
        mv = memoryview(blk)
        while mv:
            k = os.write(1, mv)
            mv = mv[k:]
        written += len(blk); i += 1
""")


def expected(total: int) -> tuple[int, str, int]:
    """(size, sha256, lines) of what the child writes, computed the same way."""
    lines_per_write = 655
    blocks = [b"".join(b"%09d " % (b * lines_per_write + i) + b"x" * 89 + b"\n" for i in range(lines_per_write))
              for b in range(64)]
    n = total // 100
    h = hashlib.sha256()
    written = i = 0
    while written < n * 100:
        blk = blocks[i % 64][: n * 100 - written]
        h.update(blk)
        written += len(blk)
        i += 1
    return written, h.hexdigest(), n


def check_file(path: Path, timestamps: bool) -> tuple[int, str, int]:
    h = hashlib.sha256()
    size = lines = 0
    carry = b""
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            if not timestamps:
                h.update(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
                continue
            chunk = carry + chunk
            end = chunk.rfind(b"\n") + 1
            body, carry = chunk[:end], chunk[end:]
            parts = body.split(b"\n")[:-1]
            stripped = b"\n".join(p[25:] for p in parts) + b"\n"  # "2024-05-01T12:00:00.123Z " = 25 bytes
            h.update(stripped)
            size += len(stripped)
            lines += len(parts)
    return size, h.hexdigest(), lines


def one_run(mib: int, timestamps: bool, drop: bool, workdir: Path, herder: str) -> dict[str, float]:
    """One flood through a real `herder up -d` (the keeper captures, herder.keeper.capture):
    from the child's first byte until the file holds every byte (raw) or line (timestamps)."""
    total = mib << 20
    child = workdir / "child.py"
    child.write_text(CHILD)
    start_file = workdir / "start"
    start_file.unlink(missing_ok=True)
    state = workdir / "state"
    cfg_path = workdir / "herder.toml"
    cfg_path.write_text(textwrap.dedent(f"""
        [herder]
        state_dir = "{state}"
        cgroups = false
        [services.flood]
        command = ["{sys.executable}", "{child}", "{total}", "{start_file}"]
        restart = "never"
        autostart = false
        [services.flood.logs]
        timestamps = {"true" if timestamps else "false"}
        max_size = "0"
        on_overflow = "{"drop" if drop else "block"}"
    """))
    log = state / "logs" / "flood.log"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cli = [herder, "-c", str(cfg_path)]
    subprocess.run([herder, "up", "-d", "-c", str(cfg_path)], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        procs = [psutil.Process(int((state / "herder.pid").read_text()))]
        procs += [c for c in procs[0].children() if "herder.runtime.dp" in " ".join(c.cmdline())]

        def rss() -> int:
            return sum(p.memory_info().rss for p in procs)

        idle = rss()
        want_size, want_digest, want_lines = expected(total)
        # with timestamps every line grows by its 25-byte prefix
        target = want_size + (25 * want_lines if timestamps else 0)
        subprocess.run(["sync"], check=False)
        subprocess.run([cli[0], "start", *cli[1:], "flood"], env=env, check=True, stdout=subprocess.DEVNULL)
        peak, last, moved = idle, -1, time.monotonic()
        while True:     # polled: the file's size is what a user sees; a stall of 10 s ends the run
            cur = log.stat().st_size if log.exists() else 0
            peak = max(peak, rss())
            if cur >= target:
                break
            if cur != last:
                last, moved = cur, time.monotonic()
            elif time.monotonic() - moved > 10:
                break
            time.sleep(0.001)
        end = time.time()
        dropped = 0
        if drop:
            got = json.loads(subprocess.run([cli[0], "status", "--json", *cli[1:]], env=env, check=True,
                                            capture_output=True, text=True).stdout)
            dropped = int(next(x for x in got if x["name"] == "flood").get("logs", {}).get("dropped_bytes", 0))
    finally:
        subprocess.run([herder, "down", "-c", str(cfg_path)], env=env, check=False, capture_output=True)
    size, digest, lines = check_file(log, timestamps)
    exact = size == want_size and digest == want_digest and lines == want_lines
    accounted = drop and size + dropped == want_size  # drop mode: every byte written or counted
    result = {"seconds": end - float(start_file.read_text()), "idle_rss": idle, "peak_rss": peak,
              "dropped": dropped, "ok": float(exact or accounted), "size": size, "lines": lines,
              "want_size": want_size}
    log.unlink()
    return result


def alone_run(mib: int, use_splice: bool, workdir: Path, flood: Path) -> dict[str, float]:
    """One flood through RawCopy alone; seconds from the child's first byte to the last byte in the file."""
    import fcntl
    import select

    from herder.logs._splice import RawCopy

    total = mib << 20
    log, stamp = workdir / "alone.log", workdir / "alone.stamp"
    for p in (log, stamp):
        p.unlink(missing_ok=True)
    subprocess.run(["sync"], check=False)
    r, w = os.pipe()
    fcntl.fcntl(r, fcntl.F_SETPIPE_SZ, 1 << 20)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    child = subprocess.Popen([str(flood), str(stamp), str(total)], stdout=w)
    os.close(w)
    me = psutil.Process()
    cpu0 = me.cpu_times()
    copy = RawCopy(r, fd, size=0, use_splice=use_splice)
    want = (total // 100) * 100
    try:
        deadline = time.monotonic() + 300
        while copy.written < want:
            assert time.monotonic() < deadline, "the flood did not arrive in 300 s"
            if select.select([r], [], [], 1.0)[0]:
                copy.step()
        end_ns = time.monotonic_ns()
    finally:
        child.kill()
        child.wait()
        copy.close()
        os.close(fd)
        os.close(r)
    cpu1 = me.cpu_times()
    start_ns = int(stamp.read_text().split()[1])
    from compare import expected as flood_expected   # bench/flood.c's lines (numbered 0, 1, 2 …)

    size, digest, _ = check_file(log, False)
    want_size, want_digest = flood_expected(total)
    log.unlink()
    return {"seconds": (end_ns - start_ns) / 1e9, "ok": float(size == want_size and digest == want_digest),
            "cpu": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), "spliced": copy.spliced}


def alone(a: argparse.Namespace, base: Path) -> None:
    flood = Path(__file__).resolve().parent / ".build" / "flood"
    if not flood.exists():
        raise SystemExit(f"{flood} is missing: run bash bench/setup.sh (it builds bench/flood.c)")
    speeds: dict[str, list[float]] = {"splice": [], "read/pwrite": []}
    for i in range(a.runs):
        for mode in speeds:
            r = alone_run(a.mib, mode == "splice", base, flood)
            speeds[mode].append(a.mib / r["seconds"])
            print(f"run {i + 1} {mode:11s}: {speeds[mode][-1]:7.0f} MiB/s  {r['seconds']:.3f}s  "
                  f"copier CPU {r['cpu']:.2f}s  {'exact' if r['ok'] else 'MISMATCH'}", flush=True)
    for mode, v in speeds.items():
        print(f"{mode}: median {statistics.median(v):.0f} MiB/s (min {min(v):.0f}, max {max(v):.0f}), "
              f"{len(v)} runs, load {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alone", action="store_true", help="the raw fast path alone (herder.logs._splice)")
    ap.add_argument("--timestamps", action="store_true")
    ap.add_argument("--drop", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mib", type=int, default=300)
    ap.add_argument("--dir", default=None, help="where the log goes (default: a temp dir under ./)")
    ap.add_argument("--herder", default=str(Path(sys.executable).parent / "herder"),
                    help="the herder to measure (default: this interpreter's)")
    a = ap.parse_args()
    base = (Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="herder-bench-", dir="."))).resolve()
    base.mkdir(parents=True, exist_ok=True)
    if a.alone:
        alone(a, base)
        return
    speeds, grow = [], []
    for i in range(a.runs):
        r = one_run(a.mib, a.timestamps, a.drop, base, a.herder)
        mibs = a.mib / r["seconds"]
        speeds.append(mibs)
        grow.append((r["peak_rss"] - r["idle_rss"]) / 2**20)
        print(f"run {i + 1}: {mibs:7.0f} MiB/s  {r['seconds']:.3f}s  rss +{grow[-1]:.1f} MiB  "
              f"{('exact' if r['size'] == r['want_size'] else 'written+dropped = sent') if r['ok'] else 'MISMATCH size %d want %d' % (r['size'], r['want_size'])}"
              f"  dropped {int(r['dropped'])}", flush=True)
    print(f"{'timestamps' if a.timestamps else 'raw'}: median {statistics.median(speeds):.0f} MiB/s "
          f"(min {min(speeds):.0f}, max {max(speeds):.0f}); RSS growth max {max(grow):.1f} MiB; "
          f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
