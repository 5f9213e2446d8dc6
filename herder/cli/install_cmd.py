"""CLI glue for `herder install`, `herder uninstall` and `herder service …`.

Kept in one module with two entry points (`add_parsers`, `run`) so it can move into the
command registry unchanged. Parsing the flags into a ServiceSpec goes through the
config schema (`build`), so `--restart allways` fails with the same message a config
file would get. Everything heavy is imported inside `run`.
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False   # not `from typing import …`: typing costs `herder status` ~3 ms; mypy reads this block

if TYPE_CHECKING:
    from typing import Any

    from herder.platform.installer import Host
    from herder.platform.plan import Plan
    from herder.platform.spec import InstallSpec

COMMANDS = ("install", "uninstall", "service")


def add_parsers(sub: Any) -> None:
    inst = sub.add_parser("install", help="install herder itself as a native service that runs `herder up` at boot")
    scope = inst.add_mutually_exclusive_group()
    scope.add_argument("--user", dest="scope", action="store_const", const="user",
                       help="a service of your own (systemd --user, LaunchAgent); default when not root")
    scope.add_argument("--system", dest="scope", action="store_const", const="system",
                       help="a system service started at boot (default as root)")
    inst.add_argument("-c", "--config", metavar="FILE", help="config file (default ./herder.toml, else $HERDER_CONFIG)")
    _common(inst)
    inst.add_argument("--watchdog", metavar="DURATION", default="30s",
                      help='systemd watchdog for herder itself ("0" turns it off; default 30s)')

    uninst = sub.add_parser("uninstall", help="stop herder's native service and remove it")
    uninst.add_argument("--dry-run", action="store_true", help="print what would be done; change nothing")
    uninst.add_argument("--manager", choices=("systemd", "launchd", "windows"), help=argparse.SUPPRESS)

    svc = sub.add_parser("service", help="install one program as a native service (NSSM-style); control it")
    ssub = svc.add_subparsers(dest="service_command", metavar="ACTION")
    si = ssub.add_parser("install", help="install or update NAME; `-- CMD ARGS…` is the program")
    si.add_argument("name", metavar="NAME", nargs="?")
    si.add_argument("--start", choices=("auto", "delayed", "manual", "disabled"),
                    help="start type (default auto: at boot and now)")
    si.add_argument("--account", dest="account", metavar="ACCOUNT",
                    help="run as this account (Unix user; Windows LocalService, NetworkService, "
                         "LocalSystem, DOMAIN\\user; default: root / NT SERVICE\\NAME)")
    # --user / --system name the scope, as in `herder install` and `systemctl --user`. The old
    # `--user ACCOUNT` (the account) still works, with a warning (see _scope_and_account).
    si.add_argument("--user", dest="user_flag", nargs="?", const=True, default=None, metavar="",
                    help="a user service (same as --scope user)")
    si.add_argument("--system", dest="scope", action="store_const", const="system",
                    help="a system service (same as --scope system)")
    si.add_argument("--group", metavar="GROUP", help="Unix group (default: the account's primary group)")
    si.add_argument("--password", help="Windows: the password of a user account (else $HERDER_SERVICE_PASSWORD)")
    si.add_argument("--depends", action="append", metavar="X", help="start after native service X (repeatable)")
    si.add_argument("--restart", choices=("always", "on-failure", "never"), help="restart policy (default on-failure)")
    si.add_argument("--env", action="append", metavar="K=V", help="environment variable (repeatable)")
    si.add_argument("--cwd", metavar="DIR", help="working directory (default: the current directory)")
    si.add_argument("--description", help="shown by systemctl status / services.msc")
    si.add_argument("--log-dir", metavar="DIR", help="write stdout/stderr to DIR/NAME.log (default: the manager's log)")
    si.add_argument("--stop-timeout", metavar="DURATION", help='time to stop before the kill (default "10s")')
    si.add_argument("--stop-signal", metavar="SIG", help="first stop signal (default TERM)")
    si.add_argument("--scope", choices=("system", "user"), help="system (default as root) or user service")
    notify = si.add_mutually_exclusive_group()
    notify.add_argument("--notify", dest="notify", action="store_true", default=None,
                        help="the program reports readiness itself (herder.service, sd_notify); default: detected")
    notify.add_argument("--no-notify", dest="notify", action="store_false")
    _common(si)
    si.add_argument("program", nargs="*", metavar="CMD", help="after `--`: the program and its arguments")
    for action, text in (("uninstall", "stop NAME and remove it"), ("start", "start NAME"), ("stop", "stop NAME"),
                         ("restart", "restart NAME"), ("status", "show NAME's state")):
        p = ssub.add_parser(action, help=text)
        p.add_argument("name", metavar="NAME")
        p.add_argument("--manager", choices=("systemd", "launchd", "windows"), help=argparse.SUPPRESS)
        if action == "uninstall":
            p.add_argument("--dry-run", action="store_true", help="print what would be done; change nothing")


def split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Everything after the first `--` is the program's argv (argparse mangles it under subparsers)."""
    if "--" not in argv:
        return argv, None
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="print each file and command; change nothing")
    p.add_argument("--no-hardening", dest="hardening", action="store_false", default=None,
                   help="systemd: leave out the sandboxing options (NoNewPrivileges, ProtectSystem …)")
    p.add_argument("--manager", choices=("systemd", "launchd", "windows"),
                   help="render for this manager (default: this machine's); other managers only with --dry-run")


