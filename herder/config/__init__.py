"""Load herder.toml: parse, merge [defaults], validate everything, report every error.

`load()` either returns a complete, validated Config or raises ConfigError listing every
problem as `FILE:LINE: key.path: what is wrong; what is expected`. Nothing else in herder
looks at raw TOML.

Any file content gets such a message, never a traceback or a hang (architecture.md rule
17): only regular files are read (a FIFO or /dev/zero is refused before reading), at most
MAX_CONFIG bytes, a UTF-8 byte order mark is allowed, nesting deeper than MAX_DEPTH and
NUL characters in any string are refused, and values that would make every start fail
are checked against this machine (herder.config.machine).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import stat
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

__all__ = ["Config", "HerderSettings", "ServiceSpec", "find_config", "from_record", "load", "to_record"]

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")
_ENV_KEY = re.compile(r"[^=\0]+\Z")
_TOP_KEYS = ("herder", "defaults", "services", "alerts", "hooks")
MAX_CONFIG = 4 * 1024 * 1024    # bytes; a real herder.toml is a few KB
MAX_DEPTH = 16                  # tables/arrays within each other; herder's own go 4 deep
SUN_PATH_MAX = 107              # bytes in a Unix socket's path (sun_path is 108 with the NUL)


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
    warnings: tuple[str, ...] = ()     # FILE:LINE: key: what may fail at run time


def to_record(cfg: Config) -> dict[str, Any]:
    """The validated config as JSON data (what a decision process started after a crash
    runs with: the config that was running, not whatever the file says by then)."""
    return {"path": str(cfg.path), "herder": dataclasses.asdict(cfg.herder), "state_dir": str(cfg.state_dir),
            "log_dir": str(cfg.log_dir), "services": {n: dataclasses.asdict(s) for n, s in cfg.services.items()},
            "alerts": dataclasses.asdict(cfg.alerts), "hooks": dataclasses.asdict(cfg.hooks)}


def from_record(raw: Mapping[str, Any]) -> Config:
    """Inverse of to_record (the record was validated when it was loaded)."""
    from herder.config.schema import rebuild

    return Config(Path(raw["path"]), rebuild(HerderSettings, raw["herder"]), Path(raw["state_dir"]),
                  Path(raw["log_dir"]), {str(n): rebuild(ServiceSpec, s) for n, s in raw["services"].items()},
                  rebuild(Alerts, raw.get("alerts") or {}), rebuild(SupervisorHooks, raw.get("hooks") or {}))


def find_config(explicit: str | None = None) -> Path:
    """-c FILE, else ./herder.toml, else $HERDER_CONFIG (interface.md)."""
    if explicit:
        return Path(explicit)
    local = Path("herder.toml")
    if local.exists() or not os.environ.get("HERDER_CONFIG"):
        return local
    return Path(os.environ["HERDER_CONFIG"])


def read_text(path: Path, what: str = "config") -> str:
    """The text of a config file, or ConfigError: not a regular file (without blocking on
    a FIFO), too big, not UTF-8 (with the line). A UTF-8 byte order mark is dropped."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ConfigError([f"{path}: cannot read the {what}: {e.strerror or e}"]) from None
    except ValueError:     # a NUL in the path (an API body, a fuzzed env_file)
        raise ConfigError([f"{str(path)!r}: not a usable path (it contains a NUL character); "
                           "expected a file"]) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a file")
            raise ConfigError([f"{path}: is {kind}, not a regular file; expected a TOML file"])
        data = b""
        while len(data) <= MAX_CONFIG and (chunk := os.read(fd, 1 << 20)):
            data += chunk
    except OSError as e:
        if e.errno == errno.EISDIR:
            raise ConfigError([f"{path}: is a directory, not a regular file; expected a TOML file"]) from None
        raise ConfigError([f"{path}: cannot read the {what}: {e.strerror or e}"]) from None
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG:
        raise ConfigError([f"{path}: is over {MAX_CONFIG // (1024 * 1024)} MB; expected a TOML file of a sane size"])
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError([f"{path}:{line}: not UTF-8 text ({e.reason} at byte {e.start}); expected a TOML file "
                           "in UTF-8"]) from None


def _too_deep_line(text: str) -> int:
    """The line where brackets first nest deeper than MAX_DEPTH (a rough scan, for the message)."""
    depth = 0
    for n, line in enumerate(text.splitlines(), start=1):
        for ch in line:
            depth += ch in "[{"
            depth -= ch in "]}"
            if depth > MAX_DEPTH:
                return n
    return 1


