"""`herder export kubernetes`: Deployments, Jobs, headless Services and the RBAC the waits need.

A long-running service becomes a Deployment (its replicas, rolled one pod at a time as
herder restarts them: maxUnavailable 1, maxSurge 0) with a headless Service, so its name
resolves to its ready pods as it does in Compose. A one-shot — `restart = "never"`, or a
service something waits on to complete — becomes a Job.

Kubernetes has no start order. Each dependency becomes an init container that asks the
API server for the dependency's state until it meets the condition (ready/healthy: all
replicas of the Deployment ready; completed: the Job complete; started: its pods exist),
using the pod's service account and a Role that may only `get` those objects. The wait is
a short Python program in a ConfigMap, run by the service's own image (python3 is needed,
docs/export.md), so no second image or kubectl is needed.

herder's readiness check becomes the startupProbe (liveness waits for it, as herder's
health waits for ready) and the readinessProbe unless a health probe takes that place;
the health probe becomes the livenessProbe when its action is restart.
"""

from __future__ import annotations

import math
import shlex
import urllib.parse
from typing import Any

from herder.config.model import Health, Ready, ServiceSpec
from herder.export import probes
from herder.export.oncalendar import Untranslatable, five_fields
from herder.export.project import ExportError, Project, dns_label, replica_free
from herder.export.report import APPROXIMATED as A
from herder.export.report import CARRIED as C
from herder.export.report import NOT_CARRIED as N
from herder.export.report import Mapping, Recorder, Report, Rule, not_translated
from herder.platform.systemd import binary_size

FILE = "kubernetes.yaml"
PY = "the image needs python3"
DAY = 86400.0
NAME = "app.kubernetes.io/name"
PART_OF = "app.kubernetes.io/part-of"
MANAGED = "app.kubernetes.io/managed-by"
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::")

