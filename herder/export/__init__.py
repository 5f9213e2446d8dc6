"""herder.toml → Compose, Swarm, Kubernetes and systemd (`herder export`).

Each target is a module with a pure ``build(project, report)`` that turns the validated
config into the target's document(s) and records, through its declared mapping, what was
carried, approximated or left out. This package only adds the serialisation: YAML via
PyYAML (imported here, and this package is only imported by the export command), the
escapes each format needs, and the report file written next to the output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from herder.config import Config
from herder.errors import UsageError
from herder.export import compose, kubernetes, swarm, systemd
from herder.export import project as _project
from herder.export.report import Mapping, Report

TARGETS = ("compose", "swarm", "kubernetes", "systemd")
REPORT_FILE = "export-report.txt"
MAPPINGS: dict[str, Mapping] = {"compose": compose.MAPPING, "swarm": swarm.MAPPING,
                                "kubernetes": kubernetes.MAPPING, "systemd": systemd.MAPPING}


@dataclass(frozen=True)
class Export:
    """What one export produced: file name → text (the report included), and the report."""

    target: str
    files: dict[str, str]
    report: Report
    project: _project.Project


def export(config: Config, target: str, services: list[str] | tuple[str, ...] = (), *, image: str | None = None,
           project: str | None = None) -> Export:
    """Translate `config` (the named services and their dependencies) for `target`."""
    if target not in TARGETS:
        raise UsageError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    proj = _project.build(config, services, image, project)
    report = Report(target)
    files: dict[str, str]
    if target == "compose":
        files = {compose.FILE: _yaml(compose.header(proj), escape_compose(compose.build(proj, report)))}
    elif target == "swarm":
        files = {swarm.FILE: _yaml(swarm.header(proj), escape_compose(swarm.build(proj, report)))}
    elif target == "kubernetes":
        docs = [escape_kubernetes(d) for d in kubernetes.build(proj, report)]
        files = {kubernetes.FILE: _yaml(kubernetes.header(proj), *docs)}
    else:
        files = systemd.build(proj, report)
    what = ", ".join(files)
    files[REPORT_FILE] = report.render([
        f"herder export {target}: {proj.config} ({proj.base}) → {what}",
        f"services: {', '.join(proj.services)}",
    ]) + "\n"
    return Export(target, files, report, proj)


def _walk(value: Any, fix: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, dict):
        return {k: _walk(v, fix) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, fix) for v in value]
    return value


def escape_compose(doc: dict[str, Any]) -> dict[str, Any]:
    """Compose and `docker stack` interpolate $VAR in every value: a literal $ is $$."""
    return {k: _walk(v, lambda s: s.replace("$", "$$")) for k, v in doc.items()}


def escape_kubernetes(doc: dict[str, Any]) -> dict[str, Any]:
    """The kubelet expands $(VAR) in command, args and env values: a literal one is $$(VAR)."""
    def fix(c: dict[str, Any]) -> dict[str, Any]:
        out = dict(c)
        for key in ("command", "args"):
            if key in out:
                out[key] = [a.replace("$(", "$$(") for a in out[key]]
        if "env" in out:
            out["env"] = [{**e, "value": e["value"].replace("$(", "$$(")} for e in out["env"]]
        return out

    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec")
    if pod is None:
        return doc
    pod = {**pod, **{k: [fix(c) for c in pod[k]] for k in ("containers", "initContainers") if k in pod}}
    return {**doc, "spec": {**spec, "template": {**spec["template"], "spec": pod}}}


def _yaml(header: list[str], *docs: Any) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # no &id001 anchors: every value written out
            return True

    def text(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
        style = "|" if "\n" in data and not any(line != line.rstrip() for line in data.split("\n")) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, text)
    body = yaml.dump_all(docs, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=120,
                         allow_unicode=True, explicit_start=len(docs) > 1)
    return "\n".join(header) + "\n" + body
