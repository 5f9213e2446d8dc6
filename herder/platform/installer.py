"""Install, update, uninstall and control native services: the checks and the plans.

This is the one place that looks at the machine before acting (is the name taken? by
whom? is the command there? are we root?), so every error is raised *before* the first
step runs and a refused install changes nothing. The managers' modules stay pure.

Records: each install writes ``installed/NAME.json`` (the InstallSpec, without any
password) in a herder-owned directory. It marks what herder created, lets a later
``herder service install NAME`` (e.g. after upgrading herder) re-render with the same
settings, and tells ``uninstall``/``start``/``stop`` the scope and manager to use.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PureWindowsPath

from herder.errors import EXIT_FAILED, HerderError, UsageError
from herder.platform import _win32 as w
from herder.platform import launchd, systemd, windows
from herder.platform.plan import InstallError, Plan
from herder.platform.spec import InstallSpec

MANAGERS = ("systemd", "launchd", "windows")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}\Z")


class NameTaken(HerderError):
    exit_code = EXIT_FAILED


class NotInstalled(HerderError):
    exit_code = EXIT_FAILED


def native_manager() -> str:
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "launchd"
    return "systemd"


@dataclass
class Host:
    """The machine an install is for. ``local`` is False when rendering for another OS
    (``--manager`` on a dry run): then nothing on this machine is probed."""

    manager: str
    local: bool = True
    uid: int = field(default_factory=lambda: os.getuid() if hasattr(os, "getuid") else 0)
    home: Path = field(default_factory=Path.home)
    python: str = field(default_factory=lambda: sys.executable)
    features: systemd.Features | None = None
    win_api: Callable[[], w.ServiceApi] | None = None

    @property
    def is_admin(self) -> bool:
        return self.manager == "windows" or self.uid == 0

    def api(self) -> w.ServiceApi:
        if self.win_api is None:
            self.win_api = w.PyWin32Api
        return self.win_api()

    def default_scope(self) -> str:
        return "system" if self.is_admin else "user"


def make_host(manager: str | None) -> Host:
    native = native_manager()
    m = manager or native
    if m not in MANAGERS:
        raise UsageError(f"unknown manager {m!r}; expected one of {', '.join(MANAGERS)}")
    host = Host(m, local=m == native)
    if m == "windows" and not host.local:
        host.python = r"C:\Program Files\Python311\python.exe"
    return host


# ---- where things live ------------------------------------------------------------

def record_dir(host: Host, scope: str) -> PurePath:
    if host.manager == "windows":
        return windows.record_dir()
    if host.manager == "launchd":
        base = Path("/Library/Application Support") if scope == "system" else host.home / "Library/Application Support"
        return base / "herder" / "installed"
    if scope == "system":
        return Path("/var/lib/herder/installed")
    state = os.environ.get("XDG_STATE_HOME") or str(host.home / ".local" / "state")
    return Path(state) / "herder" / "installed"


def record_path(host: Host, scope: str, name: str) -> PurePath:
    return record_dir(host, scope) / f"{name}.json"


def service_file(host: Host, spec: InstallSpec) -> PurePath | None:
    if host.manager == "systemd":
        return systemd.unit_dir(spec.scope, host.home) / systemd.unit_name(spec.name)
    if host.manager == "launchd":
        return launchd.plist_path(spec.scope, spec.name, host.home)
    return None


def render(host: Host, spec: InstallSpec) -> str:
    """The file herder writes for this spec (Windows: the record, its only file)."""
    if host.manager == "systemd":
        return systemd.render_unit(spec, host.features or systemd.Features())
    if host.manager == "launchd":
        return launchd.render_plist(spec, host.home)
    return spec.dumps()


def _read(host: Host, path: PurePath | None) -> str | None:
    if path is None or not host.local:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise InstallError(f"cannot read {path}: {e.strerror or e}") from None


def read_record(host: Host, name: str, scope: str | None = None) -> InstallSpec | None:
    scopes = [scope] if scope else (["system", "user"] if host.is_admin else ["user", "system"])
    for sc in scopes:
        text = _read(host, record_path(host, sc, name))
        if text is None:
            continue
        try:
            return InstallSpec.from_record(json.loads(text))
        except (ValueError, TypeError, KeyError) as e:
            raise InstallError(f"{record_path(host, sc, name)} is damaged ({e}); remove it and install again") from None
    return None


# ---- checks (all before any step) -------------------------------------------------

def check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise UsageError(f'invalid service name "{name}"; expected letters, digits, ".", "-" and "_" '
                         "(at most 80, starting with a letter or digit)")


def check_scope(host: Host, scope: str, what: str) -> None:
    if host.manager == "windows" and scope == "user":
        raise UsageError("Windows services are machine-wide; --user/--scope user is not available there")
    if host.local and scope == "system" and not host.is_admin:
        raise InstallError(f"{what} a system service needs root (you are uid {host.uid}); run it with sudo, "
                           "or use --user for a service of your own")


def check_not_taken(host: Host, spec: InstallSpec, existing_text: str | None) -> None:
    """Refuse a name that belongs to a service herder did not create."""
    if not host.local:
        return
    path = service_file(host, spec)
    if host.manager == "systemd":
        if existing_text is not None and not systemd.is_managed(existing_text):
            raise NameTaken(f"{path} exists and was not written by herder; choose another name "
                            "(nothing was changed)")
        if spec.scope == "system":
            for d in systemd.VENDOR_UNIT_DIRS:
                other = Path(d) / systemd.unit_name(spec.name)
                if Path(d) != Path(systemd.SYSTEM_UNIT_DIR) and other.exists():
                    raise NameTaken(f"the name {spec.name} is taken by {Path(d) / systemd.unit_name(spec.name)}, "
                                    "which herder did not create; choose another name (nothing was changed)")
    elif host.manager == "launchd":
        if existing_text is not None and not launchd.is_managed(existing_text):
            raise NameTaken(f"{path} exists and was not written by herder; choose another name (nothing was changed)")
    else:
        api = host.api()
        if api.exists(spec.name) and api.get_value(spec.name, "Parameters", "HerderManaged") is None:
            raise NameTaken(f"a Windows service named {spec.name} exists and was not created by herder; "
                            "choose another name (nothing was changed)")


def resolve_command(host: Host, argv: tuple[str, ...], cwd: str | None) -> tuple[str, ...]:
    """argv[0] as an absolute path (systemd needs one); a clear error when it is missing."""
    if not argv:
        raise UsageError("no command given; expected `-- CMD ARGS…` after the options")
    if not host.local:
        return argv
    first = argv[0]
    if os.sep in first or (os.altsep and os.altsep in first):
        path = first if os.path.isabs(first) else os.path.join(cwd or os.getcwd(), first)
        if not os.path.isfile(path):
            raise UsageError(f"command not found: {first} (no file {path}); nothing was changed")
        return (os.path.abspath(path), *argv[1:])
    found = shutil.which(first)
    if found is None:
        raise UsageError(f"command not found: {first} (not on PATH); give an absolute path. Nothing was changed")
    return (os.path.abspath(found), *argv[1:])


_USES_LIBRARY = re.compile(
    r"^\s*(from\s+herder\.service\s+import|from\s+herder\s+import\s+service|import\s+herder\.service)", re.M)


def uses_herder_service(argv: tuple[str, ...], cwd: str | None) -> bool:
    """Does the program import herder.service (so it reports readiness itself)?

    Looks at the first ``*.py`` argument (or argv[0] when it is a script); ``-m module``
    programs are not inspected: pass --notify for them.
    """
    for arg in argv[:3]:
        if arg.endswith(".py"):
            path = arg if os.path.isabs(arg) else os.path.join(cwd or os.getcwd(), arg)
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    return bool(_USES_LIBRARY.search(f.read(1_000_000)))
            except OSError:
                return False
    return False


# ---- install / uninstall ----------------------------------------------------------

def describe_changes(old: str, new: str) -> list[str]:
    """The settings lines that differ, as '-old' / '+new' (comments left out)."""
    out = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0):
        if line.startswith(("---", "+++", "@@")):
            continue
        body = line[1:].strip()
        if not body or body.startswith(("#", "<!--")):
            continue
        out.append(f"  {line[0]} {body}")
    return out


WINDOWS_SUPERVISOR = ("herder install: the supervisor (`herder up`) runs on Linux today, so it cannot be a Windows "
                      "service yet; on Windows install each program as its own service with `herder service install "
                      "NAME -- CMD ARGS…` (docs/install.md). Nothing was changed")


def plan_install(host: Host, spec: InstallSpec) -> Plan:
    """Check everything, then build the plan. Raises before any change."""
    check_name(spec.name)
    if host.manager == "windows" and spec.kind == "supervisor":
        raise UsageError(WINDOWS_SUPERVISOR)
    check_scope(host, spec.scope, "installing")
    path = service_file(host, spec)
    rec_path = record_path(host, spec.scope, spec.name)
    old = _read(host, path) if path is not None else None
    check_not_taken(host, spec, old)
    previous = read_record(host, spec.name, spec.scope) if host.local else None
    if previous is not None and previous.kind != spec.kind:
        other = "herder install" if previous.kind == "supervisor" else f"herder service install {spec.name}"
        raise NameTaken(f"{spec.name} was installed by `{other}`; uninstall it first (nothing was changed)")
    content = render(host, spec)
    record = spec.dumps()
    if host.manager == "systemd":
        plan = systemd.plan_install(spec, content, old, (Path(rec_path), record))
    elif host.manager == "launchd":
        plan = launchd.plan_install(spec, content, old, (Path(rec_path), record), host.uid, host.home)
    else:
        old_rec = _read(host, rec_path) if host.local else None
        gone = old_rec is not None and not host.api().exists(spec.name)
        if gone:   # removed behind herder's back (sc delete): install it afresh
            old_rec = None
        plan = windows.plan_install(spec, host.python, host.api, old=old_rec,
                                    record=(PureWindowsPath(rec_path), record))
        if gone:
            plan.notes.append(f"{spec.name}: herder's record was there but the service was not; creating it again")
        old, content = old_rec, record
    if old is None:
        plan.notes.insert(0, f"{spec.name}: installing ({host.manager}, {spec.scope})")
    elif old == content:
        plan.notes.insert(0, f"{spec.name}: already installed with these settings; nothing changed")
    else:
        plan.notes.insert(0, f"{spec.name}: updating in place; changed:")
        plan.notes[1:1] = describe_changes(old, content) or ["  (herder version only)"]
    plan.notes[:] = list(dict.fromkeys(plan.notes))
    return plan


def plan_uninstall(host: Host, name: str, scope: str | None, kind: str) -> Plan:
    check_name(name)
    spec = read_record(host, name, scope)
    if spec is None:
        where = record_dir(host, scope) if scope else record_dir(host, host.default_scope())
        raise NotInstalled(f"{name} is not installed by herder (no record in {where}); nothing to remove")
    if spec.kind != kind:
        other = "herder uninstall" if spec.kind == "supervisor" else f"herder service uninstall {name}"
        raise UsageError(f"{name} was installed by herder as {spec.kind}; use `{other}`")
    check_scope(host, spec.scope, "removing")
    rec = record_path(host, spec.scope, name)
    if host.manager == "systemd":
        path = service_file(host, spec)
        text = _read(host, path)
        if text is not None and not systemd.is_managed(text):
            raise NameTaken(f"{path} was not written by herder; not removing it")
        plan = systemd.plan_uninstall(spec, Path(rec))
    elif host.manager == "launchd":
        plan = launchd.plan_uninstall(spec, Path(rec), host.uid, host.home)
    else:
        plan = windows.plan_uninstall(spec, host.api, PureWindowsPath(rec))
    plan.notes.append(f"{name}: removing ({host.manager}, {spec.scope})")
    if spec.kind == "supervisor" and spec.state_dir:
        plan.notes.append(f"{name}: kept the state directory {spec.state_dir} (logs, journal); remove it by hand "
                          "if you no longer need it")
    return plan


def control_commands(host: Host, name: str, action: str) -> tuple[InstallSpec, list[tuple[str, ...]],
                                                                    list[windows.Op]]:
    """The commands (systemd/launchd) or SCM operations (Windows) for start/stop/restart/status."""
    spec = read_record(host, name)
    if spec is None:
        raise NotInstalled(f"{name} is not installed by herder; `herder service install {name} -- CMD` first")
    if host.manager == "systemd":
        return spec, [systemd.control(spec.scope, action, name)], []
    if host.manager == "launchd":
        return spec, launchd.control(spec.scope, action, name, host.uid, host.home), []
    return spec, [], windows.control_op(action, spec)
