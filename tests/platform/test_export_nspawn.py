"""`herder export systemd` units run by a real systemd (systemd-nspawn --boot, the install tier's rootfs).

The shop example is exported with the CLI and its units dropped into a booted container
(private network, so its ports never meet the host's); the project directory is
bind-mounted at the same path, because units name it in WorkingDirectory=. Checked on
systemd, in order: start order through the readiness checks (db active only once its
http check passed; migrate after that; web only after migrate exited; worker only after
its log line), the one-shot gating (Type=oneshot, RemainAfterExit), replicas as template
instances, restart after kill -9, the stop signal and TimeoutStopSec=, limits as systemd
records them, and a failing one-shot keeping its dependant from starting.

Limits are checked with `systemctl show`, not enforced: on this host (hybrid cgroups, no
controllers delegated to the container) MemoryMax=/CPUQuota= are accepted but the kernel
does not apply them inside nspawn; LimitNOFILE= is a plain rlimit and is checked in /proc.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nspawn_harness import Container, rootfs, wait_until
from shop_example import export, variant

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

UNITS = ("shop-db.service", "shop-migrate.service", "shop-web@.service", "shop-worker.service", "shop.target")


class Shop:
    def __init__(self, ct: Container, work: Path) -> None:
        self.ct, self.work = ct, work

    def install(self, name: str, **changes: tuple[str, str]) -> Path:
        """Export a variant of the shop into the container's /etc/systemd/system."""
        config = variant(self.work / name / "shop", **changes)   # the folder names the project: shop
        out = self.work / name / "units"
        export(config, "systemd", out)
        for unit in UNITS:
            self.ct.write(f"/etc/systemd/system/{unit}", (out / unit).read_text())
        self.ct.run(["systemctl", "daemon-reload"])
        return config.parent

    def mono(self, unit: str, prop: str) -> int:
        return int(self.ct.show(unit, prop) or 0)

    def journal(self, unit: str) -> str:
        return self.ct.run(["journalctl", "-q", "-o", "cat", "-u", unit]).stdout


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    root, why = rootfs()
    if root is None:
        pytest.skip(why)
    work = Path(tempfile.mkdtemp(prefix="herder-it-export-", dir="/var/tmp"))
    c = Container(root, work / "ct", f"hex{uuid.uuid4().hex[:8]}")
    try:
        # the variants live under work/: visible inside at the same path (WorkingDirectory=)
        c.boot("--private-network", f"--bind-ro={work}:{work}")
        yield Shop(c, work)
    finally:
        c.poweroff()
        shutil.rmtree(work, ignore_errors=True)


def test_start_order_through_readiness_and_one_shot(shop: Shop) -> None:
    # web drains 30 s on SIGTERM, longer than TimeoutStopSec=3s: the stop test below needs it
    shop.install("shop", drain=('DRAIN_SECONDS = "1"', 'DRAIN_SECONDS = "30"'))
    shop.ct.run(["systemctl", "start", "shop.target"], timeout=120)
    units = ("shop-db.service", "shop-migrate.service", "shop-web@0.service", "shop-web@1.service",
             "shop-worker.service")
    wait_until("every unit of the shop to be active",
               lambda: all(shop.ct.show(u, "ActiveState") == "active" for u in units), timeout=90)
    db_exec = shop.mono("shop-db.service", "ExecMainStartTimestampMonotonic")
    db_active = shop.mono("shop-db.service", "ActiveEnterTimestampMonotonic")
    assert db_active - db_exec >= 2_000_000, "db became active before its http check could pass (READY_DELAY 2s)"
    mig_start = shop.mono("shop-migrate.service", "ExecMainStartTimestampMonotonic")
    mig_exit = shop.mono("shop-migrate.service", "ExecMainExitTimestampMonotonic")
    assert mig_start >= db_active
    assert shop.ct.show("shop-migrate.service", "Type") == "oneshot"
    assert shop.ct.show("shop-migrate.service", "SubState") == "exited"      # RemainAfterExit: stays active
    assert shop.ct.show("shop-migrate.service", "ExecMainStatus") == "0"
    for i in (0, 1):
        assert shop.mono(f"shop-web@{i}.service", "ExecMainStartTimestampMonotonic") >= mig_exit
    worker_exec = shop.mono("shop-worker.service", "ExecMainStartTimestampMonotonic")
    assert worker_exec >= max(shop.mono(f"shop-web@{i}.service", "ActiveEnterTimestampMonotonic") for i in (0, 1))
    # the worker is ready only once "waiting for jobs" is in its journal (ExecStartPost reads it)
    assert "worker: waiting for jobs" in shop.journal("shop-worker.service")
    assert shop.mono("shop-worker.service", "ActiveEnterTimestampMonotonic") > worker_exec


