"""Windows services: the SCM configuration for a spec, as pywin32 calls and as sc.exe lines.

One list of operations is the source of both: each ``Op`` carries the ``sc.exe`` command
that ``--dry-run`` prints and the pywin32 call that a real install makes through the
:mod:`_win32` seam. So the printed commands cannot drift from what is done.

What the SCM runs (binPath):

- a Python program that speaks the SCM protocol itself (``python prog.py`` or ``python -m
  mod`` using ``herder.service``): ``python -m herder.platform.winhost NAME`` with the
  program's own interpreter. The host applies the recorded working directory and
  environment (the SCM has no setting for either: it starts services in System32 with
  the machine's environment) and runs the program in its own process, so the program is
  still the process the SCM talks to;
- any other program that speaks the protocol (a real service exe): its command line;
- anything else: herder's service host, ``python -m herder.platform.winhost NAME``,
  which reads the install record and wraps the command NSSM-style (see winhost.py).

Order and rollback: the SCM configuration first, then the install record, then the
start. A failure while configuring undoes what was done (a fresh install deletes the
service, an update re-applies the previous settings), so a half-way failure leaves
nothing behind; the record is only written once the SCM accepted everything. A failure
to *start* leaves the service installed (as ``systemctl enable --now`` does) and says so.

Settings an SCM does not implement (``ChangeServiceConfig2`` answering
ERROR_INVALID_LEVEL, as Wine does for delayed auto-start, the failure-actions flag and
the service SID type) are skipped with a note; everything else must succeed.

Recovery: the restart policy becomes SCM failure actions (three restarts with the
backoff's first three delays, reset after ``backoff.reset_after``) with
failure-actions-on-non-crash set, so a non-zero exit counts as a failure too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath, PureWindowsPath
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
_LEVEL_NAMES = {w.SERVICE_CONFIG_DELAYED_AUTO_START_INFO: "delayed auto-start",
                w.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG: "failure actions on non-crash exits",
                w.SERVICE_CONFIG_SERVICE_SID_INFO: "the service SID type",
                w.SERVICE_CONFIG_PRESHUTDOWN_INFO: "the preshutdown timeout"}


def account(spec: InstallSpec) -> str:
    """The account the service runs as; default: its own virtual account NT SERVICE\\NAME."""
    raw = spec.account or spec.service.user
    if not raw:
        return f"NT SERVICE\\{spec.name}"
    return ACCOUNTS.get(raw.lower().replace(" ", ""), raw)


def is_virtual(acct: str) -> bool:
    return acct.upper().startswith("NT SERVICE\\")


def program_data() -> PureWindowsPath:
    """%ProgramData%, asked of the shell (CSIDL_COMMON_APPDATA), not of the environment:
    the SCM may give services another value (Wine gives them C:\\users\\Public), and the
    host must find the record where the CLI wrote it."""
    if sys.platform == "win32":
        import ctypes

        buf = ctypes.create_unicode_buffer(260)
        if ctypes.windll.shell32.SHGetFolderPathW(None, 0x23, None, 0, buf) == 0 and buf.value:
            return PureWindowsPath(buf.value)
    return PureWindowsPath(r"C:\ProgramData")


def record_dir() -> PureWindowsPath:
    return program_data() / "herder" / "installed"


def log_dir(spec: InstallSpec) -> PureWindowsPath:
    """Where the service host appends the program's output: --log-dir, else %ProgramData%\\herder\\logs."""
    return PureWindowsPath(spec.log_dir) if spec.log_dir else program_data() / "herder" / "logs"


_PYTHON = re.compile(r"pythonw?(\d+(\.\d+)*)?(\.exe)?\Z", re.I)


def runs_in_host(spec: InstallSpec) -> bool:
    """A --notify Python program (``python prog.py …`` / ``python -m mod …``) that the host
    runs in its own process, after applying the recorded cwd and environment."""
    argv = spec.service.command
    if not spec.notify or len(argv) < 2 or not _PYTHON.match(PureWindowsPath(argv[0]).name):
        return False
    return argv[1].lower().endswith(".py") or (argv[1] == "-m" and len(argv) >= 3)


