"""systemd units rendered from a ServiceSpec, and the systemctl steps that install them.

``render_unit`` is pure: the same spec and the same ``Features`` give the same bytes
(golden tests compare them, and every unit the tests render passes
``systemd-analyze verify`` with empty stderr). What depends on the host is only the
systemd version: RestartSteps / RestartMaxDelaySec exist from v254, so on older hosts
the backoff curve degrades to its first delay (RestartSec) and docs/install.md says so.

Mapping decisions (docs/install.md has the table):

- herder itself is ``Type=notify`` (it sends READY=1 once its autostart services are up)
  with ``KillMode=mixed``: SIGTERM to herder alone, so that herder stops its services in
  reverse dependency order; with control-group systemd would signal them all at once.
  From systemd 250 also ``ExitType=cgroup`` and ``NotifyAccess=all``: a kill -9 of the
  main process (herder's keeper) does not end the unit while the services run, and the
  decision process that becomes the keeper names itself with MAINPID= (docs/supervisor.md).
  ``Delegate=yes`` lets herder make a cgroup per instance inside its unit.
- a single program gets ``KillMode=control-group`` (``kill = "main"`` → ``mixed``).
- hardening is on by default in system scope; user managers cannot build most sandboxes
  without user namespaces, so user units only get NoNewPrivileges.
- a dependency's condition picks the directive, always with After=: ``completed`` →
  Requires= (a one-shot's success gates the start); any other → Wants=. Requires= on a
  long-running unit would also restart the dependant at each of the dependency's
  automatic restarts (seen on systemd 252), which is herder's ``bind``, not its
  default. Installs only ever have ``started``.
- ``limits`` map to MemoryMax=, CPUQuota=, LimitNOFILE=, LimitNPROC=, LimitCORE=.

``herder export systemd`` renders its units here too, passing :class:`UnitExtras` for what
only an exported unit has (Type=oneshot, readiness polls, template instances, its target).
"""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from herder import __version__
from herder.config.model import ServiceSpec
from herder.platform.plan import Plan
from herder.platform.spec import MARKER, InstallSpec

SYSTEM_UNIT_DIR = "/etc/systemd/system"
#: Where other packages' units live: a name found here is taken by someone else.
VENDOR_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
                    "/lib/systemd/system", "/usr/lib/systemd/system")
SUPERVISOR_START_TIMEOUT = 300.0

_RESTART = {"always": "always", "on-failure": "on-failure", "never": "no"}
_PLAIN = re.compile(r"[A-Za-z0-9_/.:,+=@-]+\Z")

HARDENING_SYSTEM = (
    "NoNewPrivileges=yes",
    "PrivateTmp=yes",
    "ProtectSystem=full",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectHostname=yes",
    "ProtectClock=yes",
    "RestrictSUIDSGID=yes",
    "RestrictRealtime=yes",
    "LockPersonality=yes",
)
#: Not for herder itself: it writes its instances' cgroups under /sys/fs/cgroup.
HARDENING_PROGRAM_ONLY = ("ProtectKernelTunables=yes", "ProtectControlGroups=yes")
HARDENING_USER = ("NoNewPrivileges=yes",)


@dataclass(frozen=True)
class Features:
    """What the host's systemd understands."""

    version: int = 252

    @property
    def restart_steps(self) -> bool:
        return self.version >= 254

    @property
    def exit_type(self) -> bool:
        """ExitType=cgroup (v250): the unit lives while its cgroup has a process."""
        return self.version >= 250


@dataclass(frozen=True)
class UnitExtras:
    """What an exported unit (``herder export systemd``) adds to a program's unit."""

    header: tuple[str, ...] = ()           # comment lines replacing the install header
    oneshot: bool = False                  # Type=oneshot + RemainAfterExit=yes (a completed dependency)
    start_post: tuple[tuple[str, ...], ...] = ()   # ExecStartPost= commands (readiness checks)
    start_timeout: float | None = None     # TimeoutStartSec= (0 = infinity)
    template: bool = False                 # a template unit: "{replica}" becomes %i
    part_of: tuple[str, ...] = ()          # PartOf= (the project's target)
    wanted_by: str | None = None           # [Install] WantedBy= (default multi-user/default.target)


