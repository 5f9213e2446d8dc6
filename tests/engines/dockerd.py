"""A real Docker Engine for tests: dockerd in its own network namespace, data root and socket.

The `dockerd` session fixture (tests/engines/conftest.py) starts Debian's dockerd (20.10)
with everything private to this test run — network namespace `herder-export-PID`, data
and exec roots under /var/tmp/herder-export-docker-PID, its socket there — so the host's
network and any other Docker on the machine are never touched, and two runs never
collide. `nsenter --net` rather than `ip netns exec`, which would hide /sys/fs/cgroup.

setup-docker.sh installs the packages and caches the base image's rootfs (mmdebstrap:
Debian minbase + python3 + procps) as a content-keyed tar; `base_image()` imports it into
this daemon (no registry is reachable here). `build()` makes an image from a directory
with a Dockerfile. Issue 19 (herder as a container's init) builds on the same fixture.

Waits poll an observable (`docker info`, a container's state) with a deadline; only
processes this module started are signalled, by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from herdertest import wait_until

HERE = Path(__file__).resolve().parent
DOCKER = "/usr/bin/docker"      # Debian's client, the daemon's version (not another docker on PATH)


def setup() -> tuple[dict[str, str] | None, str]:
    """(paths from setup-docker.sh, why-not)."""
    if os.geteuid() != 0:
        return None, "the Docker tier needs root (it runs dockerd); run `make test` as root"
    if not shutil.which("apt-get") and not os.path.exists("/usr/sbin/dockerd"):
        return None, "dockerd is not installed and apt-get is not available"
    env = {**os.environ, "PYTHON": sys.executable}
    res = subprocess.run([str(HERE / "setup-docker.sh")], capture_output=True, text=True, timeout=1200, env=env)
    if res.returncode != 0:
        return None, f"setup-docker.sh failed (exit {res.returncode}): {res.stderr.strip()[-800:]}"
    return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line), ""


class Dockerd:
    """One private Docker Engine."""

    def __init__(self, paths: dict[str, str], tag: str | None = None) -> None:
        self.paths = paths
        self.tag = tag or f"herder-export-{os.getpid()}"
        self.netns = self.tag
        self.work = Path("/var/tmp") / f"{self.tag}-docker"
        self.sock = self.work / "docker.sock"
        self.host = f"unix://{self.sock}"
        self.log = self.work / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # -- lifetime --------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"], check=True,
                       capture_output=True, timeout=30)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.netns}", "/usr/sbin/dockerd",
                 "--data-root", str(self.work / "root"), "--exec-root", str(self.work / "exec"),
                 "--pidfile", str(self.work / "dockerd.pid"), "-H", self.host, "--storage-driver", "overlay2"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited (rc {self.proc.returncode}): {self.log.read_text()[-1500:]}")
            return self.docker("info", "-f", "{{.ServerVersion}}", check=False, timeout=10).returncode == 0

        wait_until("dockerd to answer", up, timeout)

    def stop(self) -> None:
        """Remove what runs in it, stop the daemon (by pid), drop its namespace and files."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.docker("swarm", "leave", "--force", check=False, timeout=60)
                ids = self.docker("ps", "-aq", check=False, timeout=30).stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, check=False, timeout=120)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.proc = None
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=30)
        self._unmount()
        shutil.rmtree(self.work, ignore_errors=True)

    def _unmount(self) -> None:
        """Anything dockerd left mounted under its roots (after a crash), deepest first."""
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f if line.split()[1].startswith(str(self.work) + "/")]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)

    # -- driving ---------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0",
                "COMPOSE_DOCKER_CLI_BUILD": "0"}

    def docker(self, *args: str, check: bool = True, timeout: float = 120.0,
               input: str | None = None) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, env=self.env(),
                             input=input)
        if check and res.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed (exit {res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def compose(self, version: str, project: str, *args: str, cwd: Path, check: bool = True,
                timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        """`docker-compose` v1 (Debian) or v2 (the pinned static binary) on this daemon."""
        exe = self.paths["COMPOSE_V1" if version == "v1" else "COMPOSE_V2"]
        res = subprocess.run([exe, "-p", project, *args], capture_output=True, text=True, timeout=timeout,
                             env=self.env(), cwd=cwd)
        if check and res.returncode != 0:
            raise AssertionError(f"compose {version} {' '.join(args)} failed (exit {res.returncode}):\n"
                                 f"{res.stdout}\n{res.stderr}")
        return res

    def inspect(self, obj: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.docker("inspect", obj).stdout)
        return data[0]

    def base_image(self) -> str:
        """The cached Debian rootfs as an image in this daemon (imported once per daemon)."""
        name = f"local/herder-base:{self.paths['BASE_KEY']}"
        if self.docker("image", "inspect", name, check=False).returncode != 0:
            self.docker("import", self.paths["BASE_TAR"], name, timeout=300)
        return name

    def build(self, context: Path, tag: str, **build_args: str) -> str:
        args = [a for k, v in build_args.items() for a in ("--build-arg", f"{k}={v}")]
        self.docker("build", "-q", "-t", tag, *args, str(context), timeout=300)
        return tag


@contextlib.contextmanager
def open_dockerd() -> Iterator[Dockerd]:
    """A started daemon, stopped and cleaned on exit; pytest.skip with the reason when this
    machine cannot run one."""
    import pytest

    paths, why = setup()
    if paths is None:
        pytest.skip(why)
    d = Dockerd(paths)
    try:
        try:
            d.start()
        except (RuntimeError, AssertionError, subprocess.CalledProcessError) as e:
            pytest.skip(f"dockerd cannot start here: {e}")
        yield d
    finally:
        d.stop()