def _scope_and_account(args: argparse.Namespace) -> None:
    """`service install`: `--user` alone is the user scope; `--user ACCOUNT` (earlier versions: the
    account) still means the account, with a warning. `herder service install --user NAME`
    (NAME taken as --user's value by argparse) is the scope plus NAME."""
    from herder.errors import UsageError

    flag = getattr(args, "user_flag", None)
    if flag is True:
        args.scope = "user" if args.scope in (None, "user") else args.scope
    elif isinstance(flag, str):
        if args.name is None:
            args.name, args.scope = flag, args.scope or "user"
        else:
            print(f"herder: warning: `--user {flag}` is now `--account {flag}` (`--user` alone asks for a user "
                  "service, as in `herder install --user`)", file=sys.stderr)
            if args.account is None:
                args.account = flag
    if flag is True and args.scope == "system":
        raise UsageError("--user and --system: choose one")
    if args.name is None:
        raise UsageError("service install: expected NAME (herder service install NAME [options] -- CMD ARGS…)")


def run(args: argparse.Namespace) -> int:
    if args.command == "install":
        return _install_herder(args)
    if args.command == "uninstall":
        return _uninstall(args, "herder", "supervisor")
    action = getattr(args, "service_command", None)
    if action is None:
        print("herder: service: expected an action: install, uninstall, start, stop, restart or status",
              file=sys.stderr)
        return 2
    if action == "install":
        _scope_and_account(args)
        return _install_program(args)
    if action == "uninstall":
        return _uninstall(args, args.name, "program")
    return _control(args, action)


# ---- herder install ---------------------------------------------------------------------

def _install_herder(args: argparse.Namespace) -> int:
    import tomllib
    from pathlib import Path

    from herder.config import find_config, load
    from herder.config.model import Backoff, ServiceSpec, StartLimit
    from herder.config.units import parse_duration
    from herder.errors import ConfigError, UsageError
    from herder.platform.spec import InstallSpec

    host = _host(args)
    if host.manager == "windows":
        from herder.platform.installer import WINDOWS_SUPERVISOR

        raise UsageError(WINDOWS_SUPERVISOR)
    scope = args.scope or host.default_scope()
    path = find_config(args.config)
    if host.local:
        path = path.resolve()
        try:
            cfg = load(path)
        except ConfigError as e:
            for line in e.problems:
                print(line, file=sys.stderr)
            return e.exit_code
        shutdown = cfg.herder.shutdown_timeout
        explicit_state = "state_dir" in tomllib.loads(path.read_text(encoding="utf-8")).get("herder", {})
    else:
        shutdown, explicit_state = 60.0, False
    try:
        watchdog = parse_duration(args.watchdog) if args.watchdog not in ("0", "off") else 0.0
    except ValueError as e:
        raise UsageError(f"--watchdog: {e}") from None
    python = host.python
    command = (python, "-m", "herder", "up", "-c", str(path))
    state_dir = None
    if scope == "system" and not explicit_state and host.manager != "windows":
        state_dir = "/var/lib/herder" if host.manager == "systemd" else "/Library/Application Support/herder/state"
    svc = ServiceSpec(command=command, cwd=str(Path(path).parent), restart="on-failure",
                      backoff=Backoff(initial=1.0, factor=2.0, max=30.0, jitter=0.0, reset_after=60.0),
                      start_limit=StartLimit(burst=5, interval=120.0),
                      stop_timeout=shutdown + 10.0)
    previous = _previous(host, "herder", scope)
    spec = InstallSpec("herder", svc, kind="supervisor", scope=scope, notify=True,
                       hardening=args.hardening if args.hardening is not None
                       else (previous.hardening if previous else True),
                       description=f"herder supervisor for {path}", state_dir=state_dir,
                       watchdog=watchdog or None,
                       account=previous.account if previous else None)
    return _apply(host, spec, args.dry_run)


