"""The services an export translates, and the facts every target asks about them.

A :class:`Project` is the validated config narrowed to the services named on the command
line plus everything they depend on (as `herder up SERVICE…` does), in start order. It
answers the questions each target needs and that herder's config does not state directly:
is a service a one-shot job, which services wait for it, where its working directory lies
in an image that holds the project directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from herder.config import Config, ServiceSpec
from herder.core.graph import closure, levels
from herder.errors import UsageError

#: Where images hold the project directory (the config file's folder): docs/export.md.
APP_DIR = "/app"
REPLICA = "{replica}"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


class ExportError(UsageError):
    """The config cannot be expressed in the target at all (exit 2, nothing written)."""


@dataclass(frozen=True)
class Project:
    """The selected services of one config, in start order."""

    name: str                      # project name: units' prefix, Kubernetes part-of label
    base: str                      # the config file's folder (absolute)
    services: dict[str, ServiceSpec]
    image: str
    config: str = "herder.toml"    # the config file's name, for headers
    app_dir: str = APP_DIR

    def dependents(self, name: str) -> dict[str, str]:
        """Services that depend on `name`, with their condition."""
        return {other: spec.depends_on[name] for other, spec in self.services.items() if name in spec.depends_on}

    def is_job(self, name: str) -> bool:
        """A one-shot: restart = "never", or something waits for it to complete."""
        return self.services[name].restart == "never" or "completed" in self.dependents(name).values()

    def uses_replica(self, name: str) -> bool:
        spec = self.services[name]
        return any(REPLICA in s for s in (*spec.command, *spec.env.values(), spec.cwd or ""))

    def in_image(self, path: str | None) -> tuple[str, str]:
        """(path inside the image, case): "" under the project dir, "outside", or "unset"."""
        if path is None:
            return self.app_dir, "unset"
        p, base = PurePosixPath(path), PurePosixPath(self.base)
        if p == base or base in p.parents:
            return str(PurePosixPath(self.app_dir) / p.relative_to(base)), ""
        return path, "outside"


def select(config: Config, names: list[str] | tuple[str, ...] = ()) -> dict[str, ServiceSpec]:
    """The named services and what they depend on (all when none named), in start order."""
    graph = {n: list(s.depends_on) for n, s in config.services.items()}
    unknown = [n for n in names if n not in graph]
    if unknown:
        known = ", ".join(sorted(graph)) or "none"
        raise UsageError(f"unknown service(s) {', '.join(unknown)}; known: {known}")
    keep = closure(graph, names) if names else set(graph)
    order = [n for level in levels({n: graph[n] for n in keep}) for n in level]
    return {n: config.services[n] for n in order}


def project_name(config: Config, explicit: str | None = None) -> str:
    """--project, else the config folder's name, made a DNS label ("My_App" → "my-app")."""
    raw = explicit if explicit is not None else config.path.resolve().parent.name
    name = dns_label(raw)
    if not name:
        raise UsageError(f'--project "{raw}": expected letters and digits, such as "shop"')
    return name


def dns_label(raw: str, limit: int = 63) -> str:
    """Lower case, "_" and "." → "-", other characters dropped, trimmed to a valid label."""
    s = re.sub(r"[^a-z0-9-]", "", re.sub(r"[_.\s]", "-", raw.lower()))
    s = s[:limit].strip("-")
    return s if _DNS_LABEL.match(s) else ""


def build(config: Config, names: list[str] | tuple[str, ...] = (), image: str | None = None,
          project: str | None = None) -> Project:
    services = select(config, names)
    pname = project_name(config, project)
    return Project(pname, str(config.path.resolve().parent), services, image or f"{pname}:latest",
                   config.path.name)


def replica_free(text: str, value: str = "0") -> str:
    return text.replace(REPLICA, value)
