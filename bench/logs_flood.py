"""Benchmark: how fast does herder capture a child that floods stdout? (docs/performance.md)

A child writes 300 MiB of 100-byte lines in 64 KB writes as fast as it can. We time from
its first byte (the child records time.time() just before its first write) until the
writer thread has put the last byte in the file, then check the file: size and SHA-256
(raw), or line count and the SHA-256 of the lines without their timestamp prefix.
herder's RSS is sampled during the flood and compared with its idle RSS.

    python bench/logs_flood.py [--timestamps] [--runs 5] [--mib 300] [--drop]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
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


async def one_run(mib: int, timestamps: bool, drop: bool, workdir: Path) -> dict[str, float]:
    from herder.config import load
    from herder.logs import LogHub
    from herder.runtime.supervisor import Supervisor

    total = mib << 20
    child = workdir / "child.py"
    child.write_text(CHILD)
    start_file = workdir / "start"
    cfg_path = workdir / "herder.toml"
    cfg_path.write_text(textwrap.dedent(f"""
        [herder]
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
    log = workdir / ".herder" / "logs" / "flood.log"
    if log.exists():
        log.unlink()
    cfg = load(cfg_path)
    sup = Supervisor(cfg)
    hub = LogHub(cfg, sup.events, signals=False).install(sup)
    me = psutil.Process()
    rss: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            rss.append(me.memory_info().rss)

    done = asyncio.Event()
    result: dict[str, float] = {}

    def on(ev: object) -> None:
        if getattr(ev, "kind", "") == "exit":
            done.set()

    sup.events.subscribe(on)

    async def drive() -> None:
        await asyncio.sleep(0)
        idle = me.memory_info().rss
        subprocess.run(["sync"], check=False)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        sup.start(["flood"])
        await done.wait()
        chans = hub.current["flood"]
        await asyncio.get_running_loop().run_in_executor(None, lambda: [c.done.wait(120) for c in chans])
        await asyncio.get_running_loop().run_in_executor(None, lambda: hub.pump.in_writer(lambda: None))
        # the EOF marker is processed after every byte was written: done.set() is the end time
        end = time.time()
        stop.set()
        t.join()
        started = float(start_file.read_text())
        result.update(seconds=end - started, idle_rss=idle, peak_rss=max(rss or [idle]),
                      dropped=hub.dropped.get("flood", 0))
        sup.request_down()

    task = asyncio.ensure_future(drive())
    await sup.run(install_signals=False)
    await task
    size, digest, lines = check_file(log, timestamps)
    want_size, want_digest, want_lines = expected(total)
    exact = size == want_size and digest == want_digest and lines == want_lines
    accounted = drop and size + result["dropped"] == want_size  # drop mode: every byte written or counted
    result.update(ok=float(exact or accounted),
                  size=size, lines=lines, want_size=want_size)
    log.unlink()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timestamps", action="store_true")
    ap.add_argument("--drop", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mib", type=int, default=300)
    ap.add_argument("--dir", default=None, help="where the log goes (default: a temp dir under ./)")
    a = ap.parse_args()
    base = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="herder-bench-", dir="."))
    base.mkdir(parents=True, exist_ok=True)
    speeds, grow = [], []
    for i in range(a.runs):
        r = asyncio.run(one_run(a.mib, a.timestamps, a.drop, base))
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
