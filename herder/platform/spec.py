"""What an installer needs to know about one native service.

The program part is the supervisor's own :class:`ServiceSpec` (command, env, cwd,
user, restart, backoff, start limit, stop signal and timeout, dependencies): the same
dataclass, parsed by the same schema, so a unit written by ``herder service install``
and an instance run by ``herder up`` cannot disagree about what "on-failure" or "10s"
means. The rest (scope, start type, account, hardening) only exists for installs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from herder.config.model import ServiceSpec
from herder.config.schema import rebuild

SCOPES = ("system", "user")
START_TYPES = ("auto", "delayed", "manual", "disabled")
#: supervisor: herder itself (`herder install`); program: one command (`herder service install`)
KINDS = ("supervisor", "program")
MARKER = "herder-managed"


@dataclass(frozen=True)
class InstallSpec:
    """One native service, as every manager module renders it."""

    name: str
    service: ServiceSpec
    kind: str = "program"
    scope: str = "system"
    description: str = ""
    notify: bool = False             # Type=notify: herder itself, herder.service programs
    hardening: bool = True           # systemd sandboxing (system scope)
    start: str = "auto"              # auto | delayed | manual | disabled
    # Windows: LocalService | NetworkService | LocalSystem | NT SERVICE\NAME | DOMAIN\user
    account: str | None = None
    password: str | None = field(default=None, repr=False)   # Windows user accounts only; never recorded
    log_dir: str | None = None       # stdout/stderr files (default: the manager's journal / its log dir)
    state_dir: str | None = None     # supervisor kind: where herder keeps its state (HERDER_STATE_DIR)
    watchdog: float | None = None    # supervisor kind: WatchdogSec (herder pings at half of it)

    @property
    def depends(self) -> tuple[str, ...]:
        return tuple(self.service.depends_on)

    @property
    def title(self) -> str:
        return self.description or (f"herder supervisor ({self.service.command[-1]})" if self.kind == "supervisor"
                                    else f"{self.name} (installed by herder)")

    # -- records: the settings kept between installs (upgrades keep them) ---------------

    def to_record(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("password")
        return data

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> InstallSpec:
        d = dict(data)
        spec = rebuild(ServiceSpec, d.pop("service"))
        mine = {f.name for f in dataclasses.fields(cls)}
        return cls(service=spec, **{k: v for k, v in d.items() if k in mine and k != "service"})

    def dumps(self) -> str:
        """The record as written: only what differs from herder's defaults (plus name, kind
        and scope), so the file (and every `--dry-run`) shows the settings that were chosen
        in a dozen lines instead of 130 lines of defaults. `from_record` fills the rest back
        from the same dataclasses; a default that changes in a later herder then applies."""
        data = _without_defaults(InstallSpec, self.to_record(), keep=("name", "kind", "scope", "service"))
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return dataclasses.asdict(f.default_factory()) if f.metadata.get("table") else f.default_factory()
    return dataclasses.MISSING


def _without_defaults(cls: type, data: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """`data` (dataclasses.asdict of a `cls`) without the keys that hold their default; nested
    schema tables likewise, and left out when nothing in them differs."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        sub = ServiceSpec if f.name == "service" and cls is InstallSpec else f.metadata.get("table")
        if sub is not None and isinstance(value, dict):
            value = _without_defaults(sub, value)
            if value or f.name in keep:
                out[f.name] = value
        elif f.name in keep or value != _default(f):
            out[f.name] = value
    return out
