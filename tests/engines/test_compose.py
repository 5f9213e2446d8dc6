"""`herder export compose` run by real Compose v1 (Debian's docker-compose 1.29) and v2 (2.40).

The shop example is exported with the CLI and started with `up -d` on a private dockerd
(tests/engines/dockerd.py). Checked on the engine, for both Compose versions: the start
order with its gates (migrate only after db is healthy, web only after migrate completed,
the worker after web is healthy), replicas, limits reaching the container, a crashed
container restarted (kill -9 of its pid from the host: `docker kill` would count as a
manual stop), the stop signal (SIGINT for the worker) and the grace period (web drains
longer than its 3 s stop_timeout, so Docker kills it at 3 s), and a failing one-shot
keeping its dependants from starting. Times come from Docker's own records and the
program's timestamped output, never from sleeping.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from herdertest import wait_until
from shop_example import FULL, export, log_time, stamp, variant

from engines.dockerd import Dockerd

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@dataclass
class Up:
    dockerd: Dockerd
    version: str
    project: str
    out: Path

    def ids(self, service: str) -> list[str]:
        return self.dockerd.docker("ps", "-aq", "-f", f"label=com.docker.compose.project={self.project}",
                                   "-f", f"label=com.docker.compose.service={service}").stdout.split()

    def containers(self, service: str) -> list[dict[str, Any]]:
        return sorted((self.dockerd.inspect(c) for c in self.ids(service)), key=lambda c: str(c["Name"]))

    def logs(self, container: dict[str, Any]) -> str:
        res = self.dockerd.docker("logs", "-t", container["Id"])
        return res.stdout + res.stderr


@pytest.fixture(scope="module", params=["v1", "v2"])
def up(request: pytest.FixtureRequest, dockerd: Dockerd, shop_image: str,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    version = request.param
    work = tmp_path_factory.mktemp(f"compose-{version}")
    # web drains for 30 s on SIGTERM, longer than its stop_timeout (3 s): Docker must kill it at 3 s
    config = variant(work / "shop", drain=('DRAIN_SECONDS = "1"', 'DRAIN_SECONDS = "30"'))
    out = work / "out"
    export(config, "compose", out)
    u = Up(dockerd, version, f"herder-export-{version}", out)
    try:
        dockerd.compose(version, u.project, "up", "-d", cwd=out)
        yield u
    finally:
        dockerd.compose(version, u.project, "down", "-t", "1", cwd=out, check=False)


def test_start_order_follows_the_gates(up: Up) -> None:
    (db,), (migrate,), webs, (worker,) = (up.containers(s) for s in ("db", "migrate", "web", "worker"))
    db_listening = log_time(up.logs(db), "db: listening")
    assert db["State"]["Health"]["Status"] == "healthy"
    # db is healthy only once it listens (READY_DELAY 2 s): migrate must not start before that
    assert stamp(migrate["State"]["StartedAt"]) >= db_listening
    assert migrate["State"]["ExitCode"] == 0 and migrate["State"]["Status"] == "exited"
    migrate_done = stamp(migrate["State"]["FinishedAt"])
    assert len(webs) == 2
    for web in webs:
        assert stamp(web["State"]["StartedAt"]) >= migrate_done, "web started before migrate completed"
        # worker waits for web = ready: web's healthcheck (its exec probe) passes only once it listens
        assert stamp(worker["State"]["StartedAt"]) >= log_time(up.logs(web), "listening on 8080")


def test_replicas_and_limits_reach_the_containers(up: Up) -> None:
    webs = up.containers("web")
    assert [w["State"]["Status"] for w in webs] == ["running", "running"]
    for w in webs:
        host = w["HostConfig"]
        assert host["Memory"] == 128 * 1024**2
        assert host["NanoCpus"] == 500_000_000
        assert {"Name": "nofile", "Soft": 1024, "Hard": 1024} in host["Ulimits"]
        assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "50m", "max-file": "10"}}
        assert w["Config"]["StopSignal"] == "SIGTERM" and w["Config"]["StopTimeout"] == 3
        assert w["Config"]["WorkingDir"] == "/app"
    (worker,) = up.containers("worker")
    assert worker["Config"]["StopSignal"] == "SIGINT"


def test_a_crashed_container_is_restarted(up: Up) -> None:
    web = up.containers("web")[0]
    assert web["RestartCount"] == 0
    os.kill(web["State"]["Pid"], signal.SIGKILL)   # a crash, not `docker kill` (a manual stop)

    def restarted() -> dict[str, Any] | None:
        now = up.dockerd.inspect(web["Id"])
        # running again, and listening: its signal handlers are in place (PID 1 ignores a
        # SIGTERM that arrives before), so the stop test that follows sees a settled program
        back = now["RestartCount"] == 1 and now["State"]["Running"]
        return now if back and up.logs(now).count("listening on 8080") == 2 else None

    now = wait_until("web to be restarted (restart: on-failure)", restarted, timeout=60)
    assert now["State"]["Pid"] != web["State"]["Pid"]


def test_stop_signal_and_grace_period(up: Up) -> None:
    t0 = time.monotonic()
    up.dockerd.compose(up.version, up.project, "stop", "web", cwd=up.out)
    took = time.monotonic() - t0
    for web in up.containers("web"):
        logs = up.logs(web)
        assert "got SIGTERM, draining for 30s" in logs
        assert "drained" not in logs
        assert web["State"]["ExitCode"] == 137, "web outlived stop_grace_period: SIGKILL expected"
    assert took >= 3.0, f"web was killed after {took:.2f}s, before its 3 s stop_grace_period"
    up.dockerd.compose(up.version, up.project, "stop", "worker", cwd=up.out)
    (worker,) = up.containers("worker")
    logs = up.logs(worker)
    assert "got SIGINT, finishing the current job and exiting 0" in logs
    assert "SIGTERM" not in logs
    assert worker["State"]["ExitCode"] == 0


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_failing_one_shot_keeps_dependants_down(version: str, dockerd: Dockerd, shop_image: str,
                                                   tmp_path: Path) -> None:
    config = variant(tmp_path / "shop", job=('JOB_SECONDS = "1"', 'JOB_SECONDS = "0", JOB_EXIT = "3"'))
    out = tmp_path / "out"
    export(config, "compose", out)
    u = Up(dockerd, version, f"herder-export-fail-{version}", out)
    try:
        res = dockerd.compose(version, u.project, "up", "-d", cwd=out, check=False)
        assert res.returncode != 0, "up must fail when the one-shot web waits for exits 3"
        (migrate,) = u.containers("migrate")
        assert migrate["State"]["ExitCode"] == 3
        started = [w for w in u.containers("web") if not w["State"]["StartedAt"].startswith("0001-")]
        assert started == [], "web started although migrate failed"
    finally:
        dockerd.compose(version, u.project, "down", "-t", "1", cwd=out, check=False)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_every_key_exports_to_a_file_compose_accepts(version: str, dockerd: Dockerd, tmp_path: Path) -> None:
    """tests/export/configs/full sets every herder key: both Compose versions must load the result."""
    out = tmp_path / "out"
    export(FULL, "compose", out)
    res = dockerd.compose(version, "herder-export-full", "config", cwd=out)
    assert "PRICE: $$5 $$(HOME) 100%" in res.stdout or "PRICE: $5 $(HOME) 100%" in res.stdout
    assert "ignor" not in res.stderr.lower() and "unsupported" not in res.stderr.lower(), res.stderr
