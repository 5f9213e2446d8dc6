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
        return json.dumps(self.to_record(), indent=2, sort_keys=True) + "\n"
