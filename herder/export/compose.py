"""`herder export compose`: a Compose file that Compose v1 (docker-compose 1.29) and v2 both run.

Plain Docker never restarts an unhealthy container: a healthcheck only gates
`depends_on: condition: service_healthy`. Compose has one healthcheck per service where
herder has two checks (readiness once, liveness after), so the health probe wins and the
readiness timeout becomes its start_period. Resource limits use the service-level keys
(`mem_limit`, `cpus`, `ulimits`) because Compose v1 ignores `deploy.resources` without
--compatibility, while both versions honour `deploy.replicas`.

Swarm (swarm.py) shares the service translation and changes what Swarm does differently.
"""

from __future__ import annotations

import math
from typing import Any

from herder.config.model import ServiceSpec
from herder.export import probes
from herder.export.project import Project, replica_free
from herder.export.report import APPROXIMATED as A
from herder.export.report import CARRIED as C
from herder.export.report import NOT_CARRIED as N
from herder.export.report import Mapping, Recorder, Report, Rule, not_translated
from herder.platform.systemd import binary_size
from herder.units import format_duration

FILE = "docker-compose.yml"
PY = "the image needs python3"

COMMON: tuple[Rule, ...] = (
    Rule("command", "command", C, "the image's ENTRYPOINT, if it has one, gets it as arguments: build the image "
         "without one"),
    Rule("shell", "command", C, "/bin/sh -c inside the image"),
    Rule("cwd", "working_dir", C, "the image holds the project directory at /app"),
    Rule("cwd", "working_dir", A, "a path outside the project directory: it must exist in the image", when="outside"),
    Rule("cwd", "working_dir", A, "not set: herder uses its own working directory; the export uses the project "
         "directory (/app)", when="unset"),
    Rule("env", "environment", C),
    Rule("env_file", "environment", C, "read at export time and written inline"),
    Rule("{replica}", "—", A, "replicas share one definition: {replica} becomes 0 (each container has its own "
         "network, so per-replica ports are not needed)"),
    Rule("user", "user", C, "the account must exist in the image"),
    Rule("group", "user", C, "as user:group; the group must exist in the image"),
    Rule("replicas", "deploy.replicas", C),
    Rule("success_exit_codes", "—", N, "Docker counts only exit 0 as success"),
    Rule("min_uptime", "—", N, "Docker has no minimum run time"),
    Rule("stop_signal", "stop_signal", C, "sent to the container's main process"),
    Rule("stop_timeout", "stop_grace_period", C, "then SIGKILL to every process in the container"),
    Rule("kill", "—", C, "stop signal to the main process, SIGKILL to the whole container", when="tree"),
    Rule("kill", "—", A, "Docker SIGKILLs every process in the container, not only the group", when="group"),
    Rule("kill", "—", A, "Docker SIGKILLs every process in the container, not only the main one", when="main"),
    Rule("reload_signal", "—", N, "send it by hand: `docker kill -s HUP CONTAINER`"),
    Rule("critical", "—", N, "each service is its own container: one that fails for good does not stop the others "
         "(the nearest, by hand: `docker compose up --abort-on-container-failure`); to keep the policy, run the "
         "services in one container with herder as its init (docs/container.md)"),
    Rule("critical_exit_code", "—", N, "goes with critical"),
    Rule("depends_on", "depends_on: service_started", C, when="started"),
    Rule("depends_on", "depends_on: service_healthy", C, "the dependency's healthcheck (its health probe, else its "
         "readiness check) must pass", when="ready"),
    Rule("depends_on", "depends_on: service_healthy", C, when="healthy"),
    Rule("depends_on", "depends_on: service_started", C, "the dependency has no check: ready when started",
         when="nocheck"),
    Rule("depends_on", "depends_on: service_completed_successfully", C, when="completed"),
    Rule("bind", "—", N, "Compose v2's depends_on.restart would, but Compose v1 rejects it"),
    Rule("logs", "—", N, "output goes to the engine's log driver (`docker logs`)"),
    Rule("logs.max_size", "logging.options.max-size", C, "json-file driver"),
    Rule("logs.max_files", "logging.options.max-file", C, "json-file driver"),
    Rule("ready.notify", "—", A, "no notify socket in a container: ready when started; add an http, tcp or exec "
         "check"),
    Rule("ready.http", "healthcheck.test", C, f"one request per attempt with Python's urllib ({PY})"),
    Rule("ready.tcp", "healthcheck.test", C, f"one connection per attempt with Python's socket ({PY})"),
    Rule("ready.exec", "healthcheck.test", C, "CMD form, run inside the container"),
    Rule("ready.log", "—", N, "a container's output cannot be read from inside it: ready when started; add an "
         "http, tcp or exec check"),
    Rule("ready", "healthcheck", A, "one healthcheck per service: the health probe is used and the readiness "
         "timeout becomes its start_period", when="health"),
    Rule("ready", "—", N, "the readiness check is not carried, so neither is its timing", when="unused"),
    Rule("ready.timeout", "healthcheck.start_period", A, "failures inside it do not count; after it, failures make "
         "the container unhealthy instead of failing its start"),
    Rule("ready.interval", "healthcheck.interval", C),
    Rule("ready.attempt_timeout", "healthcheck.timeout", C),
    Rule("health.http", "healthcheck.test", C, f"urllib request inside the container ({PY})"),
    Rule("health.tcp", "healthcheck.test", C, f"socket connection inside the container ({PY})"),
    Rule("health.exec", "healthcheck.test", C, "CMD form, run inside the container"),
    Rule("health.body", "healthcheck.test", C, "checked by the same Python program"),
    Rule("health.interval", "healthcheck.interval", C),
    Rule("health.timeout", "healthcheck.timeout", C),
    Rule("health.initial_delay", "healthcheck.start_period", A, "counted from the container's start, not from "
         "ready"),
    Rule("health.failure_threshold", "healthcheck.retries", C),
    Rule("health.success_threshold", "—", N, "one passing check makes a container healthy"),
    Rule("health.watchdog", "—", N, "no notify socket in a container"),
    Rule("limits.memory", "mem_limit", C),
    Rule("limits.cpu", "cpus", C),
    Rule("limits.max_memory_restart", "—", N, "no RSS watch: the nearest is limits.memory (the kernel OOM-kills, "
         "then the restart policy applies)"),
    Rule("limits.memory_check_interval", "—", N, "goes with max_memory_restart"),
    Rule("limits.nofile", "ulimits.nofile", C),
    Rule("limits.nproc", "ulimits.nproc", C),
    Rule("limits.core", "ulimits.core", C),
    *not_translated({
        "restart_prevent_exit_codes": "—",
        "restart_force_exit_codes": "—",
        "schedule": "—",
        "overlap": "—",
        "missed": "—",
        "restart_schedule": "—",
        "timezone": "—",
        "hooks.pre_start": "a one-shot service the service depends_on (condition: service_completed_successfully)",
        "hooks.post_start": "post_start (Compose 2.30 and later)",
        "hooks.pre_stop": "pre_stop (Compose 2.30 and later)",
        "hooks.post_stop": "—",
        "security.umask": "—",
        "security.clear_env": "— (a container starts from its image's environment)",
        "security.read_only_paths": "read-only bind mounts (volumes: …:ro)",
    }),
)