def bin_path(spec: InstallSpec, python: str) -> str:
    """The command line the SCM starts."""
    if runs_in_host(spec):
        return subprocess.list2cmdline([spec.service.command[0], "-m", HOST_MODULE, spec.name])
    if spec.notify:
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
    """One step: its sc.exe form (None when sc has no such option), its API call, and the
    name an error uses for it. ``optional``: an SCM that does not implement this
    configuration level (ERROR_INVALID_LEVEL) gets a note instead of a failure."""

    sc: tuple[str, ...] | None
    call: Callable[[w.ServiceApi], Any] = field(compare=False)
    what: str = ""
    optional: str | None = None   # the setting's name, for the note

    def shown(self) -> str:
        return subprocess.list2cmdline(list(self.sc)) if self.sc else ""

    def name(self) -> str:
        return self.shown() or self.what


def _reg(name: str, subkey: str, value_name: str, value: str | int) -> tuple[str, ...]:
    key = "HKLM\\" + w.SERVICES_KEY + "\\" + name + ("\\" + subkey if subkey else "")
    kind = "REG_DWORD" if isinstance(value, int) else "REG_SZ"
    return ("reg", "add", key, "/v", value_name, "/t", kind, "/d", str(value), "/f")


def _config2(name: str, level: int, value: Any, sc: tuple[str, ...] | None, what: str) -> Op:
    return Op(sc, lambda api: api.config2(name, level, value),
              f"ChangeServiceConfig2({name}, {what})", optional=_LEVEL_NAMES.get(level))


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
        sc += ["password=", "***"]   # never printed, never recorded
    pw = spec.password

    def create(api: w.ServiceApi) -> None:
        (api.change if update else api.create)(name, display, start_code, binp, deps, api_account, pw)

    ops = [Op(tuple(sc), create, f"{'ChangeServiceConfig' if update else 'CreateService'}({name})")]
    ops.append(_config2(name, w.SERVICE_CONFIG_DESCRIPTION, spec.title, ("sc", "description", name, spec.title),
                        "description"))
    delayed = spec.start == "delayed"
    if delayed or update:   # sc sets it through start= delayed-auto; the API needs its own call
        ops.append(_config2(name, w.SERVICE_CONFIG_DELAYED_AUTO_START_INFO, delayed, None,
                            f"delayed auto-start {delayed}"))
    reset, actions = failure_actions(spec)
    spelled = "/".join(f"restart/{ms}" for _, ms in actions)   # "" (shown as "") clears them
    ops.append(_config2(name, w.SERVICE_CONFIG_FAILURE_ACTIONS,
                        {"ResetPeriod": reset, "RebootMsg": None, "Command": None, "Actions": actions},
                        ("sc", "failure", name, "reset=", str(reset), "actions=", spelled), "failure actions"))
    flag = 1 if actions else 0
    ops.append(_config2(name, w.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, bool(flag),
                        ("sc", "failureflag", name, str(flag)), "failure actions flag"))
    if is_virtual(acct):
        ops.append(_config2(name, w.SERVICE_CONFIG_SERVICE_SID_INFO, w.SERVICE_SID_TYPE_UNRESTRICTED,
                            ("sc", "sidtype", name, "unrestricted"), "SID type unrestricted"))
    pre = round(svc.stop_timeout * 1000) + 5000
    ops.append(_config2(name, w.SERVICE_CONFIG_PRESHUTDOWN_INFO, pre, _reg(name, "", "PreshutdownTimeout", pre),
                        f"preshutdown timeout {pre} ms"))
    ops.append(Op(_reg(name, "Parameters", "HerderManaged", spec.kind),
                  lambda api: api.set_value(name, "Parameters", "HerderManaged", spec.kind),
                  f"registry value Parameters\\HerderManaged of {name}"))
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
    return [Op(("sc", "stop", name), lambda api: api.stop(name, spec.service.stop_timeout + 5, missing_ok=True)),
            Op(("sc", "delete", name), lambda api: api.delete(name, missing_ok=True))]