WAIT_DIR = "/herder-wait"
RULES: tuple[Rule, ...] = (
    Rule("name", "metadata.name", A, "made a DNS-1123 label (lower case, - for _)", when="renamed"),
    Rule("command", "containers[].command", C, "replaces the image's ENTRYPOINT"),
    Rule("shell", "containers[].command", C, "/bin/sh -c inside the image"),
    Rule("cwd", "containers[].workingDir", C, "the image holds the project directory at /app"),
    Rule("cwd", "containers[].workingDir", A, "a path outside the project directory: it must exist in the image",
         when="outside"),
    Rule("cwd", "containers[].workingDir", A, "not set: herder uses its own working directory; the export uses "
         "the project directory (/app)", when="unset"),
    Rule("env", "containers[].env", C, "plain values: move secrets to a Secret"),
    Rule("env_file", "containers[].env", C, "read at export time and written inline"),
    Rule("{replica}", "—", A, "a Deployment's pods share one template: {replica} becomes 0 (a StatefulSet "
         "would give each pod its ordinal)"),
    Rule("user", "securityContext.runAsUser", C, when="numeric"),
    Rule("user", "—", N, "Kubernetes takes a numeric uid: set user to one (e.g. \"1000\")", when="name"),
    Rule("group", "securityContext.runAsGroup", C, when="numeric"),
    Rule("group", "—", N, "Kubernetes takes a numeric gid: set group to one", when="name"),
    Rule("replicas", "Deployment spec.replicas", C, when="deployment"),
    Rule("replicas", "Job spec.completions + parallelism", A, "N pods that must each complete", when="job"),
    Rule("autostart", "spec.replicas: 0", A, "scale it up with `kubectl scale`", when="deployment"),
    Rule("autostart", "Job spec.suspend: true", A, "start it with `kubectl patch job NAME -p "
         "'{\"spec\":{\"suspend\":false}}'`", when="job"),
    Rule("restart", "Deployment, restartPolicy: Always", C, when="always"),
    Rule("restart", "Deployment, restartPolicy: Always", A, "a Deployment's pods restart whatever the exit code",
         when="on-failure"),
    Rule("restart", "Job, restartPolicy: OnFailure", C, when="job-on-failure"),
    Rule("restart", "Job, restartPolicy: Never, backoffLimit: 0", C, when="never"),
    Rule("restart", "Job, restartPolicy: OnFailure", A, "a completed dependency runs once; \"always\" would "
         "restart it after success", when="job-always"),
    Rule("success_exit_codes", "—", N, "Kubernetes counts only exit 0 as success"),
    Rule("min_uptime", "Deployment spec.minReadySeconds", A, "a pod counts as available after being ready this long",
         when="deployment"),
    Rule("min_uptime", "—", N, "Jobs have no minimum run time", when="job"),
    Rule("backoff", "—", N, "the kubelet's own restart delay: 10 s doubling up to 5 minutes (CrashLoopBackOff)"),
    Rule("start_limit", "—", N, "a Deployment's pods are restarted without limit", when="deployment"),
    Rule("start_limit", "Job spec.backoffLimit", A, "burst retries in all, not per interval", when="job"),
    Rule("stop_signal", "—", C, "the kubelet sends TERM", when="TERM"),
    Rule("stop_signal", "lifecycle.preStop", A, "a preStop hook sends the signal to the container's PID 1 and waits "
         "for it to exit; the kubelet's TERM follows (the image needs /bin/sh and kill)", when="other"),
    Rule("stop_timeout", "terminationGracePeriodSeconds", C, "whole seconds, rounded up"),
    Rule("kill", "—", C, "TERM to the main process, then SIGKILL to the whole container", when="tree"),
    Rule("kill", "—", A, "the kubelet SIGKILLs every process in the container", when="group"),
    Rule("kill", "—", A, "the kubelet SIGKILLs every process in the container", when="main"),
    Rule("reload_signal", "—", N, "send it by hand: `kubectl exec POD -- kill -s HUP 1`"),
    Rule("critical", "—", N, "each service is its own workload: one that fails for good does not stop the others; "
         "to keep the policy, run the services in one container with herder as its init (docs/container.md)"),
    Rule("critical_exit_code", "—", N, "goes with critical"),
    Rule("depends_on", "initContainers: wait-NAME", A, "waits (through the API) until the Deployment has pods (a "
         "Job: an active pod)", when="started"),
    Rule("depends_on", "initContainers: wait-NAME", C, "waits (through the API) until every replica of the "
         f"Deployment is ready (a Job: its pods, or complete) ({PY}; a Role allows the get)", when="ready"),
    Rule("depends_on", "initContainers: wait-NAME", C, "waits (through the API) until every replica is ready: "
         f"the readinessProbe carries the health probe ({PY})", when="healthy"),
    Rule("depends_on", "initContainers: wait-NAME", C, f"waits (through the API) until the Job is complete ({PY}); "
         "a failed Job makes the wait fail", when="completed"),
    Rule("bind", "—", N, "Kubernetes does not restart pods when another workload restarts"),
    Rule("logs", "—", N, "output goes to the container runtime's log (`kubectl logs`), rotated by the kubelet"),
    Rule("ready.notify", "—", A, "no notify socket in a pod: ready when running; add an http, tcp or exec check"),
    Rule("ready.http", "startupProbe.httpGet", C, "and readinessProbe without a health probe; the kubelet probes "
         "the pod's IP, so the program must listen on all interfaces"),
    Rule("ready.tcp", "startupProbe.tcpSocket", C, "and readinessProbe without a health probe; the kubelet "
         "connects to the pod's IP, so the program must listen on all interfaces"),
    Rule("ready.exec", "startupProbe.exec", C, "and readinessProbe without a health probe"),
    Rule("ready.log", "—", N, "a probe cannot read a container's output: ready when running; add an http, tcp or "
         "exec check"),
    Rule("ready", "—", N, "the readiness check is not carried, so neither is its timing", when="unused"),
    Rule("ready.timeout", "startupProbe.failureThreshold", C, "× periodSeconds; 0s (for ever) becomes one day"),
    Rule("ready.interval", "startupProbe.periodSeconds", C, "whole seconds, at least 1"),
    Rule("ready.attempt_timeout", "startupProbe.timeoutSeconds", C, "whole seconds, at least 1"),
    Rule("health.http", "livenessProbe.httpGet", C, "and readinessProbe (so that `healthy` waits and the Service "
         "see it)"),
    Rule("health.tcp", "livenessProbe.tcpSocket", C, "and readinessProbe"),
    Rule("health.exec", "livenessProbe.exec", C, "and readinessProbe"),
    Rule("health.body", "livenessProbe.exec", A, f"httpGet cannot match a body: a Python urllib check instead ({PY})"),
    Rule("health.interval", "livenessProbe.periodSeconds", C, "whole seconds, at least 1"),
    Rule("health.timeout", "livenessProbe.timeoutSeconds", C, "whole seconds, at least 1"),
    Rule("health.initial_delay", "livenessProbe.initialDelaySeconds", C, "counted after the startupProbe passed"),
    Rule("health.failure_threshold", "livenessProbe.failureThreshold", C),
    Rule("health.success_threshold", "readinessProbe.successThreshold", A, "a livenessProbe must have 1"),
    Rule("health.action", "livenessProbe", C, when="restart"),
    Rule("health.action", "—", N, "no Kubernetes equivalent: liveness omitted; the probe still drives the "
         "readinessProbe", when="none"),
    Rule("health.watchdog", "—", N, "no notify socket in a pod"),
    Rule("limits.memory", "resources.limits.memory", C),
    Rule("limits.cpu", "resources.limits.cpu", C),
    Rule("limits.max_memory_restart", "—", N, "no RSS watch: the nearest is limits.memory (OOM kill, then restart)"),
    Rule("limits.memory_check_interval", "—", N, "goes with max_memory_restart"),
    Rule("limits.nofile", "—", N, "Kubernetes has no per-container rlimits: the container runtime's defaults apply"),
    Rule("limits.nproc", "—", N, "Kubernetes has no per-container rlimits (the kubelet's podPidsLimit is "
         "per node)"),
    Rule("limits.core", "—", N, "Kubernetes has no per-container rlimits"),
    Rule("rolling", "strategy.rollingUpdate", C, "one pod at a time, stopped before its replacement starts "
         "(maxUnavailable 1, maxSurge 0), as `herder restart` does"),
    Rule("hooks.post_start", "lifecycle.postStart.exec", A, "runs as the container starts, not once it is ready; "
         "its own timeout is not carried (the kubelet has none for it)"),
    Rule("hooks.pre_stop", "lifecycle.preStop.exec", A, "its own timeout is not carried: "
         "terminationGracePeriodSeconds bounds it with the stop"),
    Rule("schedule", "CronJob.spec.schedule", C, "the Job under jobTemplate; without timezone the controller's "
         "zone (usually UTC), not the machine's"),
    Rule("schedule", "—", N, "Kubernetes' cron cannot say it", when="untranslatable"),
    Rule("timezone", "CronJob.spec.timeZone", C, "Kubernetes 1.27 and later"),
    Rule("overlap", "concurrencyPolicy: Replace", C, when="replace"),
    Rule("overlap", "concurrencyPolicy: Forbid", A, "a run due while the last one runs is skipped, not queued",
         when="queue"),
    Rule("missed", "no startingDeadlineSeconds", C, "the CronJob controller starts one run it missed"),
    Rule("security.no_new_privileges", "securityContext.allowPrivilegeEscalation: false", C),
    Rule("security.capabilities", "securityContext.capabilities", C, "drop: [ALL], add: the list"),
    *not_translated({
        "restart_prevent_exit_codes": "—",
        "restart_force_exit_codes": "—",
        "restart_schedule": "a CronJob running `kubectl rollout restart` (with a service account allowed to)",
        "hooks.pre_start": "an init container",
        "hooks.post_stop": "—",
        "security.umask": "—",
        "security.clear_env": "— (a container starts from its image's environment)",
        "security.private_tmp": "an emptyDir volume on /tmp",
        "security.read_only_paths": "volumeMounts with readOnly: true",
    }),
)