# ---- herder service install -------------------------------------------------------------

def _install_program(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from herder.config.model import ServiceSpec
    from herder.config.schema import Problems, build
    from herder.errors import UsageError
    from herder.platform import installer
    from herder.platform.spec import InstallSpec

    host = _host(args)
    installer.check_name(args.name)
    command = list(args.program) + list(getattr(args, "command_tail", None) or [])
    previous = _previous(host, args.name, args.scope)
    if previous is not None and previous.kind != "program":
        raise UsageError(f"{args.name} is herder itself (installed by `herder install`); choose another name")
    if not command and previous is None:
        raise UsageError(f"{args.name} is not installed yet: give the program after `--` "
                         f"(herder service install {args.name} -- CMD ARGS…)")
    scope = args.scope or (previous.scope if previous else host.default_scope())
    # every setting (the record file keeps only non-defaults), in JSON types: lists, not tuples
    base: dict[str, Any] = json.loads(json.dumps(previous.to_record()))["service"] if previous else {}
    # the recorded settings are the starting point; unset ones (None) stay unset, so the schema's defaults apply
    raw: dict[str, Any] = {k: v for k, v in base.items() if v is not None and k in ("command", "cwd", "env", "user",
                                                                                    "group", "restart", "depends_on")}
    for key in ("backoff", "start_limit"):
        if key in base:
            raw[key] = {k: f"{v}s" if k in ("initial", "max", "reset_after", "interval") else v
                        for k, v in base[key].items()}
    if base:
        raw["stop_timeout"] = f"{base['stop_timeout']}s"
        raw["stop_signal"] = base["stop_signal"]
    if command:
        raw["command"] = command
    if args.cwd is not None:
        raw["cwd"] = args.cwd
    cwd = os.path.abspath(raw.get("cwd") or os.getcwd()) if host.local else raw.get("cwd")
    if cwd is not None:
        raw["cwd"] = cwd
    if args.env is not None:
        env = {}
        for item in args.env:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise UsageError(f"--env {item!r}: expected K=V")
            env[key] = value
        raw["env"] = env
    if args.account is not None:
        raw["user"] = args.account
    if args.group is not None:
        raw["group"] = args.group
    if args.restart is not None:
        raw["restart"] = args.restart
    if args.depends is not None:
        raw["depends_on"] = {d: "started" for d in args.depends}
    if args.stop_timeout is not None:
        raw["stop_timeout"] = args.stop_timeout
    if args.stop_signal is not None:
        raw["stop_signal"] = args.stop_signal
    problems = Problems()
    svc = build(ServiceSpec, raw, ("service",), problems)
    if problems.items:
        flags = {"command": "CMD", "stop_timeout": "--stop-timeout", "stop_signal": "--stop-signal",
                 "env": "--env", "restart": "--restart", "cwd": "--cwd", "user": "--account", "group": "--group"}
        msgs = [f"{flags.get(path[1], '.'.join(path[1:])) if len(path) > 1 else path[0]}: {msg}"
                for path, msg in problems.items]
        raise UsageError("; ".join(msgs))
    svc = dataclasses.replace(svc, command=installer.resolve_command(host, svc.command, svc.cwd))
    win_account = None
    if host.manager == "windows":
        win_account, svc = svc.user, dataclasses.replace(svc, user=None, group=None)
    elif host.local and svc.user is not None and scope == "system":
        _check_account(svc.user, svc.group)
    if svc.user is not None and scope == "user":
        raise UsageError("--account ACCOUNT needs a system service (--system); a user service runs as you")
    notify = args.notify
    if notify is None:
        notify = installer.uses_herder_service(svc.command, svc.cwd) if command else bool(previous and previous.notify)
    spec = InstallSpec(
        args.name, svc, kind="program", scope=scope,
        description=args.description if args.description is not None else (previous.description if previous else ""),
        notify=notify,
        hardening=args.hardening if args.hardening is not None else (previous.hardening if previous else True),
        start=args.start or (previous.start if previous else "auto"),
        account=win_account if win_account is not None else (previous.account if previous else None),
        password=args.password or os.environ.get("HERDER_SERVICE_PASSWORD") or None,
        log_dir=os.path.abspath(args.log_dir) if args.log_dir and host.local else
        (args.log_dir or (previous.log_dir if previous else None)),
    )
    return _apply(host, spec, args.dry_run)


def _check_account(user: str, group: str | None) -> None:
    import grp
    import pwd

    from herder.errors import UsageError

    try:
        pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f'--account: no account "{user}" on this machine; nothing was changed') from None
    if group is not None:
        try:
            grp.getgrnam(group)
        except KeyError:
            raise UsageError(f'--group: no group "{group}" on this machine; nothing was changed') from None


