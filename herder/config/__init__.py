"""Load herder.toml: parse, merge [defaults], validate everything, report every error.

`load()` either returns a complete, validated Config or raises ConfigError listing every
problem as `FILE:LINE: key.path: what is wrong; what is expected`. Nothing else in herder
looks at raw TOML.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from herder.config.alerts import Alerts, SupervisorHooks
from herder.config.lines import LineIndex
from herder.config.model import HerderSettings, ServiceSpec
from herder.config.schema import Problems, build, deep_merge, did_you_mean
from herder.errors import ConfigError

if sys.platform != "win32":   # account checks are POSIX only; Windows services get theirs from the SCM
    import grp
    import pwd

__all__ = ["Config", "HerderSettings", "ServiceSpec", "find_config", "load"]

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")
_TOP_KEYS = ("herder", "defaults", "services", "alerts", "hooks")


@dataclass(frozen=True)
class Config:
    """A validated configuration with every path made absolute."""

    path: Path
    herder: HerderSettings
    state_dir: Path
    log_dir: Path
    services: dict[str, ServiceSpec]
    alerts: Alerts = field(default_factory=Alerts)
    hooks: SupervisorHooks = field(default_factory=SupervisorHooks)


def find_config(explicit: str | None = None) -> Path:
    """-c FILE, else ./herder.toml, else $HERDER_CONFIG (interface.md)."""
    if explicit:
        return Path(explicit)
    local = Path("herder.toml")
    if local.exists() or not os.environ.get("HERDER_CONFIG"):
        return local
    return Path(os.environ["HERDER_CONFIG"])


def load(path: str | os.PathLike[str], *, check_accounts: bool = True) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{path}: cannot read the config: {e.strerror or e}"]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); expected a TOML file"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        line = m.group(1) if m else "?"
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        raise ConfigError([f"{path}:{line}: TOML syntax error: {msg}"]) from None
    return _Loader(path, text, raw, check_accounts).run()


class _Loader:
    def __init__(self, path: Path, text: str, raw: dict[str, Any], check_accounts: bool) -> None:
        self.path = path
        self.base = path.resolve().parent
        self.lines = LineIndex(text)
        self.raw = raw
        self.problems = Problems()
        self.check_accounts = check_accounts
        self.depends: dict[str, dict[str, str]] = {}  # of every declared service, valid or not

    def run(self) -> Config:
        for key in self.raw:
            if key not in _TOP_KEYS:
                self.problems.add((key,), f"unknown table{did_you_mean(key, _TOP_KEYS)}; expected one of "
                                          f"{', '.join(_TOP_KEYS)}")
        settings = build(HerderSettings, self.raw.get("herder", {}), ("herder",), self.problems)
        alerts = build(Alerts, self.raw.get("alerts", {}), ("alerts",), self.problems)
        hooks = build(SupervisorHooks, self.raw.get("hooks", {}), ("hooks",), self.problems)
        defaults = self.raw.get("defaults", {})
        self._check_defaults(defaults)
        services_raw = self.raw.get("services", {})
        services: dict[str, ServiceSpec] = {}
        if not isinstance(services_raw, Mapping):
            self.problems.add(("services",), "expected a table of [services.NAME] tables")
            services_raw = {}
        for name, svc_raw in services_raw.items():
            spec = self._service(name, defaults if isinstance(defaults, Mapping) else {}, svc_raw)
            if spec is not None:
                services[name] = spec
        self._check_dependencies()
        self._check_alerts(alerts, services_raw)
        # A system install (`herder install --system`) points HERDER_STATE_DIR at /var/lib/herder;
        # a state_dir written in the file still wins.
        herder_raw = self.raw.get("herder", {})
        explicit = isinstance(herder_raw, Mapping) and "state_dir" in herder_raw
        env_state = os.environ.get("HERDER_STATE_DIR")
        state_dir = self._abs(env_state if env_state and not explicit else settings.state_dir)
        log_dir = self._abs(settings.log_dir) if settings.log_dir else state_dir / "logs"
        if self.problems.items:
            raise ConfigError(self._render())
        return Config(self.path, settings, state_dir, log_dir, services, alerts, hooks)

    # -- pieces --------------------------------------------------------------------

    def _check_defaults(self, defaults: Any) -> None:
        scratch = Problems()
        build(ServiceSpec, defaults, ("defaults",), scratch)
        for path, msg in scratch.items:
            if not msg.startswith("missing key"):
                self.problems.add(path, msg)

    def _service(self, name: str, defaults: Mapping[str, Any], svc_raw: Any) -> ServiceSpec | None:
        here = ("services", name)
        if not _NAME_RE.match(name):
            self.problems.add(here, f'invalid service name "{name}"; expected letters, digits, "-" and "_"')
            return None
        if not isinstance(svc_raw, Mapping):
            self.problems.add(here, "expected a table")
            return None
        merged = deep_merge(defaults, svc_raw)

        def where(p: tuple[str, ...]) -> tuple[str, ...]:
            rest = p[2:]
            return p if _present(svc_raw, rest) or not _present(defaults, rest) else ("defaults",) + rest

        before = len(self.problems.items)
        spec = build(ServiceSpec, merged, here, self.problems, where)
        if isinstance(spec.depends_on, dict):
            self.depends[name] = spec.depends_on
        if len(self.problems.items) > before:
            return None
        changes: dict[str, Any] = {}
        if spec.schedule is not None and svc_raw.get("restart") == "always":
            self.problems.add(here + ("restart",), 'a scheduled job ends by itself; expected restart = "never" '
                              '(the default with a schedule) or "on-failure" (retry a failed run)')
            return None
        if spec.schedule is not None and "restart" not in svc_raw:
            changes["restart"] = "never"   # a job: each run ends by itself, whatever [defaults] says
        if spec.shell:
            cmd = merged.get("command")
            if not isinstance(cmd, str):
                self.problems.add(where(here + ("command",)),
                                  "shell = true needs the command as one string; expected a string")
                return None
            changes["command"] = ("/bin/sh", "-c", cmd)
        if spec.cwd is not None:
            changes["cwd"] = str(self._abs(spec.cwd))
        env = {}
        if spec.env_file is not None:
            env_path = self._abs(spec.env_file)
            try:
                from dotenv import dotenv_values
                if not env_path.is_file():
                    raise FileNotFoundError(env_path)
                env = {k: v or "" for k, v in dotenv_values(env_path).items()}
            except OSError:
                self.problems.add(where(here + ("env_file",)), f"cannot read {env_path}; expected a dotenv file")
                return None
            changes["env_file"] = str(env_path)
        if env:
            changes["env"] = {**env, **spec.env}
        final = dataclasses.replace(spec, **changes) if changes else spec
        self._check_accounts(final, where, here)
        self._check_machine(final, where, here)
        return final

    def _check_accounts(self, spec: ServiceSpec, where: Any, here: tuple[str, ...]) -> None:
        if not self.check_accounts or (spec.user is None and spec.group is None):
            return
        if sys.platform == "win32":
            key = "user" if spec.user is not None else "group"
            self.problems.add(where(here + (key,)), f"herder up does not switch accounts on Windows; expected no {key} "
                              "(a Windows service gets its account from "
                              "`herder service install NAME --account ACCOUNT`)")
            return
        if os.geteuid() != 0:
            key = "user" if spec.user is not None else "group"
            self.problems.add(where(here + (key,)), f"herder runs as uid {os.geteuid()}, not root, so it cannot "
                              f"switch accounts; expected no {key} (or run herder as root)")
            return
        if spec.user is not None:
            try:
                pwd.getpwnam(spec.user)
            except KeyError:
                self.problems.add(where(here + ("user",)),
                                  f'no user "{spec.user}" on this machine; expected an existing account')
        if spec.group is not None:
            try:
                grp.getgrnam(spec.group)
            except KeyError:
                self.problems.add(where(here + ("group",)),
                                  f'no group "{spec.group}" on this machine; expected an existing group')

    def _check_machine(self, spec: ServiceSpec, where: Any, here: tuple[str, ...]) -> None:
        """What this machine must allow for [security] (herder check says it before a start fails)."""
        if not self.check_accounts or not spec.security.any:
            return
        from herder.process.privilege import problems

        for key, msg in problems(spec.security, spec.user is not None or spec.group is not None):
            self.problems.add(where(here + ("security", key)), msg)
        if spec.security.private_tmp and "{replica}" not in (spec.cwd or ""):
            from herder.process.privilege import PRIVATE_TMP

            cwd = os.path.realpath(spec.cwd or os.getcwd())
            hidden = next((d for d in PRIVATE_TMP if cwd == d or cwd.startswith(d + "/")), None)
            if hidden:
                self.problems.add(where(here + ("security", "private_tmp")),
                                  f"the working directory {cwd} is under {hidden}, which private_tmp replaces with "
                                  "an empty tmpfs, so the service would not find it; expected a cwd elsewhere, "
                                  "or no private_tmp")

    def _check_alerts(self, alerts: Alerts, services_raw: Any) -> None:
        names = set(services_raw) if isinstance(services_raw, Mapping) else set()
        for s in alerts.services:
            if s not in names:
                self.problems.add(("alerts", "services"), f'unknown service "{s}"; expected one of '
                                  f'{", ".join(sorted(names)) or "none"}')
        if self.check_accounts and alerts.targets:
            from herder.alerts.targets import problems

            for msg in problems(alerts.targets):
                self.problems.add(("alerts", "targets"), msg)

    def _check_dependencies(self) -> None:
        from herder.core.graph import find_cycle

        names = set(self.depends)
        for name, deps in self.depends.items():
            for dep in deps:
                if dep == name:
                    self.problems.add(("services", name, "depends_on", dep), "a service cannot depend on itself")
                elif dep not in names:
                    known = ", ".join(sorted(names)) or "none"
                    self.problems.add(("services", name, "depends_on", dep),
                                      f'unknown service "{dep}"; expected one of {known}')
        graph = {n: [d for d in deps if d in names and d != n] for n, deps in self.depends.items()}
        cycle = find_cycle(graph)
        if cycle:
            self.problems.add(("services", cycle[0], "depends_on"),
                              "dependency cycle " + " -> ".join(cycle + [cycle[0]]) + "; expected no cycles")

    def _abs(self, p: str) -> Path:
        path = Path(os.path.expanduser(p))
        return path if path.is_absolute() else self.base / path

    def _render(self) -> list[str]:
        out = []
        for path, msg in self.problems.items:
            line = self.lines.line_of(path)
            loc = f"{self.path}:{line}" if line else f"{self.path}"
            out.append((line or 0, f"{loc}: {'.'.join(path)}: {msg}"))
        return [text for _, text in sorted(out, key=lambda x: x[0])]  # file order; stable within a line


def _present(raw: Any, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(raw, Mapping) or key not in raw:
            return False
        raw = raw[key]
    return True
