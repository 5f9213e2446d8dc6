"""launchd jobs (macOS): a plist per service and the launchctl steps around it.

LaunchDaemons (system scope, /Library/LaunchDaemons, domain ``system``) start at boot
with no one logged in; LaunchAgents (user scope, ~/Library/LaunchAgents, domain
``gui/UID``) start at login. launchd has no dependencies, no stop signal choice (always
SIGTERM, then SIGKILL after ExitTimeOut) and no exponential backoff (ThrottleInterval is
a fixed minimum between spawns); docs/install.md lists what is dropped. Not run on a
real Mac in this project's CI: the tests check golden plists, a plistlib round-trip and
key types.
"""

from __future__ import annotations

import math
import plistlib
from pathlib import Path
from typing import Any

from herder.platform.plan import Plan
from herder.platform.spec import MARKER, InstallSpec

SYSTEM_DIR = "/Library/LaunchDaemons"
SYSTEM_LOG_DIR = "/Library/Logs/herder"


def plist_path(spec_scope: str, label: str, home: Path | None = None) -> Path:
    if spec_scope == "system":
        return Path(SYSTEM_DIR) / f"{label}.plist"
    return (home or Path.home()) / "Library" / "LaunchAgents" / f"{label}.plist"


def domain(scope: str, uid: int) -> str:
    return "system" if scope == "system" else f"gui/{uid}"


def log_dir(spec: InstallSpec, home: Path | None = None) -> str:
    if spec.log_dir:
        return spec.log_dir
    return SYSTEM_LOG_DIR if spec.scope == "system" else str((home or Path.home()) / "Library" / "Logs" / "herder")


def job(spec: InstallSpec, home: Path | None = None) -> dict[str, Any]:
    """The plist as a dict: pure."""
    svc = spec.service
    env = dict(svc.env)
    if spec.state_dir:
        env["HERDER_STATE_DIR"] = spec.state_dir
    env["HERDER_STOP_TIMEOUT_USEC"] = str(round(svc.stop_timeout * 1_000_000))
    d: dict[str, Any] = {
        "Label": spec.name,
        "ProgramArguments": list(svc.command),
        "EnvironmentVariables": env,
        "RunAtLoad": spec.start in ("auto", "delayed"),
        "ThrottleInterval": max(1, math.ceil(svc.backoff.initial)),
        "ExitTimeOut": max(1, math.ceil(svc.stop_timeout)),
    }
    if svc.restart == "always":
        d["KeepAlive"] = True
    elif svc.restart == "on-failure":
        d["KeepAlive"] = {"SuccessfulExit": False}
    else:
        d["KeepAlive"] = False
    if spec.start == "disabled":
        d["Disabled"] = True
    if svc.cwd:
        d["WorkingDirectory"] = svc.cwd
    if spec.scope == "system" and svc.user:
        d["UserName"] = svc.user
    if spec.scope == "system" and svc.group:
        d["GroupName"] = svc.group
    logs = Path(log_dir(spec, home))
    d["StandardOutPath"] = str(logs / f"{spec.name}.log")
    d["StandardErrorPath"] = str(logs / (f"{spec.name}.log" if svc.logs.stderr == "merge" else f"{spec.name}.err.log"))
    if spec.kind == "supervisor":
        d["ProcessType"] = "Standard"
    return d


def render_plist(spec: InstallSpec, home: Path | None = None) -> str:
    """The plist's exact text, with herder's marker comment after the XML declaration."""
    body = plistlib.dumps(job(spec, home), sort_keys=False).decode()
    decl, _, rest = body.partition("\n")
    how = "herder install" if spec.kind == "supervisor" else f"herder service install {spec.name}"
    return f"{decl}\n<!-- Written by herder ({how}). {MARKER}: {spec.kind} {spec.name} -->\n{rest}"


def is_managed(text: str) -> bool:
    return f"{MARKER}:" in text


def plan_install(spec: InstallSpec, content: str, old: str | None, record: tuple[Path, str], uid: int,
                 home: Path | None = None) -> Plan:
    plan = Plan()
    path = plist_path(spec.scope, spec.name, home)
    dom = domain(spec.scope, uid)
    if old is not None and old == content:
        plan.notes.append(f"{spec.name}: already installed with these settings; nothing changed")
        plan.write(record[0], record[1])
        if spec.start in ("auto", "delayed"):
            plan.run("launchctl", "kickstart", f"{dom}/{spec.name}", check=False)
        return plan
    plan.run("mkdir", "-p", log_dir(spec, home))
    if old is not None:
        plan.run("launchctl", "bootout", f"{dom}/{spec.name}", check=False)
    plan.write(path, content)
    plan.write(record[0], record[1])
    if spec.start != "disabled":
        plan.run("launchctl", "enable", f"{dom}/{spec.name}")
        plan.run("launchctl", "bootstrap", dom, str(path))
    else:
        plan.run("launchctl", "disable", f"{dom}/{spec.name}")
    return plan


def plan_uninstall(spec: InstallSpec, record: Path, uid: int, home: Path | None = None) -> Plan:
    plan = Plan()
    dom = domain(spec.scope, uid)
    plan.run("launchctl", "bootout", f"{dom}/{spec.name}", check=False)
    plan.remove(plist_path(spec.scope, spec.name, home))
    plan.remove(record)
    return plan


def control(scope: str, action: str, name: str, uid: int, home: Path | None = None) -> list[tuple[str, ...]]:
    dom = domain(scope, uid)
    target = f"{dom}/{name}"
    if action == "start":
        return [("launchctl", "bootstrap", dom, str(plist_path(scope, name, home))), ("launchctl", "kickstart", target)]
    if action == "stop":
        return [("launchctl", "bootout", target)]
    if action == "restart":
        return [("launchctl", "kickstart", "-k", target)]
    return [("launchctl", "print", target)]
