"""Windows services: the SCM configuration for a spec, as pywin32 calls and as sc.exe lines.

One list of operations is the source of both: each ``Op`` carries the ``sc.exe`` command
that ``--dry-run`` prints (and that the Wine tier runs against Wine's real SCM) and the
pywin32 call that a real install makes through the :mod:`_win32` seam. So the printed
commands cannot drift from what is done.

What the SCM runs (binPath):

- a program that speaks the SCM protocol itself (a ``herder.service`` program, or any
  real service exe): its command line, directly;
- anything else, and herder itself: herder's service host, ``python -m
  herder.platform.winhost NAME``, which reads the install record and either hosts the
  supervisor or wraps the command NSSM-style (see winhost.py).

Recovery: the restart policy becomes SCM failure actions (three restarts with the
backoff's first three delays, reset after ``backoff.reset_after``) with
failure-actions-on-non-crash set, so a non-zero exit counts as a failure too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PureWindowsPath
from typing import Any

from herder.core import backoff
from herder.platform import _win32 as w
from herder.platform.plan import Plan
from herder.platform.spec import InstallSpec

ACCOUNTS = {
    "localsystem": "LocalSystem",
    "localservice": r"NT AUTHORITY\LocalService",
    "networkservice": r"NT AUTHORITY\NetworkService",
}
_START = {"auto": (w.SERVICE_AUTO_START, "auto"), "delayed": (w.SERVICE_AUTO_START, "delayed-auto"),
          "manual": (w.SERVICE_DEMAND_START, "demand"), "disabled": (w.SERVICE_DISABLED, "disabled")}
HOST_MODULE = "herder.platform.winhost"


def account(spec: InstallSpec) -> str:
    """The account the service runs as; default: its own virtual account NT SERVICE\\NAME."""
    raw = spec.account or spec.service.user
    if not raw:
        return f"NT SERVICE\\{spec.name}"
    return ACCOUNTS.get(raw.lower().replace(" ", ""), raw)


def is_virtual(acct: str) -> bool:
    return acct.upper().startswith("NT SERVICE\\")


def record_dir() -> PureWindowsPath:
    return PureWindowsPath(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "herder" / "installed"


def bin_path(spec: InstallSpec, python: str) -> str:
    """The command line the SCM starts."""
    if spec.notify and spec.kind == "program":
        return subprocess.list2cmdline(list(spec.service.command))
    return subprocess.list2cmdline([python, "-m", HOST_MODULE, spec.name])


def failure_actions(spec: InstallSpec) -> tuple[int, list[tuple[int, int]]]:
    """(reset period in s, [(action, delay ms)]) from the restart policy and backoff."""
    svc = spec.service
    if svc.restart == "never":
        return 0, []
    delays = [max(1, round(backoff.delay(svc.backoff, n) * 1000)) for n in range(3)]
    return round(svc.backoff.reset_after), [(w.SC_ACTION_RESTART, d) for d in delays]


@dataclass(frozen=True)
class Op:
    """One step: its sc.exe form (None when sc has no such option) and its API call."""

    sc: tuple[str, ...] | None
    call: Callable[[w.ServiceApi], Any] = field(compare=False)
    what: str = ""

    def shown(self) -> str:
        return subprocess.list2cmdline(list(self.sc)) if self.sc else self.what


def _reg(name: str, subkey: str, value_name: str, value: str | int) -> tuple[str, ...]:
    key = "HKLM\\" + w.SERVICES_KEY + "\\" + name + ("\\" + subkey if subkey else "")
    kind = "REG_DWORD" if isinstance(value, int) else "REG_SZ"
    return ("reg", "add", key, "/v", value_name, "/t", kind, "/d", str(value), "/f")


def install_ops(spec: InstallSpec, python: str, *, update: bool) -> list[Op]:
    """Every SCM step for a fresh install (create) or an update in place (config)."""
    name, svc = spec.name, spec.service
    acct = account(spec)
    api_account = None if acct == "LocalSystem" else acct
    start_code, start_word = _START[spec.start]
    binp = bin_path(spec, python)
    deps = list(spec.depends)
    display = spec.name
    sc = ["sc", "config" if update else "create", name, "binPath=", binp, "start=", start_word]
    if not update:
        sc += ["type=", "own"]
    sc += ["DisplayName=", display]
    if deps or update:
        sc += ["depend=", "/".join(deps) if deps else "/"]
    sc += ["obj=", acct]
    if spec.password:
        sc += ["password=", spec.password]
    pw = spec.password

    def create(api: w.ServiceApi) -> None:
        (api.change if update else api.create)(name, display, start_code, binp, deps, api_account, pw)

    ops = [Op(tuple(sc), create)]
    ops.append(Op(("sc", "description", name, spec.title),
                  lambda api: api.config2(name, w.SERVICE_CONFIG_DESCRIPTION, spec.title)))
    delayed = spec.start == "delayed"
    # sc sets this through start= delayed-auto; the API needs its own call
    ops.append(Op(None, lambda api: api.config2(name, w.SERVICE_CONFIG_DELAYED_AUTO_START_INFO, delayed)))
    reset, actions = failure_actions(spec)
    spelled = "/".join(f"restart/{ms}" for _, ms in actions) if actions else '""'
    ops.append(Op(("sc", "failure", name, "reset=", str(reset), "actions=", spelled),
                  lambda api: api.config2(name, w.SERVICE_CONFIG_FAILURE_ACTIONS,
                                          {"ResetPeriod": reset, "RebootMsg": None, "Command": None,
                                           "Actions": actions})))
    flag = 1 if actions else 0
    ops.append(Op(("sc", "failureflag", name, str(flag)),
                  lambda api: api.config2(name, w.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, bool(flag))))
    if is_virtual(acct):
        ops.append(Op(("sc", "sidtype", name, "unrestricted"),
                      lambda api: api.config2(name, w.SERVICE_CONFIG_SERVICE_SID_INFO,
                                              w.SERVICE_SID_TYPE_UNRESTRICTED)))
    pre = round(svc.stop_timeout * 1000) + 5000
    ops.append(Op(_reg(name, "", "PreshutdownTimeout", pre),
                  lambda api: api.config2(name, w.SERVICE_CONFIG_PRESHUTDOWN_INFO, pre)))
    ops.append(Op(_reg(name, "Parameters", "HerderManaged", spec.kind),
                  lambda api: api.set_value(name, "Parameters", "HerderManaged", spec.kind)))
    return ops


def start_ops(spec: InstallSpec, *, restart: bool) -> list[Op]:
    name = spec.name
    ops = []
    if restart:
        ops.append(Op(("sc", "stop", name), lambda api: api.stop(name, spec.service.stop_timeout + 5)))
    ops.append(Op(("sc", "start", name), lambda api: api.start(name)))
    return ops


def uninstall_ops(spec: InstallSpec) -> list[Op]:
    name = spec.name
    return [Op(("sc", "stop", name), lambda api: _stop_quietly(api, name, spec.service.stop_timeout + 5)),
            Op(("sc", "delete", name), lambda api: api.delete(name))]


def _stop_quietly(api: w.ServiceApi, name: str, timeout: float) -> None:
    with contextlib.suppress(Exception):   # not running (1062) is fine before a delete
        api.stop(name, timeout)


def render_sc(spec: InstallSpec, python: str = "python.exe", *, update: bool = False) -> list[tuple[str, ...]]:
    """The sc.exe / reg.exe command lines, pure (the Wine tier runs these)."""
    ops = install_ops(spec, python, update=update)
    if spec.start in ("auto", "delayed"):
        ops += start_ops(spec, restart=update)
    return [op.sc for op in ops if op.sc is not None]


def plan_install(spec: InstallSpec, python: str, api: Callable[[], w.ServiceApi], *, old: str | None,
                 record: tuple[PureWindowsPath, str]) -> Plan:
    plan = Plan(windows=True)
    update = old is not None
    changed = old != record[1]
    if update and not changed:
        plan.notes.append(f"{spec.name}: already installed with these settings; nothing changed")
    plan.write(str(record[0]), record[1])
    if not update or changed:
        for op in install_ops(spec, python, update=update):
            plan.call(op.shown(), _bind(op, api))
    if spec.start in ("auto", "delayed"):
        for op in start_ops(spec, restart=update and changed):
            plan.call(op.shown(), _bind(op, api))
    return plan


def plan_uninstall(spec: InstallSpec, api: Callable[[], w.ServiceApi], record: PureWindowsPath) -> Plan:
    plan = Plan(windows=True)
    for op in uninstall_ops(spec):
        plan.call(op.shown(), _bind(op, api))
    plan.remove(str(record))
    return plan


def _bind(op: Op, api: Callable[[], w.ServiceApi]) -> Callable[[], None]:
    def run() -> None:
        op.call(api())
    return run


def control_op(action: str, spec: InstallSpec) -> list[Op]:
    name = spec.name
    if action == "start":
        return [Op(("sc", "start", name), lambda api: api.start(name))]
    if action == "stop":
        return [Op(("sc", "stop", name), lambda api: api.stop(name, spec.service.stop_timeout + 5))]
    if action == "restart":
        return start_ops(spec, restart=True)
    return [Op(("sc", "query", name), lambda api: print(_describe(api.query(name))))]


def _describe(st: tuple[int, int]) -> str:
    names = {1: "STOPPED", 2: "START_PENDING", 3: "STOP_PENDING", 4: "RUNNING", 5: "CONTINUE_PENDING",
             6: "PAUSE_PENDING", 7: "PAUSED"}
    return f"state {names.get(st[0], st[0])}, pid {st[1] or '-'}"