# ---- shared -----------------------------------------------------------------------------

def _host(args: argparse.Namespace) -> Host:
    from herder.errors import UsageError
    from herder.platform.installer import make_host

    host = make_host(args.manager)
    if not host.local and not getattr(args, "dry_run", False):
        raise UsageError(f"--manager {host.manager} is not this machine's manager; only --dry-run can render it")
    return host


def _previous(host: Host, name: str, scope: str | None) -> InstallSpec | None:
    from herder.platform.installer import read_record

    return read_record(host, name, scope) if host.local else None


def _apply(host: Host, spec: InstallSpec, dry_run: bool) -> int:
    from herder.platform import installer

    if host.manager == "systemd" and host.local:
        from herder.platform.systemd import detect_features

        host.features = detect_features()
    plan = installer.plan_install(host, spec)
    for warning in temp_warnings(host, spec, plan):
        print(f"herder: warning: {warning}", file=sys.stderr)
    return _finish(plan, dry_run)


_TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def _under_temp(path: str) -> bool:
    temp = {*_TEMP_DIRS, *(x for x in (os.environ.get("TMPDIR"),) if x)}
    path = os.path.normpath(path)
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in temp)


def temp_warnings(host: Host, spec: InstallSpec, plan: Plan) -> list[str]:
    """What the service will not find at boot: its directory or program under a temp
    folder (cleaned by systemd-tmpfiles and at reboot), or hidden by PrivateTmp=yes."""
    from herder.platform.plan import WriteFile

    private = any(isinstance(s, WriteFile) and "PrivateTmp=yes" in s.content for s in plan.steps)
    out = []
    seen: set[str] = set()
    svc = spec.service
    things = [("its working directory", svc.cwd), ("its program", svc.command[0] if svc.command else None)]
    if spec.kind == "supervisor" and len(svc.command) > 5:
        things.append(("its config", svc.command[5]))   # python -m herder up -c CONFIG
    for what, path in things:
        if not path or not os.path.isabs(path) or not _under_temp(path) or path in seen:
            continue
        seen.add(path)
        msg = f"{spec.name}: {what} {path} is under a temporary folder, which is cleaned at reboot"
        if private and path.startswith(("/tmp/", "/var/tmp/")):
            msg += (" and hidden from the service by PrivateTmp=yes (it gets an empty /tmp); move it to a lasting "
                    "place (or install with --no-hardening to drop PrivateTmp)")
        else:
            msg += "; move it to a lasting place"
        out.append(msg)
    return out


def _finish(plan: Plan, dry_run: bool) -> int:
    from herder.platform.plan import execute

    if dry_run:
        sys.stdout.write(plan.dry_run())
        return 0
    for note in plan.notes:
        print(note)
    execute(plan)
    return 0


def _uninstall(args: argparse.Namespace, name: str, kind: str) -> int:
    from herder.platform import installer

    host = _host(args)
    plan = installer.plan_uninstall(host, name, None, kind)
    code = _finish(plan, args.dry_run)
    if not args.dry_run and host.manager != "windows":
        import contextlib

        for scope in ("system", "user"):
            with contextlib.suppress(OSError):
                os.rmdir(installer.record_dir(host, scope))  # only when empty
    return code


def _control(args: argparse.Namespace, action: str) -> int:
    import subprocess

    from herder.platform import installer
    from herder.platform.plan import InstallError, describe_error

    host = _host(args)
    spec, commands, ops = installer.control_commands(host, args.name, action)
    for i, argv in enumerate(commands):
        if action == "status":
            return subprocess.run(argv, timeout=60).returncode
        res = subprocess.run(argv, capture_output=True, text=True, timeout=180)
        launchd_load = host.manager == "launchd" and action == "start" and i == 0
        if res.returncode != 0 and not launchd_load:
            why = (res.stderr or res.stdout).strip()
            raise InstallError(f"{' '.join(argv)} failed (exit {res.returncode})" + (f": {why}" if why else ""))
    for op in ops:
        try:
            result = op.call(host.api())
        except Exception as e:  # noqa: BLE001 - pywintypes.error names the SCM's reason
            raise InstallError(f"`{op.name()}` failed: {describe_error(e)}") from None
        if action == "status":
            from herder.platform import _win32, windows

            print("\n".join(windows.describe(spec, result)))
            return 0 if result.state == _win32.SERVICE_RUNNING else 3
    if action != "status":
        print(f"{spec.name}: {action} done")
    return 0
