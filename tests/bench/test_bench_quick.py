"""`make bench` cannot rot: its quick mode runs every measure on every installed tool.

The peers (supervisor, circus from PyPI; pm2 from npm; s6 and runit from Debian's packages,
which join the run when installed) are installed by bench/setup.sh into bench/.build;
without a network that fails and this test is skipped, saying why.
Nothing here asserts a speed: it checks that each tool produced a figure or a recorded
error for each measure, that herder produced every figure, and that no process is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH_PY = ROOT / "bench" / ".build" / "venv" / "bin" / "python"
MEASURES = ("restart_ms", "start_ms", "idle_cpu_s", "idle_rss_mb", "idle_pss_mb", "status_ms", "logs_mbps", "stop_ms",
            "orphans", "scale_rss_kb", "scale_pss_kb", "start_max_ms", "idle_max_cpu_s")
# measured for one tool only: herder's recovery from kill -9, supervisord's `shutdown` as its own row
ONLY = {"recover_ms": "herder", "stop_exit_ms": "supervisord"}


def _bench_processes(since: float, root: Path) -> list[str]:
    """Live processes started by this run of the benchmark: their argv or working directory names
    its temp dirs, which are under `root` (another worktree's bench on the same machine is not
    ours to count). s6-supervise and runsv name only their service in argv: their cwd tells."""
    left = []
    for p in psutil.process_iter(["cmdline", "create_time", "status", "cwd"]):
        try:
            where = [*(p.info["cmdline"] or ()), p.info["cwd"] or ""]
            if (p.info["create_time"] >= since and p.info["status"] != psutil.STATUS_ZOMBIE
                    and any("herder-bench-" in a and str(root) in a for a in where)):
                left.append(f"{p.pid} {' '.join(p.info['cmdline'])}")
        except psutil.Error:
            continue
    return left


def _kill_leftovers(since: float, root: Path) -> None:
    """Whatever this run started and left behind, found by its temp dir (argv, cwd or PM2_HOME):
    killed and waited for. A timeout kills compare.py, not the daemons it started — leaked PM2
    God daemons (2 GB each) once loaded the machine until other suites failed."""
    mine = []
    for p in psutil.process_iter(["cmdline", "create_time", "cwd"]):
        try:
            if p.info["create_time"] < since or p.pid == os.getpid():
                continue
            where = " ".join([*(p.info["cmdline"] or ()), p.info["cwd"] or "", p.environ().get("PM2_HOME", "")])
            if str(root) in where:
                mine.append(p)
        except psutil.Error:
            continue
    for p in mine:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(mine, timeout=10)


@pytest.mark.timeout(900)
def test_bench_quick_runs_every_measure_and_leaves_nothing(tmp_path: Path) -> None:
    if not shutil.which("gcc"):
        pytest.skip("gcc not found: the benchmark's children are C programs")
    setup = subprocess.run(["bash", str(ROOT / "bench" / "setup.sh")], capture_output=True, text=True, timeout=600)
    if setup.returncode != 0:
        pytest.skip(f"bench peers could not be installed (no network?): {setup.stderr.strip()[-300:]}")
    since = time.time() - 1
    out = tmp_path / "quick.json"
    # the bench's temp dirs: this run's, found by path. Short (/tmp/hb-XXXXXXXX), not under tmp_path:
    # the tools' Unix sockets live there and a socket path is limited to 108 bytes — under pytest's
    # tmp_path every tool failed to start anything and the run overran its bound
    scratch = Path(tempfile.mkdtemp(prefix="hb-"))
    env = {**os.environ, "TMPDIR": str(scratch)}
    try:
        run = subprocess.run([str(BENCH_PY), str(ROOT / "bench" / "compare.py"), "--quick", "--out", str(out)],
                             capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)  # ~60 s idle; a hang
        left = _bench_processes(since, scratch)
    finally:
        _kill_leftovers(since, scratch)
        shutil.rmtree(scratch, ignore_errors=True)
    assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads(out.read_text())
    tools = list(doc["info"]["versions"])
    assert tools[0] == "herder" and {"supervisord", "circus"} <= set(tools), doc["info"]
    only = doc["info"]["only"]
    assert set(only) == {"floor"} and "restart_ms" in only["floor"], only
    for measure in MEASURES:
        for tool in tools:
            if tool in only and measure not in only[tool]:
                assert tool not in doc["results"].get(measure, {}), f"{measure}: {tool} measured"
                continue
            slot = doc["results"].get(measure, {}).get(tool)
            assert slot is not None, f"{measure}: no result for {tool}"
            if tool in ("herder", "floor"):
                assert not slot["errors"], f"{measure}: {slot['errors']}"
                assert slot["samples"] or slot.get("pending"), f"{measure}: herder has no figure"
            else:
                assert slot["samples"] or slot["errors"] or slot.get("capped"), f"{measure}: {tool}: {slot}"
    for measure, tool in ONLY.items():
        slot = doc["results"].get(measure, {}).get(tool)
        assert slot is not None and (slot["samples"] or slot.get("capped")), f"{measure}: {tool}: {slot}"
        assert set(doc["results"][measure]) == {tool}, measure
    assert doc["results"]["recover_ms"]["herder"]["mode"], "the recovery path is named"
    assert all(c["sha256_ok"] for c in doc["results"]["logs_mbps"]["herder"]["checks"])
    assert doc["results"]["orphans"]["herder"]["samples"] == [0]
    assert left == []

    png, md = tmp_path / "ratios.png", tmp_path / "performance.md"
    md.write_text("# Performance\n\nhand-written text\n")
    rep = subprocess.run([str(BENCH_PY), str(ROOT / "bench" / "report.py"), str(out), "--doc", str(md),
                          "--png", str(png)], capture_output=True, text=True, timeout=60)
    assert rep.returncode == 0, rep.stderr
    text = md.read_text()
    assert "hand-written text" in text and "| restart: SIGKILL → next start | herder |" in text
    assert "| restart: SIGKILL → next start | floor |" in text and "| logs: " not in text.split("| floor |")[-1]
    assert png.stat().st_size > 1000