# What `docker compose` carries and the Swarm export does not (swarm.py reports those).
SECURITY: tuple[Rule, ...] = (
    Rule("security.no_new_privileges", "security_opt: [no-new-privileges:true]", C),
    Rule("security.capabilities", "cap_drop: [ALL] + cap_add", C),
    Rule("security.private_tmp", "tmpfs: [/tmp, /var/tmp]", C),
)

RULES: tuple[Rule, ...] = (
    *COMMON,
    *SECURITY,
    Rule("autostart", "profiles: [manual]", A, "not started by a plain `up`: `docker compose --profile manual up` "
         "or name it"),
    Rule("autostart", "—", A, "a service that something started depends on: Compose starts it with its dependant "
         "(herder would wait for it to be started by hand)", when="needed"),
    Rule("restart", "restart: always", C, when="always"),
    Rule("restart", "restart: on-failure", C, when="on-failure"),
    Rule("restart", 'restart: "no"', C, when="never"),
    Rule("backoff", "—", N, "Docker's restart delay is its own: 100 ms doubling up to 1 minute, reset after 10 s "
         "of running"),
    Rule("start_limit", "—", N, "Docker restarts without a limit (on-failure:N would stop for good after N, in "
         "any period)"),
    Rule("health.action", "—", N, "plain Docker and Compose never restart an unhealthy container: health only "
         "gates depends_on (Swarm does replace it)", when="restart"),
    Rule("health.action", "—", C, "Docker records the health state only", when="none"),
)

