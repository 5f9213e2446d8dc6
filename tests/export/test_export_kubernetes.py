"""Kubernetes exports against the real schemas (kubernetes-validate --strict, 1.30 and 1.37)
and the semantic checks a schema cannot make (export_kube_semantics.py).

No cluster can run on this machine (platform-testing.md, section D): the schemas and the
semantic checks are the proof, and the checks themselves are tested on manifests that
break each rule.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from export_cases import exported
from export_kube_semantics import problems

from herder.export import kubernetes

VERSIONS = ("1.30.0", "1.37.0")


def docs(config: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(exported(config, "kubernetes").files[kubernetes.FILE]) if d]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("config", ["shop", "full"])
def test_schema_strict(config: str, version: str) -> None:
    for doc in docs(config):
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("config", ["shop", "full"])
def test_semantics(config: str) -> None:
    assert problems(docs(config)) == []


def test_the_command_line_validator_agrees(tmp_path: Path) -> None:
    exe = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    assert exe, "kubernetes-validate is in the test extras"
    f = tmp_path / "k.yaml"
    f.write_text(exported("full", "kubernetes").files[kubernetes.FILE])
    for version in VERSIONS:
        res = subprocess.run([exe, "--strict", "-k", version, str(f)], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "passed for resource deployment/api" in res.stdout + res.stderr


def test_the_shop_maps_as_documented() -> None:
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs("shop")}
    assert ("Job", "migrate") in by and ("Deployment", "migrate") not in by
    web = by[("Deployment", "web")]["spec"]
    assert web["replicas"] == 2
    pod = web["template"]["spec"]
    assert [c["command"][2:] for c in pod["initContainers"]] == [["deployment", "db", "healthy"],
                                                                  ["job", "migrate", "completed"]]
    (c,) = pod["containers"]
    assert c["livenessProbe"]["exec"]["command"] == ["python3", "app.py", "check"]
    assert c["resources"]["limits"] == {"memory": "128Mi", "cpu": "500m"}
    assert pod["terminationGracePeriodSeconds"] == 3
    worker = by[("Deployment", "worker")]["spec"]["template"]["spec"]["containers"][0]
    assert worker["lifecycle"]["preStop"]["exec"]["command"][2].startswith("kill -s INT 1")
    db = by[("Deployment", "db")]["spec"]["template"]["spec"]["containers"][0]
    assert db["startupProbe"]["httpGet"] == {"path": "/ready", "port": 8000}
    assert db["startupProbe"]["failureThreshold"] * db["startupProbe"]["periodSeconds"] >= 30


def test_literal_dollars_survive_the_kubelet() -> None:
    api = next(d for d in docs("full") if d["kind"] == "Deployment" and d["metadata"]["name"] == "api")
    env = {e["name"]: e["value"] for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PRICE"] == "$5 $$(HOME) 100%"       # $(HOME) would be expanded by the kubelet


def _break(doc_docs: list[dict[str, Any]], kind: str, name: str, fn: Any) -> list[dict[str, Any]]:
    out = copy.deepcopy(doc_docs)
    fn(next(d for d in out if d["kind"] == kind and d["metadata"]["name"] == name))
    return out


@pytest.mark.parametrize(("what", "kind", "name", "fn", "found"), [
    ("name", "Deployment", "web", lambda d: d["metadata"].update(name="Web_Bad"), "not a DNS-1123 label"),
    ("selector", "Deployment", "web", lambda d: d["spec"]["template"]["metadata"].update(labels={"a": "b"}),
     "does not match the template's labels"),
    ("job policy", "Job", "migrate", lambda d: d["spec"]["template"]["spec"].update(restartPolicy="Always"),
     "must have restartPolicy Never or OnFailure"),
    ("probe port", "Deployment", "db",
     lambda d: d["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["httpGet"].update(port="http"),
     "names port 'http'"),
    ("liveness success", "Deployment", "db",
     lambda d: d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"].update(successThreshold=2),
     "successThreshold 1"),
    ("wait target", "Deployment", "web",
     lambda d: d["spec"]["template"]["spec"]["initContainers"][0]["command"].__setitem__(3, "nodb"),
     "not in this export"),
    ("wait kind", "Deployment", "web",
     lambda d: d["spec"]["template"]["spec"]["initContainers"][0]["command"].__setitem__(4, "completed"),
     "does not fit a deployment"),
    ("role", "Role", "shop-herder-wait", lambda d: d["rules"].pop(0), "may not get deployment db"),
    ("account", "Deployment", "web", lambda d: d["spec"]["template"]["spec"].pop("serviceAccountName"),
     "no service account"),
])
def test_semantic_checks_catch(what: str, kind: str, name: str, fn: Any, found: str) -> None:
    broken = problems(_break(docs("shop"), kind, name, fn))
    assert any(found in p for p in broken), f"{what}: {broken}"


def test_security_and_lifecycle_hooks_map_to_the_container() -> None:
    web = next(d for d in docs("full") if d["kind"] == "Deployment" and d["metadata"]["name"] == "web")
    c = web["spec"]["template"]["spec"]["containers"][0]
    assert c["securityContext"] == {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}
    assert c["lifecycle"] == {"postStart": {"exec": {"command": ["./bin/cache", "--lb-add"]}},
                              "preStop": {"exec": {"command": ["./bin/cache", "--drain"]}}}
    notes = {n.key: n.status for n in exported("full", "kubernetes").report.of("web")}
    assert notes["hooks.pre_stop"] == "approximated" and notes["security.capabilities"] == "carried"
    assert notes["hooks.pre_start"] == notes["security.private_tmp"] == "not carried"


def test_a_schedule_is_a_cronjob() -> None:
    cron = next(d for d in docs("full") if d["kind"] == "CronJob" and d["metadata"]["name"] == "nightly")
    spec = cron["spec"]
    assert spec["schedule"] == "30 2 * * *" and spec["timeZone"] == "Europe/Berlin"
    assert spec["concurrencyPolicy"] == "Forbid" and "startingDeadlineSeconds" not in spec     # missed = "run"
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert not any(d["kind"] == "Job" and d["metadata"]["name"] == "nightly" for d in docs("full"))
    notes = {n.key: n for n in exported("full", "kubernetes").report.of("nightly")}
    assert notes["overlap"].status == "approximated" and notes["missed"].status == "carried"


def test_cron_as_five_fields() -> None:
    from herder.export.oncalendar import Untranslatable, five_fields

    assert five_fields("*/15 9-17 * jan-mar mon-fri") == "0,15,30,45 9,10,11,12,13,14,15,16,17 * 1,2,3 1,2,3,4,5"
    assert five_fields("@daily") == "0 0 * * *" and five_fields("0 0 1 * mon") == "0 0 1 * 1"   # either day
    for bad in ("*/5 * * * * *", "0 0 L * *"):
        with pytest.raises(Untranslatable):
            five_fields(bad)
