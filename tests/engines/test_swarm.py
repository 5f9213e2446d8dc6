"""`herder export swarm` deployed with `docker stack deploy` on a real single-node Swarm.

The private dockerd (tests/engines/dockerd.py) becomes a Swarm manager on 127.0.0.1; the
shop example is exported with the CLI and deployed as a stack. Checked on the engine, in
order: the replicas run and the service name resolves to both (dnsrr), the one-shot ran
once, a task made unhealthy is replaced (Swarm acts on health; plain Docker does not), a
new version rolls out one task at a time (the next old task stops only after the first
new one started), and a version that never gets healthy is rolled back automatically.
Updates are new exports of a changed herder.toml, deployed over the running stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from herdertest import wait_until
from shop_example import FULL, export, stamp, variant

from engines.dockerd import Dockerd

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

STACK = "shop"
WEB_ENV = 'env = { NAME = "web{replica}", PORT = "808{replica}", DRAIN_SECONDS = "1" }'


@dataclass
class Stack:
    dockerd: Dockerd
    work: Path

    def deploy(self, name: str, **changes: tuple[str, str]) -> None:
        """Export a variant of the shop and deploy it over the stack."""
        config = variant(self.work / name, **changes)
        out = self.work / f"{name}-out"
        export(config, "swarm", out)
        self.dockerd.docker("stack", "deploy", "-c", str(out / "stack.yml"), STACK, timeout=120)

    def running(self, service: str) -> list[dict[str, Any]]:
        ids = self.dockerd.docker("ps", "-q", "-f", f"label=com.docker.swarm.service.name={STACK}_{service}").stdout
        return [self.dockerd.inspect(c) for c in ids.split()]

    def tasks(self, service: str) -> list[dict[str, Any]]:
        ids = self.dockerd.docker("service", "ps", "-q", f"{STACK}_{service}").stdout.split()
        return [self.dockerd.inspect(t) for t in ids]

    def update_state(self, service: str) -> str:
        return self.dockerd.docker("service", "inspect", f"{STACK}_{service}", "-f",
                                   "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}").stdout.strip()

    def healthy(self, service: str, n: int) -> list[dict[str, Any]] | None:
        run = self.running(service)
        ok = [c for c in run if c["State"].get("Health", {}).get("Status") == "healthy"]
        return run if len(run) == n and len(ok) == n else None


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container["Config"]["Env"])


@pytest.fixture(scope="module")
def stack(dockerd: Dockerd, shop_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    dockerd.docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    s = Stack(dockerd, tmp_path_factory.mktemp("swarm"))
    try:
        s.deploy("v1")
        wait_until("2 healthy web tasks", lambda: s.healthy("web", 2), timeout=120)
        yield s
    finally:
        dockerd.docker("stack", "rm", STACK, check=False)
        dockerd.docker("swarm", "leave", "--force", check=False, timeout=60)


def test_replicas_run_and_resolve(stack: Stack) -> None:
    webs = wait_until("2 healthy web tasks", lambda: stack.healthy("web", 2), timeout=60)
    ips = sorted(next(iter(c["NetworkSettings"]["Networks"].values()))["IPAddress"] for c in webs)
    out = stack.dockerd.docker("exec", webs[0]["Id"], "getent", "ahostsv4", "web").stdout
    assert sorted({line.split()[0] for line in out.splitlines()}) == ips
    limits = webs[0]["HostConfig"]
    assert (limits["Memory"], limits["NanoCpus"]) == (128 * 1024**2, 500_000_000)
    assert {"Name": "nofile", "Soft": 1024, "Hard": 1024} in limits["Ulimits"]


def test_one_shot_ran_once(stack: Stack) -> None:
    def done() -> list[dict[str, Any]] | None:
        tasks = stack.tasks("migrate")
        return tasks if tasks and all(t["Status"]["State"] == "complete" for t in tasks) else None

    tasks = wait_until("migrate to complete", done, timeout=60)
    assert len(tasks) == 1, "restart_policy none: the one-shot runs once"


def test_an_unhealthy_task_is_replaced(stack: Stack) -> None:
    victim = stack.running("web")[0]
    stack.dockerd.docker("exec", victim["Id"], "touch", "/tmp/shop-sick-8080")   # /health now answers 503
    wait_until("the unhealthy task to be stopped",
               lambda: not stack.dockerd.inspect(victim["Id"])["State"]["Running"], timeout=60)
    assert stack.dockerd.inspect(victim["Id"])["State"]["Health"]["Status"] == "unhealthy"
    webs = wait_until("a healthy replacement", lambda: stack.healthy("web", 2), timeout=60)
    assert victim["Id"] not in {c["Id"] for c in webs}


def test_a_new_version_rolls_out_one_task_at_a_time(stack: Stack) -> None:
    old = {c["Id"]: c for c in stack.running("web")}
    stack.deploy("v2", version=(WEB_ENV, WEB_ENV.replace(' }', ', VERSION = "2" }')))
    wait_until("the update to complete", lambda: stack.update_state("web") == "completed", timeout=120)
    new = wait_until("2 healthy v2 tasks", lambda: stack.healthy("web", 2), timeout=60)
    assert all(env_of(c).get("VERSION") == "2" for c in new)
    stopped = sorted(stamp(stack.dockerd.inspect(i)["State"]["FinishedAt"]) for i in old)
    started = sorted(stamp(c["State"]["StartedAt"]) for c in new)
    # stop-first, parallelism 1: old 1 stops, new 1 starts (and is monitored), only then old 2 stops
    assert stopped[0] <= started[0] <= stopped[1] <= started[1], (stopped, started)


def test_an_update_that_never_gets_healthy_is_rolled_back(stack: Stack) -> None:
    broken = WEB_ENV.replace(' }', ', VERSION = "3", HEALTHY = "0" }')
    stack.deploy("v3", version=(WEB_ENV, broken))
    wait_until("the automatic rollback", lambda: stack.update_state("web") == "rollback_completed", timeout=180)
    webs = wait_until("2 healthy tasks after the rollback", lambda: stack.healthy("web", 2), timeout=60)
    assert [env_of(c).get("VERSION") for c in webs] == ["2", "2"]


def test_every_key_exports_to_a_stack_swarm_accepts(dockerd: Dockerd, stack: Stack, tmp_path: Path) -> None:
    """tests/export/configs/full sets every herder key: Swarm must take the stack file as it is."""
    out = tmp_path / "out"
    export(FULL, "swarm", out)
    res = dockerd.docker("stack", "deploy", "-c", str(out / "stack.yml"), "herder-full")
    try:
        assert "Ignoring unsupported options" not in res.stdout + res.stderr, res.stdout + res.stderr
        spec = dockerd.inspect("herder-full_api")["Spec"]
        assert spec["Mode"]["Replicated"]["Replicas"] == 3
        assert spec["TaskTemplate"]["RestartPolicy"] == {"Condition": "any", "Delay": 1_000_000_000,
                                                         "MaxAttempts": 7, "Window": 120_000_000_000}
        assert spec["UpdateConfig"]["Parallelism"] == 1 and spec["UpdateConfig"]["FailureAction"] == "rollback"
        assert spec["TaskTemplate"]["ContainerSpec"]["StopSignal"] == "SIGQUIT"
        assert dockerd.inspect("herder-full_migrate")["Spec"]["Mode"]["Replicated"]["Replicas"] == 0  # autostart
    finally:
        dockerd.docker("stack", "rm", "herder-full", check=False)