MAPPING = Mapping("kubernetes", RULES)


def whole(value: float) -> int:
    return max(1, math.ceil(value))


def names(project: Project) -> dict[str, str]:
    """herder name → Kubernetes name; two services that would collide are an error."""
    out: dict[str, str] = {}
    for name in project.services:
        k = dns_label(name, 58)   # room for the "wait-" prefix of init containers
        if k and not k[0].isalpha():
            k = dns_label("s-" + k, 58)
        if not k:
            raise ExportError(f'service "{name}": cannot be made a Kubernetes name; rename it with letters first')
        clash = next((o for o, v in out.items() if v == k), None)
        if clash:
            raise ExportError(f'services "{clash}" and "{name}" both become "{k}" in Kubernetes; rename one')
        out[name] = k
    return out


def _probe_action(kind: str, conf: Ready | Health, attempt: float) -> dict[str, Any]:
    if kind == "http" and not (isinstance(conf, Health) and conf.body):
        u = urllib.parse.urlsplit(str(conf.http))
        get: dict[str, Any] = {"path": (u.path or "/") + (f"?{u.query}" if u.query else ""),
                               "port": u.port or (443 if u.scheme == "https" else 80)}
        if u.scheme == "https":
            get["scheme"] = "HTTPS"
        if u.hostname not in _LOOPBACK:
            get["host"] = u.hostname
        return {"httpGet": get}
    if kind == "tcp":
        host, _, port = str(conf.tcp).rpartition(":")
        sock: dict[str, Any] = {"port": int(port)}
        if host.strip("[]") not in _LOOPBACK:
            sock["host"] = host.strip("[]")
        return {"tcpSocket": sock}
    argv = probes.once(kind, conf, attempt)
    return {"exec": {"command": list(argv or ())}}