MAPPING = Mapping("compose", RULES)


def duration(value: float) -> str:
    return format_duration(value)


def size(n: int) -> str:
    """Bytes in Docker's notation: 134217728 → "128M"."""
    return binary_size(n)


def argv(rec: Recorder, values: tuple[str, ...]) -> list[str]:
    if any("{replica}" in v for v in values):
        rec.note("{replica}")
    return [replica_free(v) for v in values]


def healthcheck(spec: ServiceSpec, rec: Recorder) -> dict[str, Any] | None:
    """herder's health probe (else its readiness check) as Docker's one healthcheck."""
    ready, health = spec.ready, spec.health
    rkind, hkind = ready.kind, health.kind
    probe_ready = rkind in ("http", "tcp", "exec")
    if rkind in ("notify", "log"):
        rec.note(f"ready.{rkind}")
    timing = ("ready.timeout", "ready.interval", "ready.attempt_timeout")
    if rkind is None or not probe_ready:
        if rkind:
            rec.note_changed(timing, "unused")
        else:
            rec.skip(*timing)
    if hkind is None:
        rec.skip(*(f"health.{k}" for k in ("interval", "timeout", "initial_delay", "failure_threshold",
                                           "success_threshold", "action", "body")))
    if hkind is not None:
        test = probes.once(hkind, health, health.timeout) or ()
        rec.note(f"health.{hkind}")
        if health.body:
            rec.note("health.body")
        start = health.initial_delay
        if probe_ready:
            rec.note(f"ready.{rkind}", "health", target="healthcheck.start_period")
            rec.note_changed(("ready.interval", "ready.attempt_timeout"), "health")
            rec.note("ready.timeout")
            start += ready.timeout
        rec.note("health.interval")
        rec.note("health.timeout")
        rec.note("health.failure_threshold")
        if health.initial_delay:
            rec.note("health.initial_delay")
        interval, timeout, retries = health.interval, health.timeout, health.failure_threshold
    elif probe_ready:
        test = probes.once(str(rkind), ready, ready.attempt_timeout) or ()
        rec.note(f"ready.{rkind}")
        rec.note("ready.timeout", detail=f"start_period {duration(ready.timeout)}" if ready.timeout else
                 "0s (wait for ever) becomes a start_period of 1 hour")
        rec.note("ready.interval")
        rec.note("ready.attempt_timeout")
        start = ready.timeout or 3600.0
        interval, timeout, retries = ready.interval, ready.attempt_timeout, 3
    else:
        return None
    out: dict[str, Any] = {
        "test": ["CMD", *test],
        "interval": duration(interval),
        "timeout": duration(timeout),
        "retries": retries,
    }
    if start:
        out["start_period"] = duration(math.ceil(start * 1000) / 1000)
    return out


def limits(spec: ServiceSpec, rec: Recorder, out: dict[str, Any]) -> None:
    lim = spec.limits
    if lim.memory is not None:
        rec.note("limits.memory")
        out["mem_limit"] = size(lim.memory)
    if lim.cpu is not None:
        rec.note("limits.cpu")
        out["cpus"] = lim.cpu
    ulimits = {k: getattr(lim, k) for k in ("nofile", "nproc", "core") if getattr(lim, k) is not None}
    for k in ulimits:
        rec.note(f"limits.{k}")
    if ulimits:
        out["ulimits"] = {k: -1 if v == 2**64 - 1 or v < 0 else v for k, v in ulimits.items()}


def logging_options(spec: ServiceSpec, rec: Recorder, out: dict[str, Any]) -> None:
    opts = {}
    if spec.logs.max_size:
        opts["max-size"] = size(spec.logs.max_size).lower()
        rec.note("logs.max_size")
    if spec.logs.max_files:
        opts["max-file"] = str(spec.logs.max_files)
        rec.note("logs.max_files")
    if opts:
        out["logging"] = {"driver": "json-file", "options": opts}