def detect_features() -> Features:
    """`systemctl --version` → Features; an unknown version is treated as 252 (Debian 12)."""
    try:
        out = subprocess.run(["systemctl", "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return Features()
    m = re.match(r"systemd (\d+)", out)
    return Features(int(m.group(1))) if m else Features()


def unit_name(name: str) -> str:
    return name if name.endswith((".service", ".target", ".socket", ".timer")) else f"{name}.service"


def unit_dir(scope: str, home: Path | None = None) -> Path:
    if scope == "system":
        return Path(SYSTEM_UNIT_DIR)
    import os

    base = os.environ.get("XDG_CONFIG_HOME") or str((home or Path.home()) / ".config")
    return Path(base) / "systemd" / "user"


def systemctl(scope: str) -> tuple[str, ...]:
    return ("systemctl",) if scope == "system" else ("systemctl", "--user")


# ---- quoting -------------------------------------------------------------------------

def quote_arg(arg: str) -> str:
    """One ExecStart= word: specifiers (%) and variables ($) kept literal, quoted if needed."""
    s = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN.match(s):
        return s
    s = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{s}"'


def quote_env(key: str, value: str) -> str:
    s = f"{key}={value}".replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'


def seconds(value: float) -> str:
    """A systemd time span: whole seconds as "10s", fractions as "250ms"."""
    if value == int(value):
        return f"{int(value)}s"
    return f"{round(value * 1000)}ms"


def restart_steps(initial: float, factor: float, maximum: float) -> int:
    """How many exponential steps systemd needs to go from RestartSec to RestartMaxDelaySec."""
    if factor <= 1.0 or maximum <= initial or initial <= 0:
        return 0
    return max(1, min(100, math.ceil(math.log(maximum / initial) / math.log(factor))))


# ---- rendering -----------------------------------------------------------------------

def render_unit(spec: InstallSpec, features: Features = Features(), extras: UnitExtras | None = None) -> str:
    """The unit file's exact text."""
    svc = spec.service
    ext = extras or UnitExtras()
    supervisor = spec.kind == "supervisor"
    system = spec.scope == "system"

    def sub(text: str) -> str:
        return text.replace("{replica}", "%i") if ext.template else text

    unit: list[str] = [f"Description={sub(_percent(spec.title))}"]
    if supervisor and system:
        unit += ["Wants=network-online.target", "After=network-online.target"]
    for dep in spec.depends:
        strong = svc.depends_on.get(dep, "started") == "completed"
        unit += [f"{'Requires' if strong else 'Wants'}={unit_name(dep)}", f"After={unit_name(dep)}"]
        if svc.bind:
            unit.append(f"PartOf={unit_name(dep)}")
    unit += [f"PartOf={unit_name(p)}" for p in ext.part_of]
    unit += [f"StartLimitIntervalSec={seconds(svc.start_limit.interval)}",
             f"StartLimitBurst={svc.start_limit.burst}"]
    if spec.start == "disabled":
        unit.append("RefuseManualStart=yes")

    service: list[str] = []
    if ext.oneshot:
        service += ["Type=oneshot", "RemainAfterExit=yes"]
    else:
        service.append("Type=notify" if spec.notify else "Type=exec")
    if spec.notify:
        # herder itself: after a kill of its keeper (the main process) the decision process
        # becomes the keeper and names itself with MAINPID=, which only NotifyAccess=all lets in
        service.append("NotifyAccess=all" if supervisor and features.exit_type else "NotifyAccess=main")
    service.append("ExecStart=" + sub(" ".join(quote_arg(a) for a in svc.command)))
    service += ["ExecStartPost=" + sub(" ".join(quote_arg(a) for a in argv)) for argv in ext.start_post]
    service += [sub(line) for line in hook_lines(svc)]
    if not supervisor:
        service.append(f'ExecReload=/bin/sh -c "kill -s {svc.reload_signal.removeprefix("SIG")} ${{MAINPID}}"')
    for key, value in svc.env.items():
        service.append(f"Environment={sub(quote_env(key, value))}")
    if spec.state_dir:
        service.append(f"Environment={quote_env('HERDER_STATE_DIR', spec.state_dir)}")
    service.append(f"Environment=HERDER_STOP_TIMEOUT_USEC={round(svc.stop_timeout * 1_000_000)}")
    if svc.cwd:
        service.append(f"WorkingDirectory={sub(_percent(svc.cwd))}")
    if system and svc.user:
        service.append(f"User={_percent(svc.user)}")
    if system and svc.group:
        service.append(f"Group={_percent(svc.group)}")
    service.append(f"Restart={_RESTART[svc.restart]}")
    service.append(f"RestartSec={seconds(svc.backoff.initial)}")
    steps = restart_steps(svc.backoff.initial, svc.backoff.factor, svc.backoff.max)
    if features.restart_steps and steps:
        service += [f"RestartSteps={steps}", f"RestartMaxDelaySec={seconds(svc.backoff.max)}"]
    extra = sorted(c for c in svc.success_exit_codes if c != 0)
    if extra:
        service.append("SuccessExitStatus=" + " ".join(str(c) for c in extra))
    for key, codes in (("RestartPreventExitStatus", svc.restart_prevent_exit_codes),
                       ("RestartForceExitStatus", svc.restart_force_exit_codes)):
        if codes:
            service.append(f"{key}=" + " ".join(str(c) for c in codes))
    if ext.start_timeout is not None:
        service.append(f"TimeoutStartSec={seconds(ext.start_timeout) if ext.start_timeout else 'infinity'}")
    elif spec.notify:
        service.append(f"TimeoutStartSec={seconds(SUPERVISOR_START_TIMEOUT if supervisor else 90.0)}")
    if spec.watchdog:
        service.append(f"WatchdogSec={seconds(spec.watchdog)}")
    service.append(f"TimeoutStopSec={seconds(svc.stop_timeout)}")
    service.append(f"KillSignal={svc.stop_signal}")
    service.append("KillMode=" + ("mixed" if supervisor or svc.kill == "main" else "control-group"))
    if supervisor and features.exit_type:
        service.append("ExitType=cgroup")    # a killed keeper is not the end of herder: its services live on
    if supervisor:
        service.append("Delegate=yes")
    if supervisor and system and spec.state_dir and spec.state_dir.startswith("/var/lib/"):
        service.append(f"StateDirectory={_percent(spec.state_dir.removeprefix('/var/lib/'))}")
    if spec.log_dir:
        out = Path(spec.log_dir) / f"{spec.name}.log"
        service.append(f"StandardOutput=append:{_percent(str(out))}")
        if svc.logs.stderr != "merge":
            service.append(f"StandardError=append:{_percent(str(Path(spec.log_dir) / f'{spec.name}.err.log'))}")
    service += limit_lines(svc)
    service += [sub(line) for line in security_lines(svc)]
    if spec.hardening:
        hardening = list(HARDENING_SYSTEM) + ([] if supervisor else list(HARDENING_PROGRAM_ONLY)) if system \
            else list(HARDENING_USER)
        service += [line for line in hardening if line not in service]

    target = ext.wanted_by or ("multi-user.target" if system else "default.target")
    how = "herder install" if supervisor else f"herder service install {spec.name}"
    head = list(ext.header) or [
        f"# Written by herder {__version__} ({how}). Re-run that command to change it;",
        f"# `herder {'uninstall' if supervisor else 'service uninstall ' + spec.name}` removes it.",
        f"# {MARKER}: {spec.kind} {spec.name}",
    ]
    body = ["[Unit]", *unit, "", "[Service]", *service, "", "[Install]", f"WantedBy={target}"]
    return "\n".join(head + body) + "\n"


_HOOK_DIRECTIVES = (("pre_start", "ExecStartPre"), ("post_start", "ExecStartPost"), ("pre_stop", "ExecStop"),
                    ("post_stop", "ExecStopPost"))


def hook_lines(svc: ServiceSpec) -> list[str]:
    """[services.X.hooks] as Exec*= lines (docs/hooks.md); a privileged hook gets systemd's "+"."""
    out = []
    for kind, directive in _HOOK_DIRECTIVES:
        hook = svc.hooks.get(kind)
        if hook is not None:
            out.append(f"{directive}={'+' if hook.privileged else ''}" + " ".join(quote_arg(a) for a in hook.command))
    return out


def security_lines(svc: ServiceSpec) -> list[str]:
    """[services.X.security] as the systemd directives of the same meaning (docs/hooks.md)."""
    sec, out = svc.security, []
    if sec.no_new_privileges:
        out.append("NoNewPrivileges=yes")
    if sec.capabilities is not None:
        caps = " ".join(f"CAP_{c}" for c in sec.capabilities)      # empty: the sets are emptied
        out += [f"CapabilityBoundingSet={caps}", f"AmbientCapabilities={caps}"]
    if sec.umask is not None:
        out.append(f"UMask={sec.umask:04o}")
    if sec.private_tmp:
        out.append("PrivateTmp=yes")
    if sec.read_only_paths:
        out.append("ReadOnlyPaths=" + " ".join(_percent(p) for p in sec.read_only_paths))
    return out


def limit_lines(svc: ServiceSpec) -> list[str]:
    """[services.X.limits] as systemd resource settings (cgroup limits and rlimits)."""
    lim, out = svc.limits, []
    if lim.memory is not None:
        out.append(f"MemoryMax={binary_size(lim.memory)}")
    if lim.cpu is not None:
        out.append(f"CPUQuota={round(lim.cpu * 100)}%")
    for key, name in (("nofile", "LimitNOFILE"), ("nproc", "LimitNPROC"), ("core", "LimitCORE")):
        value = getattr(lim, key)
        if value is not None:
            out.append(f"{name}={'infinity' if value < 0 else value}")
    return out


def binary_size(n: int, suffix: str = "") -> str:
    """Bytes with the largest whole binary unit: 134217728 → "128M" (systemd, Docker), or
    "128Mi" with suffix "i" (Kubernetes)."""
    for unit, mult in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n % mult == 0:
            return f"{n // mult}{unit}{suffix}"
    return str(n)


def render_target(name: str, description: str, wants: list[str], header: tuple[str, ...] = ()) -> str:
    """A target that starts (Wants=) a group of units and is started at boot."""
    lines = [*header, "[Unit]", f"Description={_percent(description)}"]
    lines += [f"Wants={unit_name(w)}" for w in wants]
    lines += ["", "[Install]", "WantedBy=multi-user.target"]
    return "\n".join(lines) + "\n"


def render_timer(description: str, on_calendar: str, unit: str, *, persistent: bool, part_of: str,
                 header: tuple[str, ...] = ()) -> str:
    """A timer that starts `unit` on a calendar (herder's schedule and restart_schedule)."""
    lines = [*header, "[Unit]", f"Description={_percent(description)}", f"PartOf={unit_name(part_of)}", "",
             "[Timer]", f"OnCalendar={on_calendar}", "AccuracySec=1s", f"Unit={unit_name(unit)}"]
    if persistent:
        lines.append("Persistent=true")
    lines += ["", "[Install]", f"WantedBy={unit_name(part_of)}"]
    return "\n".join(lines) + "\n"


def render_restarter(description: str, units: list[str], header: tuple[str, ...] = ()) -> str:
    """A one-shot that restarts `units` if they run (the service a restart timer starts)."""
    lines = [*header, "[Unit]", f"Description={_percent(description)}", "", "[Service]", "Type=oneshot",
             "ExecStart=systemctl try-restart " + " ".join(unit_name(u) for u in units)]
    return "\n".join(lines) + "\n"


def _percent(s: str) -> str:
    return s.replace("%", "%%")


def is_managed(text: str) -> bool:
    return any(line.startswith(f"# {MARKER}:") for line in text.splitlines())


# ---- plans ---------------------------------------------------------------------------

def plan_install(spec: InstallSpec, content: str, old: str | None, record: tuple[Path, str]) -> Plan:
    """Write (or update) the unit, then reload and enable/start per the start type."""
    plan = Plan()
    ctl = systemctl(spec.scope)
    name = unit_name(spec.name)
    path = unit_dir(spec.scope) / name
    fresh, changed = old is None, old is not None and old != content
    if fresh or changed:
        plan.write(path, content)
        plan.write(record[0], record[1])
        if spec.log_dir:
            plan.run("mkdir", "-p", spec.log_dir)
        plan.run(*ctl, "daemon-reload")
    else:
        plan.write(record[0], record[1])
    if spec.start in ("auto", "delayed"):
        if fresh:
            plan.run(*ctl, "enable", "--now", name)
        else:
            plan.run(*ctl, "enable", name)
            plan.run(*ctl, "restart" if changed else "start", name)
    else:
        plan.run(*ctl, "disable", name)
        if changed:
            plan.run(*ctl, "try-restart", name)
    if spec.scope == "user" and spec.start in ("auto", "delayed"):
        plan.run("loginctl", "enable-linger", check=False)
    return plan


def plan_uninstall(spec: InstallSpec, record: Path) -> Plan:
    plan = Plan()
    ctl = systemctl(spec.scope)
    name = unit_name(spec.name)
    plan.run(*ctl, "disable", "--now", name, check=False)
    plan.remove(unit_dir(spec.scope) / name)
    plan.remove(record)
    plan.run(*ctl, "daemon-reload")
    plan.run(*ctl, "reset-failed", name, check=False)
    return plan


def control(scope: str, action: str, name: str) -> tuple[str, ...]:
    """start | stop | restart | status → the systemctl command."""
    extra = ("--no-pager", "--lines=10") if action == "status" else ()
    return (*systemctl(scope), action, *extra, unit_name(name))
