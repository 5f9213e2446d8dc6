"""herder as PID 1 of real containers (issue 19), on the private dockerd (dockerd.py).

The image is herder from this checkout on the local Debian base (herder_image.py); the
containers run examples/container (bind-mounted at /app, one variant per container) with
`herder up -c /app/herder.toml` and no other flag, the way docs/container.md says:

- the ordered stop: migrate (a one-shot job) completes, web starts after it, the worker
  (2 s to finish after SIGTERM) after web, the ticker leaves an orphan behind every tick.
  herder is PID 1, the HEALTHCHECK (`herder health`) goes healthy, `docker logs` has every
  service's lines (stdout and stderr apart), no zombie outlives a few ticks; stopping the
  critical web by hand turns the container unhealthy, starting it healthy again; `docker
  stop -t 10` stops worker before web and ends with exit code 0 (a SIGKILL from the
  engine would be 137) well inside the 10 s;
- the exit policy: a critical web that fails on the first boot (restart = "never") ends
  the container with its critical_exit_code (69) and `--restart on-failure` brings it
  back, healthy; a failed migration fails the container start with 69, web never started.

Waits poll Docker's state or the container's logs with a deadline, never a sleep.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from herdertest import wait_until
from shop_example import CONTAINER, variant_of

from engines import herder_image
from engines.dockerd import Dockerd

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CONFIG = "/app/herder.toml"
HEALTH = ["--health-cmd", f"herder health -c {CONFIG}", "--health-interval", "1s", "--health-timeout", "10s",
          "--health-retries", "1"]


@pytest.fixture(scope="module")
def image(dockerd: Dockerd, tmp_path_factory: pytest.TempPathFactory) -> str:
    tag = herder_image.build(dockerd, tmp_path_factory.mktemp("herder-image"))
    if tag is None:
        pytest.skip("the container tier's wheels are not cached (setup-docker.sh could not download them)")
    return tag


class Box:
    """One container running a variant of examples/container (`herder up` unless argv says)."""

    def __init__(self, d: Dockerd, image: str, app: Path, name: str, *run_args: str,
                 argv: tuple[str, ...] = ("herder", "up", "-c", CONFIG)) -> None:
        self.d, self.name = d, name
        d.docker("rm", "-f", name, check=False)
        self.started = time.time()
        d.docker("run", "-d", "--name", name, "-v", f"{app}:/app", *run_args, image, *argv)

    def state(self) -> dict[str, object]:
        state: dict[str, object] = self.d.inspect(self.name)["State"]
        return state

    def health(self) -> str:
        h = self.state().get("Health")
        return str(h["Status"]) if isinstance(h, dict) else ""

    def logs(self) -> tuple[str, str]:
        res = self.d.docker("logs", self.name, check=False)
        return res.stdout, res.stderr

    def wait_log(self, needle: str, timeout: float = 60.0) -> None:
        try:
            wait_until(f"{needle!r} in docker logs of {self.name}", lambda: any(needle in s for s in self.logs()),
                       timeout)
        except AssertionError as e:
            out, err = self.logs()
            raise AssertionError(f"{e}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}") from None

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.d.docker("exec", self.name, *argv, check=check)

    def zombies(self) -> set[str]:
        out = self.exec("ps", "-eo", "pid=,stat=").stdout
        return {pid for pid, stat in (line.split() for line in out.splitlines()) if stat.startswith("Z")}

    def died(self) -> list[int]:
        """Exit codes of every `die` event of this container so far."""
        res = self.d.docker("events", "--since", str(int(self.started) - 1), "--until", str(int(time.time()) + 1),
                            "--filter", f"container={self.name}", "--filter", "event=die",
                            "--format", "{{.Actor.Attributes.exitCode}}")
        return [int(c) for c in res.stdout.split()]


def ticks(box: Box) -> int:
    out, _ = box.logs()
    return sum(1 for line in out.splitlines() if line.startswith("ticker") and "| tick " in line)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "app"


def test_pid1_logs_zombies_health_and_ordered_stop(dockerd: Dockerd, image: str, app: Path) -> None:
    variant_of(CONTAINER, app, {})
    box = Box(dockerd, image, app, "herder-init-stop", *HEALTH)
    wait_until("the container healthy", lambda: box.health() == "healthy", 90)

    report = box.exec("herder", "health", "--json", "-c", CONFIG).stdout
    assert '"PID 1 of a docker container"' in report, report
    out, err = box.logs()
    assert "herder" in err and "PID 1 of a docker container" in err, err

    # every service's lines, each on the stream it wrote to, prefixed with its name
    box.wait_log("worker  | worker: job 2 done")
    out, err = box.logs()
    for line in ("migrate | migrate: applied 0001", "migrate | migrate: done", "web     | web: listening on 8080",
                 "ticker  | tick 1"):
        assert line in out, out
    assert "web     | web: warning: serving plain HTTP" in err, err

    # the ticker orphans a `sleep` every tick: herder (PID 1) reaps each one, so no zombie
    # seen now is still there ten ticks later
    before = box.zombies()
    n = ticks(box)
    wait_until("ten more ticks", lambda: ticks(box) >= n + 10, 60)
    assert not (before & box.zombies()), "a zombie outlived ten ticks"
    reaped = json.loads(box.exec("herder", "health", "--json", "-c", CONFIG).stdout)["orphans_reaped"]
    assert reaped >= 10, reaped

    # a critical service stopped by hand: unhealthy; started again: healthy
    box.exec("herder", "stop", "-c", CONFIG, "web")
    wait_until("unhealthy with web stopped", lambda: box.health() == "unhealthy", 60)
    res = box.exec("herder", "health", "-c", CONFIG, check=False)
    assert res.returncode == 1 and "web: stopped" in res.stderr, res
    box.exec("herder", "start", "-c", CONFIG, "web")
    wait_until("healthy again", lambda: box.health() == "healthy", 60)

    # docker stop: ordered (the worker, 2 s to finish, before web), exit 0, no SIGKILL
    t0 = time.monotonic()
    dockerd.docker("stop", "-t", "10", box.name, timeout=60)
    took = time.monotonic() - t0
    state = box.state()
    out, err = box.logs()
    assert state["ExitCode"] == 0, (state, err[-3000:])
    assert took < 10, f"docker stop took {took:.1f}s: the engine's SIGKILL came first"
    assert "worker  | worker: current job finished, exiting 0" in out, out[-3000:]
    assert out.index("worker: current job finished") < out.rindex("web: got SIGTERM"), out[-3000:]
    assert box.died() == [0]


def test_critical_failure_exits_and_engine_restarts(dockerd: Dockerd, image: str, app: Path,
                                                   tmp_path: Path) -> None:
    # web fails on the container's first boot and is not restarted by herder: the container
    # ends with 69 and Docker's restart policy starts it again; the second boot works.
    variant_of(CONTAINER, app, {
        "restart": ('restart = "always"\nready', 'restart = "never"\nready'),
        "health": ('interval = "5s" }', 'interval = "5s", action = "none" }'),
        "env": ('command = ["python3", "app.py", "web"]',
                'command = ["python3", "app.py", "web"]\nenv = { FAIL_FIRST_BOOT = "/app/.booted" }')})
    box = Box(dockerd, image, app, "herder-init-critical", "--restart", "on-failure", *HEALTH)
    # a failing migration fails the container start: web never starts
    failing = tmp_path / "failing"
    fail = 'restart = "never"\nenv = { MIGRATE_EXIT = "3" }\ncritical'
    variant_of(CONTAINER, failing, {"migrate": ('restart = "never"\ncritical', fail)})
    mig = Box(dockerd, image, failing, "herder-init-migrate")

    wait_until("restarted once and healthy",
               lambda: box.d.inspect(box.name)["RestartCount"] == 1 and box.health() == "healthy", 120)
    assert box.died() == [69]
    out, err = box.logs()
    assert "web: cannot reach the database on first boot" in err, err
    assert "web is critical and exited" in err and "exiting with code 69" in err, err

    wait_until("the failed migration to end the container", lambda: mig.state()["Status"] == "exited", 60)
    assert mig.state()["ExitCode"] == 69
    out, err = mig.logs()
    assert "migrate is critical" in err, err
    assert "web: listening" not in out, out
    dockerd.docker("rm", "-f", box.name, mig.name)