def load(path: str | os.PathLike[str], *, check_accounts: bool = True, check_programs: bool | None = None) -> Config:
    """The validated config; ConfigError lists every problem. `check_accounts=False` skips
    the checks against this machine (accounts, and programs and folders too unless
    `check_programs` says otherwise: a translated config checked for its accounts, say)."""
    path = Path(path)
    text = read_text(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        line = m.group(1) if m else "?"
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        raise ConfigError([f"{path}:{line}: TOML syntax error: {msg}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}:{_too_deep_line(text)}: nested too deeply; expected tables and lists "
                           f"at most {MAX_DEPTH} levels deep"]) from None
    return _Loader(path, text, raw, check_accounts, check_accounts if check_programs is None else check_programs).run()


def _scan(raw: dict[str, Any], problems: Problems) -> bool:
    """Iteratively (no recursion): NUL characters anywhere, and nesting depth. False if too deep."""
    todo: list[tuple[tuple[str, ...], Any]] = [((), raw)]
    while todo:
        path, value = todo.pop()
        if len(path) > MAX_DEPTH:
            problems.add(path[:3], f"nested too deeply; expected tables and lists at most {MAX_DEPTH} levels deep")
            return False
        if isinstance(value, dict):
            for k in value:
                if "\0" in k:
                    problems.add((*path, k.replace("\x00", "\\0")), "a key contains a NUL character; expected text")
            todo.extend(reversed([((*path, k), v) for k, v in value.items()]))   # in document order
        elif isinstance(value, list):
            todo.extend(reversed([((*path, str(i)), v) for i, v in enumerate(value)]))
        elif isinstance(value, str) and "\0" in value:
            problems.add(path, "contains a NUL character (\\u0000), which no program, path or account name may "
                         "hold; expected text without it")
    return True


class _Loader:
    def __init__(self, path: Path, text: str, raw: dict[str, Any], check_accounts: bool, check_programs: bool) -> None:
        self.path = path
        self.base = path.resolve().parent
        self.lines = LineIndex(text)
        self.raw = raw
        self.problems = Problems()
        self.warnings = Problems()
        self.check_accounts = check_accounts
        self.check_programs = check_programs
        self.depends: dict[str, dict[str, str]] = {}  # of every declared service, valid or not

    def run(self) -> Config:
        if not _scan(self.raw, self.problems) or self.problems.items:
            raise ConfigError(self._render())
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
        too_long = socket_too_long(state_dir)
        if too_long:   # a warning here (a config may be checked or converted elsewhere); `up` refuses it
            self.warnings.add(("herder", "state_dir"), too_long)
        if self.problems.items:
            raise ConfigError(self._render())
        warnings = tuple(self._render(self.warnings, "warning: "))
        return Config(self.path, settings, state_dir, log_dir, services, alerts=alerts, hooks=hooks,
                      warnings=warnings)

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
            return p if _present(svc_raw, rest) or not _present(defaults, rest) else ("defaults", *rest)

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
                self.problems.add(where((*here, "command")),
                                  "shell = true needs the command as one string; expected a string")
                return None
            changes["command"] = ("/bin/sh", "-c", cmd)
        if spec.cwd is not None:
            changes["cwd"] = str(self._abs(spec.cwd))
        env = {}
        if spec.env_file is not None:
            env_path = self._abs(spec.env_file)
            try:
                import io

                from dotenv import dotenv_values

                text = read_text(env_path, "env_file")
                env = {k: v or "" for k, v in dotenv_values(stream=io.StringIO(text)).items()}
            except ConfigError as e:
                self.problems.add(where((*here, "env_file")),
                                  e.problems[0].split(": ", 1)[-1] + "; expected a dotenv file")
                return None
            bad = next((k for k, v in env.items() if not _ENV_KEY.match(k) or "\0" in v), None)
            if bad is not None:
                self.problems.add(where((*here, "env_file")), f"{env_path}: {bad!r} is not a usable NAME=value "
                                  "(a name of letters, digits and _, a value without NUL); expected a dotenv file")
                return None
            changes["env_file"] = str(env_path)
        if env:
            changes["env"] = {**env, **spec.env}
        before = len(self.problems.items)
        self._check_accounts(spec, where, here)
        spec = dataclasses.replace(spec, **changes) if changes else spec
        self._check_machine(spec, where, here)
        if self.check_programs and len(self.problems.items) == before:
            from herder.config.machine import check_service

            check_service(spec, here, where, self.problems.add, self.warnings.add)
        return spec

    def _check_accounts(self, spec: ServiceSpec, where: Any, here: tuple[str, ...]) -> None:
        if not self.check_accounts or (spec.user is None and spec.group is None):
            return
        if sys.platform == "win32":
            key = "user" if spec.user is not None else "group"
            self.problems.add(where((*here, key)), f"herder up does not switch accounts on Windows; expected no {key} "
                              "(a Windows service gets its account from "
                              "`herder service install NAME --account ACCOUNT`)")
            return
        if os.geteuid() != 0:
            key = "user" if spec.user is not None else "group"
            self.problems.add(where((*here, key)), f"herder runs as uid {os.geteuid()}, not root, so it cannot "
                              f"switch accounts; expected no {key} (or run herder as root)")
            return
        if spec.user is not None:
            try:
                pwd.getpwnam(spec.user)
            except KeyError:
                self.problems.add(where((*here, "user")),
                                  f'no user "{spec.user}" on this machine; expected an existing account')
        if spec.group is not None:
            try:
                grp.getgrnam(spec.group)
            except KeyError:
                self.problems.add(where((*here, "group")),
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
                              "dependency cycle " + " -> ".join([*cycle, cycle[0]]) + "; expected no cycles")

    def _abs(self, p: str) -> Path:
        path = Path(os.path.expanduser(p))
        return path if path.is_absolute() else self.base / path

    def _render(self, problems: Problems | None = None, prefix: str = "") -> list[str]:
        out = []
        for path, msg in (problems if problems is not None else self.problems).items:
            line = self.lines.line_of(path)
            loc = f"{self.path}:{line}" if line else f"{self.path}"
            out.append((line or 0, f"{loc}: {'.'.join(path)}: {prefix}{msg}"))
        return [text for _, text in sorted(out, key=lambda x: x[0])]  # file order; stable within a line


def socket_too_long(state_dir: Path) -> str | None:
    """Why the API socket cannot live in state_dir (its path is too long for sun_path), or None."""
    n = len(os.fsencode(str(state_dir / "herder.sock")))
    if n <= SUN_PATH_MAX or sys.platform == "win32":
        return None
    return (f"{state_dir}/herder.sock, the API socket, would be {n} bytes long, and a Unix socket path holds "
            f"at most {SUN_PATH_MAX}; expected a shorter state_dir (herder.state_dir, or $HERDER_STATE_DIR)")


def _present(raw: Any, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(raw, Mapping) or key not in raw:
            return False
        raw = raw[key]
    return True