def test_replicas_are_template_instances(shop: Shop) -> None:
    for i in (0, 1):
        unit = f"shop-web@{i}.service"
        assert f"PORT=808{i}" in shop.ct.show(unit, "Environment")
        # Type=exec: active once started; the program says when it listens
        wait_until(f"web{i} to listen", lambda u=unit, i=i: f"web{i}: listening on 808{i}" in shop.journal(u),
                   timeout=60)
    assert shop.ct.run(["python3", "-c", "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8081/health')"
                        ".read().decode())"]).stdout.strip() == "web1 ok"


def test_limits_as_systemd_records_them(shop: Shop) -> None:
    unit = "shop-web@0.service"
    assert shop.ct.show(unit, "MemoryMax") == str(128 * 1024**2)
    assert shop.ct.show(unit, "CPUQuotaPerSecUSec") == "500ms"
    assert shop.ct.show(unit, "LimitNOFILE") == "1024"
    pid = shop.ct.show(unit, "MainPID")
    limits = shop.ct.run(["cat", f"/proc/{pid}/limits"]).stdout
    assert [line.split()[3:5] for line in limits.splitlines() if line.startswith("Max open files")] == \
        [["1024", "1024"]]


def test_killed_instance_is_restarted(shop: Shop) -> None:
    unit = "shop-web@0.service"
    worker = shop.ct.show("shop-worker.service", "MainPID")
    old = shop.ct.show(unit, "MainPID")
    assert old.isdigit() and int(old) > 1, f"{unit} has no main process ({old!r})"
    shop.ct.sh(f"kill -9 {old}")

    def back() -> str | None:
        pid = shop.ct.show(unit, "MainPID")
        up = shop.ct.show(unit, "NRestarts") == "1" and shop.ct.show(unit, "ActiveState") == "active"
        return pid if up and pid not in ("0", old) and shop.journal(unit).count("listening on 8080") == 2 else None

    assert wait_until("web@0 restarted (Restart=on-failure)", back, timeout=60) != old
    # the worker depends on web (ready) without bind: web's restart leaves it alone (Wants=, not Requires=)
    assert shop.ct.show("shop-worker.service", "MainPID") == worker


def test_stop_signal_and_stop_timeout(shop: Shop) -> None:
    t0 = time.monotonic()
    shop.ct.run(["systemctl", "stop", "shop-web@1.service"], timeout=60)
    took = time.monotonic() - t0
    assert "web1: got SIGTERM, draining for 30s" in shop.journal("shop-web@1.service")
    assert shop.ct.show("shop-web@1.service", "Result") == "timeout"
    assert took >= 3.0, f"stopped after {took:.2f}s: before TimeoutStopSec=3s"
    shop.ct.run(["systemctl", "stop", "shop-worker.service"], timeout=60)
    log = shop.journal("shop-worker.service")
    assert "got SIGINT, finishing the current job and exiting 0" in log and "SIGTERM" not in log
    assert shop.ct.show("shop-worker.service", "Result") == "success", (
        shop.ct.run(["systemctl", "show", "shop-worker.service", "-p", "ExecMainStatus", "-p", "ExecMainCode",
                     "-p", "NRestarts"]).stdout + shop.ct.run(["journalctl", "-o", "short-monotonic", "--no-pager",
                                                               "-n", "60"]).stdout)


def test_a_failing_one_shot_keeps_its_dependant_down(shop: Shop) -> None:
    shop.ct.run(["systemctl", "stop", "shop.target", "shop-web@0.service", "shop-migrate.service",
                 "shop-db.service"], timeout=60)
    shop.ct.run(["systemctl", "reset-failed"], check=False)
    shop.install("failing", job=('JOB_SECONDS = "1"', 'JOB_SECONDS = "0", JOB_EXIT = "3"'))
    before = shop.mono("shop-web@0.service", "ExecMainStartTimestampMonotonic")
    res = shop.ct.run(["systemctl", "start", "shop-web@0.service"], check=False, timeout=120)
    assert res.returncode != 0
    assert shop.ct.show("shop-migrate.service", "ExecMainStatus") == "3"
    assert shop.ct.show("shop-web@0.service", "ActiveState") != "active"
    assert shop.mono("shop-web@0.service", "ExecMainStartTimestampMonotonic") == before, "web@0 ran again"