def render_sc(spec: InstallSpec, python: str = "python.exe", *, update: bool = False) -> list[tuple[str, ...]]:
    """The sc.exe / reg.exe command lines, pure (what --dry-run prints)."""
    ops = install_ops(spec, python, update=update)
    if spec.start in ("auto", "delayed"):
        ops += start_ops(spec, restart=update)
    return [op.sc for op in ops if op.sc is not None]


def plan_install(spec: InstallSpec, python: str, api: Callable[[], w.ServiceApi], *, old: str | None,
                 record: tuple[PurePath, str]) -> Plan:
    """Configure (rolled back on failure), write the record, commit, then start."""
    plan = Plan(windows=True)
    update = old is not None
    changed = old != record[1]
    if not update or changed:
        ops = install_ops(spec, python, update=update)
        for i, op in enumerate(ops):
            undo = None
            if i == 0:
                undo = _undo_update(old, python, api) if update else _undo_create(spec.name, api)
            plan.call(op.shown(), _bind(op, api), name=op.name(), undo=undo)
        plan.write(str(record[0]), record[1], undoable=True)
    plan.commit()
    if spec.start in ("auto", "delayed"):
        for op in start_ops(spec, restart=update and changed):
            plan.call(op.shown(), _bind(op, api), name=op.name())
    return plan


def _undo_create(name: str, api: Callable[[], w.ServiceApi]) -> Callable[[], None]:
    def undo() -> None:
        api().delete(name)
    return undo


def _undo_update(old: str | None, python: str, api: Callable[[], w.ServiceApi]) -> Callable[[], None]:
    """Put the previous settings back: every step of the old record's install, again."""
    def undo() -> None:
        previous = InstallSpec.from_record(json.loads(old or "{}"))
        for op in install_ops(previous, python, update=True):
            _bind(op, api)()
    return undo


def plan_uninstall(spec: InstallSpec, api: Callable[[], w.ServiceApi], record: PurePath) -> Plan:
    plan = Plan(windows=True)
    for op in uninstall_ops(spec):
        plan.call(op.shown(), _bind(op, api), name=op.name())
    plan.remove(str(record))
    return plan


def _bind(op: Op, api: Callable[[], w.ServiceApi]) -> Callable[[], str | None]:
    def run() -> str | None:
        try:
            op.call(api())
        except Exception as e:
            if op.optional and getattr(e, "winerror", None) == w.ERROR_INVALID_LEVEL:
                return (f"note: this service manager does not implement {op.optional} (ChangeServiceConfig2: "
                        f"error {w.ERROR_INVALID_LEVEL}, as under Wine); installed without it")
            raise
        return None
    return run


def control_op(action: str, spec: InstallSpec) -> list[Op]:
    name = spec.name
    if action == "start":
        return [Op(("sc", "start", name), lambda api: api.start(name))]
    if action == "stop":
        return [Op(("sc", "stop", name), lambda api: api.stop(name, spec.service.stop_timeout + 5))]
    if action == "restart":
        return start_ops(spec, restart=True)
    return [Op(("sc", "query", name), lambda api: api.query(name))]


STATE_NAMES = {1: "STOPPED", 2: "START_PENDING", 3: "STOP_PENDING", 4: "RUNNING", 5: "CONTINUE_PENDING",
               6: "PAUSE_PENDING", 7: "PAUSED"}


def describe(spec: InstallSpec, st: w.ServiceStatus) -> list[str]:
    """`herder service status NAME` on Windows: the SCM's view, then where the output goes."""
    state = STATE_NAMES.get(st.state, str(st.state))
    lines = [f"{spec.name}: {state}" + (f" (pid {st.pid})" if st.pid else "")]
    if st.state == w.SERVICE_STOPPED and (st.win32_exit_code or st.service_exit_code):
        if st.win32_exit_code == w.ERROR_SERVICE_SPECIFIC_ERROR:
            lines.append(f"  last exit: code {st.service_exit_code} (service-specific error 1066)")
        else:
            lines.append(f"  last exit: Win32 error {st.win32_exit_code}")
    lines.append(f"  command: {subprocess.list2cmdline(list(spec.service.command))}")
    if not spec.notify:
        lines.append(f"  log: {log_dir(spec) / (spec.name + '.log')}")
    return lines
