"""What the Kubernetes schemas do not check, checked on exported manifests.

kubernetes-validate --strict catches wrong fields and types; these are the rules the API
server (or the workload) would enforce that a JSON schema cannot express, found while
checking what runs here (platform-testing.md, section D): names are DNS-1123 labels
(Services DNS-1035), a Deployment's selector matches its template's labels, a Job's pods
restart Never/OnFailure and a Deployment's Always, probe ports exist, a livenessProbe or
startupProbe has successThreshold 1, container names are unique in a pod, and every init
container wait names an object of this export that the pod's service account may get.
"""

from __future__ import annotations

import re
from typing import Any

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?\Z")
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*\Z")


def problems(docs: list[dict[str, Any]]) -> list[str]:
    """Every semantic problem of one export (empty: none)."""
    out: list[str] = []
    objects = {(d["kind"], d["metadata"]["name"]) for d in docs}
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    bindings = {d["metadata"]["name"]: d for d in docs if d["kind"] == "RoleBinding"}
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        where = f"{kind}/{name}"
        rule = DNS1035_LABEL if kind == "Service" else DNS1123_LABEL
        if not rule.match(name) or len(name) > 63:
            out.append(f"{where}: name is not a DNS-{'1035' if kind == 'Service' else '1123'} label")
        for key, value in doc["metadata"].get("labels", {}).items():
            if len(value) > 63 or (value and not re.match(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z", value)):
                out.append(f"{where}: label {key}={value!r} is not a valid label value")
        if kind in ("Deployment", "Job"):
            out += _workload(doc, where, objects, roles, bindings)
        if kind == "Service":
            selector = doc["spec"].get("selector", {})
            if not any(d["kind"] == "Deployment" and _matches(selector, d["spec"]["template"]["metadata"]["labels"])
                       for d in docs):
                out.append(f"{where}: selector {selector} matches no pod template of this export")
        if kind == "RoleBinding":
            ref = doc["roleRef"]["name"]
            if ("Role", ref) not in objects:
                out.append(f"{where}: roleRef {ref} is not in this export")
    return out


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _workload(doc: dict[str, Any], where: str, objects: set[tuple[str, str]], roles: dict[str, Any],
              bindings: dict[str, Any]) -> list[str]:
    out: list[str] = []
    spec, kind = doc["spec"], doc["kind"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    if kind == "Deployment":
        if not _matches(spec["selector"]["matchLabels"], labels):
            out.append(f"{where}: selector {spec['selector']['matchLabels']} does not match the template's labels")
        if pod.get("restartPolicy", "Always") != "Always":
            out.append(f"{where}: a Deployment's pods must have restartPolicy Always")
    elif pod.get("restartPolicy") not in ("Never", "OnFailure"):
        out.append(f"{where}: a Job's pods must have restartPolicy Never or OnFailure")
    containers = pod.get("initContainers", []) + pod["containers"]
    names = [c["name"] for c in containers]
    if len(set(names)) != len(names):
        out.append(f"{where}: container names repeat: {names}")
    for c in containers:
        cw = f"{where} container {c['name']}"
        if not DNS1123_LABEL.match(c["name"]) or len(c["name"]) > 63:
            out.append(f"{cw}: name is not a DNS-1123 label")
        for e in c.get("env", []):
            if not ENV_NAME.match(e["name"]):
                out.append(f"{cw}: env name {e['name']!r} is not valid")
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c.get(probe)
            if p is None:
                continue
            action = p.get("httpGet") or p.get("tcpSocket")
            if action is not None:
                port = action["port"]
                if isinstance(port, str) and port not in ports:
                    out.append(f"{cw}: {probe} names port {port!r}, which the container does not declare")
                if isinstance(port, int) and not 0 < port < 65536:
                    out.append(f"{cw}: {probe} port {port} is out of range")
            elif "exec" not in p or not p["exec"].get("command"):
                out.append(f"{cw}: {probe} has no action")
            if probe != "readinessProbe" and p.get("successThreshold", 1) != 1:
                out.append(f"{cw}: {probe} must have successThreshold 1")
    for c in pod.get("initContainers", []):
        out += _wait(c, where, pod, objects, roles, bindings)
    return out


def _wait(c: dict[str, Any], where: str, pod: dict[str, Any], objects: set[tuple[str, str]],
          roles: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    """An init wait: `python3 /herder-wait/wait.py KIND NAME CONDITION`, allowed by the pod's Role."""
    cmd = c["command"]
    cw = f"{where} init container {c['name']}"
    if len(cmd) != 5 or cmd[0] != "python3" or not cmd[1].endswith("/wait.py"):
        return [f"{cw}: not a herder wait: {cmd}"]
    kind, name, cond = cmd[2:5]
    out = []
    target = ("Job" if kind == "job" else "Deployment", name)
    if target not in objects:
        out.append(f"{cw}: waits for {target[0]}/{name}, which is not in this export")
    if cond not in ("started", "ready", "healthy", "completed") or (cond == "completed" and kind != "job"):
        out.append(f"{cw}: condition {cond} does not fit a {kind}")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volume = mounts.get(cmd[1].rsplit("/", 1)[0])
    maps = {v["name"]: v.get("configMap", {}).get("name") for v in pod.get("volumes", [])}
    if volume is None or maps.get(volume) is None or ("ConfigMap", maps[volume]) not in objects:
        out.append(f"{cw}: {cmd[1]} does not come from a ConfigMap of this export")
    account = pod.get("serviceAccountName")
    if account is None or ("ServiceAccount", account) not in objects:
        out.append(f"{cw}: the pod has no service account of this export")
        return out
    granted = False
    for binding in bindings.values():
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == account for s in binding["subjects"]):
            continue
        role = roles.get(binding["roleRef"]["name"])
        resource = "jobs" if kind == "job" else "deployments"
        for rule in (role or {}).get("rules", []):
            if resource in rule["resources"] and "get" in rule["verbs"] and name in rule.get("resourceNames", [name]):
                granted = True
    if not granted:
        out.append(f"{cw}: service account {account} may not get {kind} {name}")
    return out
