"""`herder import systemd`: one or more `.service` units → herder.toml.

Each unit becomes a service. systemd's defaults that differ from herder's — Restart=no,
TimeoutStopSec=90s, StartLimitBurst=5 in 10s, a constant RestartSec=100ms, the root
folder (or home, for user units) as working directory — go into [defaults]. After=,
Requires=, Wants=, BindsTo= and Before= between the imported units become depends_on;
the condition follows what systemd waits for: `ready` for Type=notify, `completed` for
Type=oneshot, else `started`. Units outside the import (network.target, postgresql
.service) are reported: herder does not wait for systemd's units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from herder.import_ import Options
from herder.import_.draft import Draft, Scope, rules
from herder.import_.source import fail
from herder.import_.systemd_unit import Unit, read_unit
from herder.import_.values import Places, service_name

FORMAT = "systemd"
HOOKS = ("ExecStartPre", "ExecStartPost", "ExecStop", "ExecStopPost", "ExecCondition")
SECURITY = ("UMask", "NoNewPrivileges", "CapabilityBoundingSet", "AmbientCapabilities", "PrivateTmp",
            "ProtectSystem", "ProtectHome", "ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths",
            "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
            "RestrictAddressFamilies", "SystemCallFilter", "MemoryDenyWriteExecute", "LockPersonality",
            "RestrictRealtime", "RestrictNamespaces", "ProtectClock", "ProtectHostname", "PrivateUsers",
            "ProtectKernelLogs", "RestrictSUIDSGID", "RemoveIPC", "ProtectProc", "ProcSubset")
DEPENDENCY_KEYS = ("After", "Before", "Requires", "Wants", "BindsTo", "Requisite", "PartOf", "Upholds")
SPECIAL_UNITS = ("network.target", "network-online.target", "multi-user.target", "syslog.target",
                 "local-fs.target", "remote-fs.target", "time-sync.target", "nss-lookup.target", "basic.target",
                 "sysinit.target", "default.target", "graphical.target", "sockets.target", "paths.target")

RULES = rules(
    ("NAME.service", "[services.NAME]", "one service per unit; drop-ins in NAME.service.d/*.conf are read too"),
    ("ExecStart", "command", "prefixes: `-` → every exit code counts as success; `@` → argv[0] not carried; "
     "`:` → no variable substitution; `+ ! !!` → not carried. `$VAR` known from Environment= is substituted; "
     "others are read by /bin/sh at start ([\"/bin/sh\", \"-c\", …])"),
    ("(specifiers)", "command, cwd, env …", "%n %N %p %P %i %I %f %j %J %y %Y %% exact; %t %S %C %L %E %T %V "
     "%h %u %U %g %G %s exact for system units; %H %l %m %b %v %a: this machine's value now; others left as written"),
    ("Type", "ready / restart", "notify, notify-reload → ready.notify = true; oneshot → restart = \"never\"; "
     "simple, exec, idle: herder's default; forking, dbus: not carried"),
    ("Restart", "restart", "no → never, always → always, on-failure → on-failure; on-abnormal, on-abort, "
     "on-watchdog → on-failure (approximated); on-success: not carried"),
    ("RestartSec", "backoff", "a constant delay: initial, factor 1, no jitter"),
    ("RestartSteps", "backoff", "with RestartMaxDelaySec: herder's curve grows by a factor, not in steps"),
    ("RestartMaxDelaySec", "backoff.max", ""),
    ("TimeoutStopSec", "stop_timeout", "infinity → 1d"),
    ("TimeoutStartSec", "ready.timeout", "with Type=notify"),
    ("TimeoutSec", "stop_timeout, ready.timeout", ""),
    ("KillSignal", "stop_signal", ""),
    ("KillMode", "kill", "control-group → tree, process → main, mixed → tree (approximated), none → main "
     "(approximated)"),
    ("User", "user", ""),
    ("Group", "group", ""),
    ("WorkingDirectory", "cwd", "`-` prefix dropped; unset: / (system units) or ~ (user units)"),
    ("Environment", "env", ""),
    ("EnvironmentFile", "env_file", "the first file (herder reads one, as a dotenv file); more files are copied "
     "into env now. `-` (optional) and missing now: not carried"),
    ("PassEnvironment", "—", "herder passes its whole environment"),
    ("UnsetEnvironment", "—", "herder has no way to remove a variable"),
    ("StandardOutput", "logs.stdout", "file:/append: → the path; null → null; inherit; journal, syslog, kmsg → "
     "forwarded (logs.forward), herder also keeps its file"),
    ("StandardError", "logs.stderr", "as StandardOutput; unset or inherit → merge"),
    ("SuccessExitStatus", "success_exit_codes", "added to 0; signal names are not carried"),
    ("RestartPreventExitStatus", "—", "not carried yet (issue 18 adds restart_prevent_exit_codes)"),
    ("RestartForceExitStatus", "—", "not carried yet (issue 18 adds restart_force_exit_codes)"),
    ("StartLimitBurst", "start_limit.burst", "systemd counts every start in the interval; herder counts failed "
     "starts"),
    ("StartLimitIntervalSec", "start_limit.interval", "also the old StartLimitInterval"),
    ("WatchdogSec", "health.watchdog", ""),
    ("ExecReload", "reload_signal", "`kill -HUP $MAINPID` (any signal) → reload_signal; other commands not carried"),
    ("ExecStartPre", "—", "hooks come with issue 18 (pre_start, post_start, pre_stop, post_stop)"),
    ("LimitNOFILE", "limits.nofile", "herder sets soft = hard: the hard value of SOFT:HARD"),
    ("LimitNPROC", "limits.nproc", ""),
    ("LimitCORE", "limits.core", ""),
    ("Limit*", "—", "herder sets NOFILE, NPROC and CORE only"),
    ("MemoryMax", "limits.memory", "also the old MemoryLimit; a percentage: of this machine's memory now"),
    ("CPUQuota", "limits.cpu", "200% → 2.0"),
    ("(security)", "—", "UMask, NoNewPrivileges, capabilities, PrivateTmp, Protect*, paths: issue 18 adds "
     "[services.X.security]"),
    ("After", "depends_on", "between imported units: ordering; herder also starts the dependency"),
    ("Before", "depends_on", "the other unit depends on this one"),
    ("Requires", "depends_on", ""),
    ("Wants", "depends_on", "herder waits for it like Requires="),
    ("BindsTo", "depends_on + bind", "bind = true: herder restarts this one when the dependency restarts"),
    ("Requisite", "depends_on", ""),
    ("Description", "(comment)", ""),
    ("Documentation", "(comment)", ""),
    ("OnFailure", "—", "issue 18 adds alerts"),
    ("[Install]", "autostart", "whether the unit is enabled is not in its file: autostart = true"),
    ("*", "—", "no herder equivalent"),
    ("(systemd default)", "[defaults]", "systemd's defaults where they differ from herder's: restart = \"never\", "
     "stop_timeout = \"90s\", start_limit = 5 in 10s, backoff = 100ms constant, cwd = / (or ~)"),
)


@dataclass
class Ctx:
    draft: Draft
    places: Places
    units: dict[str, tuple[Unit, str]] = field(default_factory=dict)   # unit name → (unit, service name)
    deps: dict[str, dict[str, str]] = field(default_factory=dict)       # service → {dep unit: key}


def user_scope(path: Path) -> bool:
    p = str(path.resolve())
    return "/systemd/user/" in p or "/.config/systemd/user" in p


def translate(files: list[Path], places: Places, options: Options) -> Draft:
    draft = Draft(FORMAT)
    ctx = Ctx(draft, places)
    taken: set[str] = set()
    units = []
    for f in files:
        if not f.name.endswith(".service"):
            raise fail(str(f), "not a .service unit; expected NAME.service (other unit types have no herder "
                       "equivalent)")
        unit = read_unit(f)
        if unit.name in ctx.units:
            raise fail(str(f), f"{unit.name} is given twice; expected each unit once")
        svc = service_name(unit.name.removesuffix(".service"), taken)
        ctx.units[unit.name] = (unit, svc)
        units.append(unit)
    draft.header = ["Imported from systemd by `herder import systemd`: "
                    + ", ".join(places.place(u.path) for u in units)]
    from herder.import_.systemd_service import service

    for unit in units:
        service(ctx, unit)
    _dependencies(ctx)
    _defaults(ctx, units)
    return draft


def _defaults(ctx: Ctx, units: list[Unit]) -> None:
    sc = Scope(ctx.draft, ctx.draft.defaults, "defaults", str(units[0].path), "(systemd default)", RULES,
               "(systemd default)")
    sc.carry("Restart", None, "no", "restart", "never")
    sc.carry("TimeoutStopSec", None, "90s", "stop_timeout", "90s")
    sc.carry("StartLimitBurst", None, "5", "start_limit.burst", 5)
    sc.carry("StartLimitIntervalSec", None, "10s", "start_limit.interval", "10s")
    sc.carry("RestartSec", None, "100ms", "backoff", None, "a constant delay")
    for k, v in (("initial", "100ms"), ("factor", 1.0), ("jitter", 0.0)):
        ctx.draft.defaults.set(f"backoff.{k}", v)
    home = user_scope(units[0].path)
    sc.carry("WorkingDirectory", None, "", "cwd", "~" if home else "/",
             "a user unit runs in the home folder" if home else "a system unit runs in /")


def _dependencies(ctx: Ctx) -> None:
    """depends_on between imported units, with the condition systemd waits for."""
    for svc, deps in ctx.deps.items():
        table = ctx.draft.services[svc]
        for unit_name, how in deps.items():
            dep_unit, dep_svc = ctx.units[unit_name]
            if dep_svc == svc:
                continue
            kind = dep_unit.last("Service", "Type")
            t = kind.value if kind else "simple"
            cond = "ready" if t in ("notify", "notify-reload") else ("completed" if t == "oneshot" else "started")
            table.values.setdefault("depends_on", {})[dep_svc] = cond
            if how == "BindsTo":
                table.set("bind", True)


def deps_of(ctx: Ctx, unit: Unit, svc: str, sc: Scope) -> None:
    """Record this unit's dependency settings (and Before= as the other side's)."""
    for key in DEPENDENCY_KEYS:
        for a in unit.all("Unit", key):
            inside = [n for n in a.value.split() if n in ctx.units]
            outside = [n for n in a.value.split() if n not in ctx.units]
            sc.kind = key if key in RULES else "*"
            if key in ("PartOf", "Upholds"):
                sc.drop(key, a.line, a.value, "no herder equivalent")
                continue
            for n in inside:
                owner, dep = (ctx.units[n][1], unit.name) if key == "Before" else (svc, n)
                known = ctx.deps.setdefault(owner, {})
                if known.get(dep) != "BindsTo":
                    known[dep] = key
            if inside:
                note = RULES[key].note
                if key in ("Wants", "After", "BindsTo", "Before"):
                    sc.approx(key, a.line, " ".join(inside), "depends_on", None, note)
                else:
                    sc.carry(key, a.line, " ".join(inside), "depends_on", None, note)
            if outside:
                specials = [n for n in outside if n in SPECIAL_UNITS]
                why = ("systemd's own targets: herder starts when it is started" if specials == outside else
                       "not among the imported units: herder does not wait for systemd's units")
                sc.drop(key, a.line, " ".join(outside), why)
    sc.kind = ""