def probes_for(spec: ServiceSpec, rec: Recorder) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ready, health = spec.ready, spec.health
    rkind, hkind = ready.kind, health.kind
    if rkind in ("notify", "log"):
        rec.note(f"ready.{rkind}")
    ready_keys = ("ready.timeout", "ready.interval", "ready.attempt_timeout")
    if rkind not in ("http", "tcp", "exec"):
        if rkind:
            rec.note_changed(ready_keys, "unused")
        else:
            rec.skip(*ready_keys)
    if hkind is None:
        rec.skip(*(f"health.{k}" for k in ("interval", "timeout", "initial_delay", "failure_threshold",
                                           "success_threshold", "action", "body")))
    if rkind in ("http", "tcp", "exec"):
        rec.note(f"ready.{rkind}")
        period = whole(ready.interval)
        rec.note("ready.interval", detail="" if period == ready.interval else f"{period}s")
        rec.note("ready.attempt_timeout")
        rec.note("ready.timeout")
        action = _probe_action(str(rkind), ready, ready.attempt_timeout)
        out["startupProbe"] = {**action, "periodSeconds": period, "timeoutSeconds": whole(ready.attempt_timeout),
                               "failureThreshold": whole((ready.timeout or DAY) / period)}
        out["readinessProbe"] = {**action, "periodSeconds": period, "timeoutSeconds": whole(ready.attempt_timeout)}
    if hkind is not None:
        rec.note(f"health.{hkind}")
        if health.body:
            rec.note("health.body")
        action = _probe_action(hkind, health, health.timeout)
        timing = {"periodSeconds": whole(health.interval), "timeoutSeconds": whole(health.timeout),
                  "failureThreshold": health.failure_threshold}
        for k in ("interval", "timeout", "failure_threshold"):
            rec.note(f"health.{k}")
        readiness = {**action, **timing}
        if health.success_threshold != 1:
            rec.note("health.success_threshold")
            readiness["successThreshold"] = health.success_threshold
        out["readinessProbe"] = readiness
        rec.note("health.action", health.action)
        if health.action == "restart":
            live = {**action, **timing}
            if health.initial_delay:
                rec.note("health.initial_delay")
                live["initialDelaySeconds"] = whole(health.initial_delay)
            out["livenessProbe"] = live
    return out


def quantity_memory(n: int) -> str:
    return binary_size(n, "i")


