"""`herder export swarm`: a stack file for `docker stack deploy` (file format 3.8).

Swarm differs from Compose in what matters to herder: it *does* replace a task whose
healthcheck fails (so health.action = "restart" is carried), it ignores `depends_on`
(every service starts at once; the file says so in a comment), it takes limits only under
`deploy.resources`, and it rolls updates out task by task. herder's rolling restart (one
instance at a time, each ready before the next) becomes `update_config` with parallelism
1 and `failure_action: rollback`, monitored for as long as a new task needs to be judged
healthy.

Services use `endpoint_mode: dnsrr`: a service name resolves to its tasks' addresses, as
in Compose. herder has no published ports, so the routing mesh (VIP mode, which needs
IPVS in the kernel) adds nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from herder.config.model import Health
from herder.export import compose
from herder.export.project import Project
from herder.export.report import APPROXIMATED as A
from herder.export.report import CARRIED as C
from herder.export.report import NOT_CARRIED as N
from herder.export.report import Mapping, Recorder, Report, Rule, not_translated
from herder.units import parse_duration

FILE = "stack.yml"
VERSION = "3.8"
DEFAULT_MONITOR = 5.0

_REPLACED = {"limits.memory", "limits.cpu", "depends_on"}

RULES: tuple[Rule, ...] = (
    *(r for r in compose.COMMON if r.key not in _REPLACED),
    Rule("limits.memory", "deploy.resources.limits.memory", C),
    Rule("limits.cpu", "deploy.resources.limits.cpus", C),
    Rule("depends_on", "—", N, "`docker stack deploy` ignores depends_on: every service starts at once (the "
         "file lists the dependencies in a comment); the program must retry until what it needs answers"),
    Rule("autostart", "deploy.replicas: 0", A, "scale it up by hand: `docker service scale STACK_NAME=N`"),
    Rule("restart", "deploy.restart_policy.condition: any", C, when="always"),
    Rule("restart", "deploy.restart_policy.condition: on-failure", C, when="on-failure"),
    Rule("restart", "deploy.restart_policy.condition: any", A, "Swarm stops an unhealthy task with the stop signal, "
         "and a program that then exits 0 would not be replaced under on-failure: a clean exit is restarted too",
         when="on-failure-health"),
    Rule("restart", "deploy.restart_policy.condition: none", C, "the task runs once; the service then shows 0/1",
         when="never"),
    Rule("backoff", "deploy.restart_policy.delay", A, "a fixed delay: backoff.initial"),
    Rule("start_limit", "deploy.restart_policy.max_attempts + window", C, "burst restarts within interval, then "
         "Swarm stops restarting"),
    Rule("health.action", "—", C, "Swarm replaces a task whose healthcheck fails", when="restart"),
    Rule("health.action", "—", N, "Swarm always replaces an unhealthy task: the health probe is left out (the "
         "readiness check, if any, stays)", when="none"),
    Rule("health", "—", N, "left out with the probe (health.action = none)", when="none"),
    Rule("rolling", "deploy.update_config", C, "one task at a time (stop-first), judged for `monitor` after it "
         "starts; a failing update rolls back"),
    Rule("security.no_new_privileges", "—", N, "`docker stack deploy` ignores security_opt"),
    *not_translated({
        "security.capabilities": "cap_drop: [ALL] + cap_add (Docker 20.10 and later)",
        "security.private_tmp": "tmpfs: [/tmp, /var/tmp]",
    }),
)

MAPPING = Mapping("swarm", RULES)


def monitor(check: dict[str, Any] | None) -> float:
    """How long Swarm watches a new task before the next: long enough to call it unhealthy."""
    if check is None:
        return DEFAULT_MONITOR
    secs = {"start_period": 0.0, "interval": 0.0, "timeout": 0.0}
    for k in secs:
        if k in check:
            secs[k] = parse_duration(check[k])
    # the start period, then `retries` failures, each at most interval + timeout apart
    return secs["start_period"] + (secs["interval"] + secs["timeout"]) * int(check["retries"]) + secs["interval"]


def build(project: Project, report: Report) -> dict[str, Any]:
    services: dict[str, Any] = {}
    for name, spec in project.services.items():
        rec = Recorder(MAPPING, report, name, spec)
        shown = spec
        if spec.health.kind is not None and spec.health.action == "none":
            rec.note("health.action", "none")
            rec.note(f"health.{spec.health.kind}", "none")
            rec.note_changed(tuple(f"health.{k}" for k in ("body", "interval", "timeout", "initial_delay",
                                                           "failure_threshold", "success_threshold")), "none")
            shown = dataclasses.replace(spec, health=Health(watchdog=spec.health.watchdog))
        out = compose.service(project, name, rec, swarm=True, spec=shown)
        deploy: dict[str, Any] = out.setdefault("deploy", {})
        deploy["endpoint_mode"] = "dnsrr"
        if spec.health.kind is not None and spec.health.action == "restart":
            rec.note("health.action", "restart")
        resources = {}
        if "mem_limit" in out:
            resources["memory"] = out.pop("mem_limit")
            rec.note("limits.memory")
        if "cpus" in out:
            resources["cpus"] = f"{out.pop('cpus'):g}"
            rec.note("limits.cpu")
        if resources:
            deploy["resources"] = {"limits": resources}
        if spec.depends_on:
            rec.note("depends_on", detail=", ".join(f"{d} = {c}" for d, c in spec.depends_on.items()))
        if not spec.autostart:
            rec.note("autostart")
            deploy["replicas"] = 0
        condition = {"always": "any", "on-failure": "on-failure", "never": "none"}[spec.restart]
        if spec.restart == "on-failure" and spec.health.kind is not None and spec.health.action == "restart":
            rec.note("restart", "on-failure-health")
            condition = "any"
        else:
            rec.note("restart", spec.restart)
        policy: dict[str, Any] = {"condition": condition}
        if spec.restart != "never":
            rec.note("backoff", detail=f"delay {compose.duration(spec.backoff.initial)}")
            rec.note("start_limit")
            policy.update(delay=compose.duration(spec.backoff.initial), max_attempts=spec.start_limit.burst,
                          window=compose.duration(spec.start_limit.interval))
        deploy["restart_policy"] = policy
        if spec.restart != "never":
            rec.note("rolling")
            update = {"parallelism": 1, "delay": "0s", "order": "stop-first", "failure_action": "rollback",
                      "monitor": compose.duration(monitor(out.get("healthcheck")))}
            deploy["update_config"] = update
            deploy["rollback_config"] = {"parallelism": 1, "order": "stop-first"}
        rec.finish()
        services[name] = out
    return {"version": VERSION, "services": services}


def header(project: Project) -> list[str]:
    lines = [f"# Generated by `herder export swarm` from {project.config}: edit that file and export again.",
             f"# Deploy: docker stack deploy -c {FILE} {project.name}   (image: {project.image})",
             "# Swarm ignores depends_on: every service starts at once. herder's dependencies were:"]
    deps = [f"#   {n}: " + ", ".join(f"{d} = {c}" for d, c in s.depends_on.items())
            for n, s in project.services.items() if s.depends_on]
    return lines + (deps or ["#   (none)"]) + ["# What could not be carried is listed in export-report.txt."]