def service(project: Project, name: str, rec: Recorder, *, swarm: bool,
            spec: ServiceSpec | None = None) -> dict[str, Any]:
    """The parts of a service that Compose and Swarm write the same way (`spec`: a variant
    of the service's own, when the target leaves something out)."""
    spec = spec or project.services[name]
    out: dict[str, Any] = {"image": project.image}
    rec.note("command")
    if spec.shell:
        rec.note("shell")
    out["command"] = argv(rec, spec.command)
    workdir, case = project.in_image(spec.cwd)
    rec.note("cwd", case, detail=workdir if case else "")
    out["working_dir"] = replica_free(workdir)
    env = {k: replica_free(v) for k, v in spec.env.items()}
    if any("{replica}" in v for v in spec.env.values()):
        rec.note("{replica}")
    if env:
        rec.note("env")
        out["environment"] = env
    if spec.user:
        rec.note("user")
        out["user"] = spec.user + (f":{spec.group}" if spec.group else "")
        if spec.group:
            rec.note("group")
    elif spec.group:
        rec.note("group")
        out["user"] = f"0:{spec.group}"
    check = healthcheck(spec, rec)
    if check is not None:
        out["healthcheck"] = check
    rec.note("stop_signal")
    out["stop_signal"] = spec.stop_signal
    rec.note("stop_timeout")
    out["stop_grace_period"] = duration(spec.stop_timeout)
    if spec.kill != "tree":
        rec.note("kill", spec.kill)
    limits(spec, rec, out)
    logging_options(spec, rec, out)
    if not swarm:
        security(spec, rec, out)
    if spec.replicas != 1 or swarm:
        rec.note("replicas")
        out.setdefault("deploy", {})["replicas"] = spec.replicas
    return out


def security(spec: ServiceSpec, rec: Recorder, out: dict[str, Any]) -> None:
    """[security] as Compose has it (not in the Swarm export: see swarm.py's rules)."""
    sec = spec.security
    if sec.no_new_privileges:
        rec.note("security.no_new_privileges")
        out["security_opt"] = ["no-new-privileges:true"]
    if sec.capabilities is not None:
        rec.note("security.capabilities")
        out["cap_drop"] = ["ALL"]
        if sec.capabilities:
            out["cap_add"] = list(sec.capabilities)
    if sec.private_tmp:
        rec.note("security.private_tmp")
        out["tmpfs"] = ["/tmp", "/var/tmp"]


def has_check(spec: ServiceSpec) -> bool:
    return spec.health.kind is not None or spec.ready.kind in ("http", "tcp", "exec")


def depends(project: Project, name: str, rec: Recorder) -> dict[str, Any]:
    spec = project.services[name]
    out: dict[str, Any] = {}
    cases: dict[str, list[str]] = {}
    for dep, cond in spec.depends_on.items():
        if dep not in project.services:
            continue
        case = "nocheck" if cond in ("ready", "healthy") and not has_check(project.services[dep]) else cond
        cases.setdefault(case, []).append(f"{dep} = {cond}")
        out[dep] = {"condition": {"started": "service_started", "nocheck": "service_started",
                                  "completed": "service_completed_successfully"}.get(case, "service_healthy")}
    for case, deps in cases.items():
        rec.note("depends_on", case, detail=", ".join(deps))
    return out


def build(project: Project, report: Report) -> dict[str, Any]:
    services: dict[str, Any] = {}
    for name, spec in project.services.items():
        rec = Recorder(MAPPING, report, name, spec)
        out = service(project, name, rec, swarm=False)
        deps = depends(project, name, rec)
        if deps:
            out["depends_on"] = deps
        rec.note("restart", spec.restart)
        out["restart"] = {"always": "always", "on-failure": "on-failure", "never": "no"}[spec.restart]
        if spec.restart != "never":
            rec.note("start_limit")
            rec.note("backoff")
        if spec.health.kind is not None:
            rec.note("health.action", spec.health.action)
        if not spec.autostart:
            needed = sorted(d for d in project.dependents(name) if project.services[d].autostart)
            if needed:
                rec.note("autostart", "needed", detail=f"needed by {', '.join(needed)}")
            else:
                rec.note("autostart")
                out["profiles"] = ["manual"]
        rec.finish()
        services[name] = out
    return {"services": services}


def header(project: Project) -> list[str]:
    return [f"# Generated by `herder export compose` from {project.config}: edit that file and export again.",
            f"# Runs with Compose v1 (docker-compose) and v2 (docker compose). Image: {project.image} "
            "(docs/export.md: building it).",
            "# What could not be carried is listed in export-report.txt."]