def quantity_cpu(cpus: float) -> str:
    milli = round(cpus * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def container(project: Project, name: str, kname: str, rec: Recorder) -> dict[str, Any]:
    spec = project.services[name]
    c: dict[str, Any] = {"name": kname, "image": project.image}
    rec.note("command")
    if spec.shell:
        rec.note("shell")
    if any("{replica}" in s for s in (*spec.command, *spec.env.values(), spec.cwd or "")):
        rec.note("{replica}")
    c["command"] = [replica_free(a) for a in spec.command]
    workdir, case = project.in_image(spec.cwd)
    rec.note("cwd", case, detail=workdir if case else "")
    c["workingDir"] = replica_free(workdir)
    if spec.env:
        rec.note("env")
        c["env"] = [{"name": k, "value": replica_free(v)} for k, v in spec.env.items()]
    sec: dict[str, Any] = {}
    for key, field in (("user", "runAsUser"), ("group", "runAsGroup")):
        value = getattr(spec, key)
        if value is None:
            continue
        if value.isdigit():
            rec.note(key, "numeric")
            sec[field] = int(value)
        else:
            rec.note(key, "name", detail=f'"{value}"')
    if spec.security.no_new_privileges:
        rec.note("security.no_new_privileges")
        sec["allowPrivilegeEscalation"] = False
    if spec.security.capabilities is not None:
        rec.note("security.capabilities")
        sec["capabilities"] = {"drop": ["ALL"], **({"add": list(spec.security.capabilities)}
                                                   if spec.security.capabilities else {})}
    if sec:
        c["securityContext"] = sec
    c.update(probes_for(spec, rec))
    c.update(lifecycle(spec, rec))
    if spec.kill != "tree":
        rec.note("kill", spec.kill)
    limits: dict[str, str] = {}
    if spec.limits.memory is not None:
        rec.note("limits.memory")
        limits["memory"] = quantity_memory(spec.limits.memory)
    if spec.limits.cpu is not None:
        rec.note("limits.cpu")
        limits["cpu"] = quantity_cpu(spec.limits.cpu)
    if limits:
        c["resources"] = {"limits": limits}
    return c


def lifecycle(spec: ServiceSpec, rec: Recorder) -> dict[str, Any]:
    """postStart / preStop: the post_start and pre_stop hooks, and a stop signal other than
    SIGTERM (sent by preStop, after the pre_stop hook, whose failure does not stop it)."""
    out: dict[str, Any] = {}
    post, pre = spec.hooks.post_start, spec.hooks.pre_stop
    if post is not None:
        rec.note("hooks.post_start", detail=shlex.join(post.command))
        out["postStart"] = {"exec": {"command": [replica_free(a) for a in post.command]}}
    pre_argv = [replica_free(a) for a in pre.command] if pre is not None else []
    if pre is not None:
        rec.note("hooks.pre_stop", detail=shlex.join(pre.command))
    sig = spec.stop_signal.removeprefix("SIG")
    if sig == "TERM":
        rec.note("stop_signal", "TERM")
        if pre_argv:
            out["preStop"] = {"exec": {"command": pre_argv}}
    else:
        rec.note("stop_signal", "other", detail=spec.stop_signal)
        kill = f"kill -s {sig} 1; while kill -0 1 2>/dev/null; do sleep 0.2; done"
        out["preStop"] = {"exec": {"command": ["/bin/sh", "-c", f'"$@"; {kill}', "pre_stop", *pre_argv]
                                   if pre_argv else ["/bin/sh", "-c", kill]}}
    return {"lifecycle": out} if out else {}


MISSED_DEADLINE = 300       # seconds: missed = "skip" (a run more than this late is not started)


def cron_of(spec: ServiceSpec, rec: Recorder) -> dict[str, Any] | None:
    """A CronJob's schedule fields for a `schedule`, or None (no schedule, or one Kubernetes
    cannot say: then the service is exported as a Job and the schedule reported)."""
    if spec.schedule is None:
        return None
    try:
        fields = five_fields(spec.schedule)
    except Untranslatable as e:
        rec.note("schedule", "untranslatable", detail=f"{spec.schedule}: {e}")
        rec.skip("timezone", "overlap", "missed")
        return None
    rec.note("schedule", detail=fields)
    out: dict[str, Any] = {"schedule": fields,
                           "concurrencyPolicy": "Replace" if spec.overlap == "replace" else "Forbid"}
    if spec.overlap != "skip":
        rec.note("overlap", spec.overlap)
    if spec.timezone:
        rec.note("timezone")
        out["timeZone"] = spec.timezone
    if spec.missed == "run":
        rec.note("missed")
    else:
        out["startingDeadlineSeconds"] = MISSED_DEADLINE
    return out


def labels(project: Project, kname: str) -> tuple[dict[str, str], dict[str, str]]:
    selector = {NAME: kname, PART_OF: project.name}
    return {**selector, MANAGED: "herder"}, selector


def build(project: Project, report: Report) -> list[dict[str, Any]]:
    kn = names(project)
    waiter = dns_label(f"{project.name}-herder-wait")
    waits: dict[str, set[str]] = {"deployments": set(), "jobs": set()}
    workloads: list[dict[str, Any]] = []
    for name, spec in project.services.items():
        rec = Recorder(MAPPING, report, name, spec)
        kname = kn[name]
        if kname != name:
            rec.note("name", "renamed", detail=kname)
        job = project.is_job(name) or spec.schedule is not None
        cron = cron_of(spec, rec)
        meta_labels, selector = labels(project, kname)
        pod: dict[str, Any] = {}
        inits = []
        for dep, cond in spec.depends_on.items():
            if dep not in project.services:
                continue
            kind = "job" if project.is_job(dep) else "deployment"
            waits["jobs" if kind == "job" else "deployments"].add(kn[dep])
            rec.note("depends_on", cond, detail=f"{dep} = {cond}")
            inits.append({"name": f"wait-{kn[dep]}", "image": project.image,
                          "command": ["python3", f"{WAIT_DIR}/wait.py", kind, kn[dep], cond],
                          "volumeMounts": [{"name": "herder-wait", "mountPath": WAIT_DIR, "readOnly": True}]})
        if inits:
            pod["serviceAccountName"] = waiter
            pod["volumes"] = [{"name": "herder-wait", "configMap": {"name": waiter}}]
            pod["initContainers"] = inits
        pod["containers"] = [container(project, name, kname, rec)]
        rec.note("stop_timeout")
        pod["terminationGracePeriodSeconds"] = whole(spec.stop_timeout)
        if job:
            policy = "Never" if spec.restart == "never" else "OnFailure"
            rec.note("restart", "never" if spec.restart == "never" else f"job-{spec.restart}")
            pod["restartPolicy"] = policy
            jspec: dict[str, Any] = {"backoffLimit": 0 if spec.restart == "never" else spec.start_limit.burst}
            if spec.restart != "never":
                rec.note("start_limit", "job")
            if spec.replicas != 1:
                rec.note("replicas", "job")
                jspec.update(completions=spec.replicas, parallelism=spec.replicas)
            if not spec.autostart and spec.schedule is None:
                rec.note("autostart", "job")
                jspec["suspend"] = True
            if spec.min_uptime != 1.0:
                rec.note("min_uptime", "job")
            jspec["template"] = {"metadata": {"labels": meta_labels}, "spec": pod}
            if cron is not None:
                workloads.append({"apiVersion": "batch/v1", "kind": "CronJob",
                                  "metadata": {"name": kname, "labels": meta_labels},
                                  "spec": {**cron, "jobTemplate": {"spec": jspec}}})
            else:
                workloads.append({"apiVersion": "batch/v1", "kind": "Job",
                                  "metadata": {"name": kname, "labels": meta_labels}, "spec": jspec})
        else:
            rec.note("restart", spec.restart)
            pod["restartPolicy"] = "Always"
            rec.note("start_limit", "deployment")
            rec.note("backoff")
            rec.note("replicas", "deployment")
            rec.note("rolling")
            dspec: dict[str, Any] = {"replicas": spec.replicas if spec.autostart else 0,
                                     "selector": {"matchLabels": selector},
                                     "strategy": {"type": "RollingUpdate",
                                                  "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}}
            if not spec.autostart:
                rec.note("autostart", "deployment")
            if spec.min_uptime != 1.0:
                rec.note("min_uptime", "deployment")
                dspec["minReadySeconds"] = math.ceil(spec.min_uptime)
            dspec["template"] = {"metadata": {"labels": meta_labels}, "spec": pod}
            workloads.append({"apiVersion": "v1", "kind": "Service",
                              "metadata": {"name": kname, "labels": meta_labels},
                              "spec": {"clusterIP": "None", "selector": selector}})
            workloads.append({"apiVersion": "apps/v1", "kind": "Deployment",
                              "metadata": {"name": kname, "labels": meta_labels}, "spec": dspec})
        rec.finish()
    return rbac(project, waiter, waits) + workloads


def rbac(project: Project, name: str, waits: dict[str, set[str]]) -> list[dict[str, Any]]:
    """The wait program, and a service account that may `get` exactly the objects it waits on."""
    if not any(waits.values()):
        return []
    meta = {"name": name, "labels": {PART_OF: project.name, MANAGED: "herder"}}
    rules = [{"apiGroups": [group], "resources": [res], "resourceNames": sorted(objs), "verbs": ["get"]}
             for group, res, objs in (("apps", "deployments", waits["deployments"]), ("batch", "jobs", waits["jobs"]))
             if objs]
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"wait.py": probes.WAIT + "\n"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name}]},
    ]


def header(project: Project) -> list[str]:
    return [f"# Generated by `herder export kubernetes` from {project.config}: edit that file and export again.",
            f"# Apply: kubectl apply -f {FILE}   (image: {project.image}; it needs python3 for the init waits)",
            "# What could not be carried is listed in export-report.txt."]
