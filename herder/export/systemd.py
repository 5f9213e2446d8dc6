"""`herder export systemd`: one unit per service, template units for replicas, one target.

The units are rendered by herder/platform/systemd.py, the same renderer `herder service
install` uses, so "on-failure", "10s" or a quoted argument mean the same in both. What an
export adds (a one-shot, a readiness check, template instances, the project's target)
goes through :class:`herder.platform.systemd.UnitExtras`.

Readiness is what makes systemd's ordering match herder's: a unit only becomes active (and
After= dependents only start) once its start finished. ``ready.notify`` is systemd's own
Type=notify; an http/tcp/exec/log check becomes an ExecStartPost= that polls until it
passes, bounded by TimeoutStartSec= (ready.timeout). A service something waits on to
complete is Type=oneshot with RemainAfterExit=yes, so Requires=+After= start the
dependent only after it exited successfully. Replicas are instances NAME@0 … NAME@N-1 of
a template unit, "{replica}" becoming %i.

Unit names are PROJECT-SERVICE, so that a service called "ssh" or "dbus" never takes a
name the system already uses. The units target systemd 252 (Debian 12): the exponential
restart delay needs 254 (RestartSteps=), so only backoff.initial is carried.
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import PurePosixPath

from herder.config.lifecycle import HOOK_KINDS, Hook, Hooks, Security
from herder.config.model import ServiceSpec
from herder.export import probes
from herder.export.oncalendar import Untranslatable, on_calendar
from herder.export.project import Project, replica_free
from herder.export.report import APPROXIMATED as A
from herder.export.report import CARRIED as C
from herder.export.report import NOT_CARRIED as N
from herder.export.report import Mapping, Recorder, Report, Rule
from herder.platform import systemd as sd
from herder.platform.spec import InstallSpec

FEATURES = sd.Features(252)
PY = "the host needs python3"

RULES: tuple[Rule, ...] = (
    Rule("command", "ExecStart=", C),
    Rule("command", "ExecStart=", A, "a bare program name is looked up in systemd's own PATH "
         "(/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin), not herder's", when="bare"),
    Rule("command", "ExecStart=", A, "a relative program path is made absolute against the working directory",
         when="relative"),
    Rule("shell", "ExecStart=/bin/sh -c", C),
    Rule("cwd", "WorkingDirectory=", C),
    Rule("cwd", "WorkingDirectory=", A, "not set: herder uses its own working directory; the unit uses the "
         "config's folder", when="unset"),
    Rule("env", "Environment=", C),
    Rule("env_file", "Environment=", C, "read at export time and written inline"),
    Rule("{replica}", "%i", C, "the template unit's instance name is the replica number (0 with one replica)"),
    Rule("user", "User=", C, "the account must exist on the host"),
    Rule("group", "Group=", C),
    Rule("replicas", "NAME@.service, instances NAME@0 … NAME@N-1", C),
    Rule("autostart", "not in the target's Wants=", C, "`systemctl start UNIT` starts it"),
    Rule("restart", "Restart=always", C, when="always"),
    Rule("restart", "Restart=on-failure", C, when="on-failure"),
    Rule("restart", "Restart=no", C, when="never"),
    Rule("restart", "Restart=on-failure", A, "a one-shot (Type=oneshot) cannot have Restart=always",
         when="oneshot-always"),
    Rule("success_exit_codes", "SuccessExitStatus=", C),
    Rule("min_uptime", "—", N, "systemd has no minimum run time: StartLimitBurst= counts every start"),
    Rule("backoff.initial", "RestartSec=", C),
    Rule("backoff", "—", A, "systemd 252 waits RestartSec= every time; 254 and later could grow it "
         "(RestartSteps=, RestartMaxDelaySec=)"),
    Rule("start_limit", "StartLimitBurst= + StartLimitIntervalSec=", C),
    Rule("stop_signal", "KillSignal=", C),
    Rule("stop_timeout", "TimeoutStopSec=", C, "then SIGKILL to the whole control group"),
    Rule("kill", "KillMode=control-group", C, when="tree"),
    Rule("kill", "KillMode=control-group", A, "systemd signals the whole control group", when="group"),
    Rule("kill", "KillMode=mixed", C, "stop signal to the main process, SIGKILL to the rest", when="main"),
    Rule("reload_signal", "ExecReload=", C, "`systemctl reload UNIT` sends it"),
    Rule("critical", "—", N, "not set: the nearest is OnFailure= on a unit that stops the target (systemd has no "
         "exit code for a whole target)"),
    Rule("critical_exit_code", "—", N, "goes with critical"),
    Rule("depends_on", "Wants= + After=", A, "After= waits until the dependency's start finished, with its "
         "readiness check when it has one", when="started"),
    Rule("depends_on", "Wants= + After=", A, "After= waits until the dependency's start finished, its readiness "
         "check included; if that start fails, systemd starts this unit anyway (herder would wait). Requires= "
         "would restart this unit at each automatic restart of the dependency", when="ready"),
    Rule("depends_on", "Wants= + After=", A, "as for ready: systemd has no health state", when="healthy"),
    Rule("depends_on", "Requires= + After= on a Type=oneshot unit", C, "the dependent starts only after the "
         "one-shot exited successfully; a failure fails the dependent's start", when="completed"),
    Rule("bind", "PartOf=", A, "a stop or restart of the dependency through systemctl is passed on; an automatic "
         "restart is not"),
    Rule("logs", "—", N, "output goes to the journal (`journalctl -u UNIT`), which rotates it"),
    Rule("ready.notify", "Type=notify", C),
    Rule("ready.http", "ExecStartPost=", C, f"polls with Python's urllib until it answers ({PY})"),
    Rule("ready.tcp", "ExecStartPost=", C, f"polls with Python's socket until it connects ({PY})"),
    Rule("ready.exec", "ExecStartPost=", C, f"runs the command until it exits 0 ({PY})"),
    Rule("ready.log", "ExecStartPost=", A, f"reads this start's journal (journalctl) until a line matches ({PY})"),
    Rule("ready", "—", A, "a one-shot is ready when it completed: its check is not used", when="oneshot"),
    Rule("ready.timeout", "TimeoutStartSec=", C, "0s becomes infinity"),
    Rule("ready.interval", "ExecStartPost= poll interval", C),
    Rule("ready.attempt_timeout", "ExecStartPost= attempt timeout", C),
    Rule("health", "—", N, "systemd has no liveness probes; only the watchdog is carried"),
    Rule("health.watchdog", "WatchdogSec=", C, "the program sends WATCHDOG=1 (with ready.notify)", when="notify"),
    Rule("health.watchdog", "—", N, "the watchdog needs the notify socket: set ready.notify = true", when="nonotify"),
    Rule("limits.memory", "MemoryMax=", C, "needs the memory controller (not delegated to containers on every "
         "host)"),
    Rule("limits.cpu", "CPUQuota=", C),
    Rule("limits.max_memory_restart", "—", N, "no RSS watch: the nearest is MemoryMax= (OOM kill, then Restart=)"),
    Rule("limits.memory_check_interval", "—", N, "goes with max_memory_restart"),
    Rule("limits.nofile", "LimitNOFILE=", C),
    Rule("limits.nproc", "LimitNPROC=", C),
    Rule("limits.core", "LimitCORE=", C),
    Rule("target", "PROJECT.target", C, "Wants= every autostart unit; each unit is PartOf= it"),
    Rule("restart_prevent_exit_codes", "RestartPreventExitStatus=", C),
    Rule("restart_force_exit_codes", "RestartForceExitStatus=", C),
    Rule("hooks.pre_start", "ExecStartPre=", A, "its own timeout is not carried: TimeoutStartSec= bounds it"),
    Rule("hooks.post_start", "ExecStartPost=", A, "after the unit's readiness (Type=notify, or the readiness poll "
         "before it); its own timeout is not carried: TimeoutStartSec= bounds it"),
    Rule("hooks.pre_stop", "ExecStop=", A, "runs before KillSignal=, also when the process exited by itself; its "
         "own timeout is not carried: TimeoutStopSec= bounds it"),
    Rule("hooks.post_stop", "ExecStopPost=", A, "its own timeout is not carried: TimeoutStopSec= bounds it"),
    Rule("security.no_new_privileges", "NoNewPrivileges=yes", C),
    Rule("security.capabilities", "CapabilityBoundingSet= + AmbientCapabilities=", C),
    Rule("security.umask", "UMask=", C),
    Rule("security.clear_env", "—", C, "a unit's environment is already only what it sets"),
    Rule("security.private_tmp", "PrivateTmp=yes", C),
    Rule("security.read_only_paths", "ReadOnlyPaths=", C),
    Rule("schedule", "PROJECT-NAME.timer: OnCalendar=", C, "the target starts the timer, the timer the service"),
    Rule("schedule", "—", N, "OnCalendar= cannot say it", when="untranslatable"),
    Rule("schedule", "—", N, "a timer starts one unit: with replicas, start NAME@0 … by hand", when="replicas"),
    Rule("restart_schedule", "PROJECT-NAME-restart.timer + .service", C, "`systemctl try-restart`: only when it "
         "runs"),
    Rule("restart_schedule", "PROJECT-NAME-restart.timer + .service", A, "`systemctl try-restart` restarts the "
         "instances together, not one by one", when="replicas"),
    Rule("restart_schedule", "—", N, "OnCalendar= cannot say it", when="untranslatable"),
    Rule("timezone", "OnCalendar= … ZONE", C),
    Rule("overlap", "—", N, "a timer does not start a unit that is still active: a run due meanwhile is skipped "
         "(overlap = \"skip\")"),
    Rule("missed", "Persistent=true", C, "runs once at start what fell due while the machine was down"),
)

MAPPING = Mapping("systemd", RULES)


def unit_base(project: Project, name: str) -> str:
    return f"{project.name}-{name}"


def instances(project: Project, name: str) -> list[str]:
    """The unit names that run `name`: NAME, or NAME@0 … NAME@N-1."""
    base, spec = unit_base(project, name), project.services[name]
    return [base] if spec.replicas == 1 else [f"{base}@{i}" for i in range(spec.replicas)]


def target_name(project: Project) -> str:
    return f"{project.name}.target"


def header(project: Project, name: str) -> tuple[str, ...]:
    return (f"# Generated by `herder export systemd` from {project.config} (service {name}): edit that file and "
            "export again.",
            f"# Install: copy the units to /etc/systemd/system, then `systemctl daemon-reload` and "
            f"`systemctl enable --now {target_name(project)}`.")


def unit(project: Project, name: str, rec: Recorder) -> tuple[str, str]:
    """(file name, text) of one service's unit."""
    spec = project.services[name]
    template = spec.replicas > 1
    oneshot = "completed" in project.dependents(name).values()
    cwd = spec.cwd or project.base
    rec.note("cwd", "" if spec.cwd else "unset", detail="" if spec.cwd else cwd)
    command = list(spec.command)
    prog = command[0]
    if spec.shell:
        rec.note("shell")
    if prog.startswith("/"):
        rec.note("command")
    elif "/" in prog:
        command[0] = str(PurePosixPath(cwd) / prog)
        rec.note("command", "relative", detail=command[0])
    else:
        rec.note("command", "bare", detail=prog)
    if template:
        rec.note("replicas")
    if project.uses_replica(name):
        rec.note("{replica}")
    if spec.env:
        rec.note("env")
    if spec.user:
        rec.note("user")
    if spec.group:
        rec.note("group")
    restart = spec.restart
    if oneshot and restart == "always":
        rec.note("restart", "oneshot-always")
        restart = "on-failure"
    else:
        rec.note("restart", restart)
    if restart != "never":
        rec.note("backoff.initial")
    if spec.backoff.factor > 1.0 and restart != "never":
        rec.note("backoff", detail=f"RestartSec={sd.seconds(spec.backoff.initial)} every time")
    rec.note("start_limit")
    rec.note("stop_signal")
    rec.note("stop_timeout")
    rec.note("kill", spec.kill)
    rec.note("reload_signal")
    depends: dict[str, str] = {}
    for dep, cond in spec.depends_on.items():
        if dep not in project.services:
            continue
        rec.note("depends_on", cond, detail=f"{dep} = {cond}")
        for inst in instances(project, dep):
            depends[inst] = cond
    if spec.bind:
        rec.note("bind")
    for key in ("memory", "cpu", "nofile", "nproc", "core"):
        if getattr(spec.limits, key) is not None:
            rec.note(f"limits.{key}")

    ready = spec.ready
    start_post: tuple[tuple[str, ...], ...] = ()
    start_timeout: float | None = None
    kind = ready.kind
    if kind is not None and oneshot:
        rec.note("ready", "oneshot")
        rec.skip("ready")
    elif kind is not None:
        rec.note(f"ready.{kind}")
        rec.note("ready.timeout")
        start_timeout = ready.timeout
        if kind != "notify":
            rec.note("ready.interval")
            rec.note("ready.attempt_timeout")
            poll = probes.poll(ready)
            start_post = (poll,) if poll else ()
    else:
        rec.skip("ready")
    notify = kind == "notify" and not oneshot
    watchdog = None
    if spec.health.watchdog is not None:
        rec.note("health.watchdog", "notify" if notify else "nonotify")
        watchdog = spec.health.watchdog if notify else None
    if spec.health.kind is not None:
        rec.note("health", detail=f"health.{spec.health.kind} and its settings")
        rec.skip("health")

    hooks = _hooks(spec, cwd, template, rec)
    for key in ("restart_prevent_exit_codes", "restart_force_exit_codes"):
        if getattr(spec, key):
            rec.note(key)
    for key in ("no_new_privileges", "capabilities", "umask", "clear_env", "private_tmp", "read_only_paths"):
        if getattr(spec.security, key) != getattr(_NO_SECURITY, key):
            rec.note(f"security.{key}")

    if not template:   # one instance: {replica} is 0, as herder substitutes it
        command = [replica_free(a) for a in command]
        cwd = replica_free(cwd)
    env = spec.env if template else {k: replica_free(v) for k, v in spec.env.items()}
    shown = dataclasses.replace(spec, command=tuple(command), cwd=cwd, env=env, depends_on=depends, restart=restart,
                                hooks=hooks)
    base = unit_base(project, name)
    install = InstallSpec(f"{base}@" if template else base, shown, notify=notify, hardening=False,
                          watchdog=watchdog, description=f"{name} ({project.name}, exported by herder)"
                          + (" replica {replica}" if template else ""))
    extras = sd.UnitExtras(header=header(project, name), oneshot=oneshot, start_post=start_post,
                           start_timeout=start_timeout, template=template, part_of=(target_name(project),),
                           wanted_by=target_name(project))
    return sd.unit_name(install.name), sd.render_unit(install, FEATURES, extras)


_NO_SECURITY = Security()


def _hooks(spec: ServiceSpec, cwd: str, template: bool, rec: Recorder) -> Hooks:
    """The hooks as the unit runs them: a relative program made absolute against the working
    directory (as ExecStart=), {replica} as 0 in a unit with one instance."""
    out: dict[str, Hook] = {}
    for kind in HOOK_KINDS:
        hook = spec.hooks.get(kind)
        if hook is None:
            continue
        argv = list(hook.command)
        if "/" in argv[0] and not argv[0].startswith("/"):
            argv[0] = str(PurePosixPath(cwd) / argv[0])
        if not template:
            argv = [replica_free(a) for a in argv]
        out[kind] = dataclasses.replace(hook, command=tuple(argv))
        rec.note(f"hooks.{kind}", detail=shlex.join(argv))
    return dataclasses.replace(spec.hooks, **out)


def calendar_units(project: Project, name: str, rec: Recorder) -> dict[str, str]:
    """The timers of `schedule` and `restart_schedule` (and the one-shot a restart timer starts)."""
    spec, base = project.services[name], unit_base(project, name)
    head = (f"# Generated by `herder export systemd` from {project.config} (service {name}).",)
    out: dict[str, str] = {}
    for key, expr in (("schedule", spec.schedule), ("restart_schedule", spec.restart_schedule)):
        if expr is None:
            continue
        try:
            when = on_calendar(expr, spec.timezone)
        except Untranslatable as e:
            rec.note(key, "untranslatable", detail=f"{expr}: {e}")
            rec.skip("timezone", "overlap", "missed")
            continue
        if key == "schedule" and spec.replicas > 1:
            rec.note(key, "replicas")
            continue
        rec.note(key, "replicas" if spec.replicas > 1 else "", detail=f"OnCalendar={when}")
        if spec.timezone:
            rec.note("timezone")
        if key == "schedule":
            if spec.missed == "run":
                rec.note("missed")
            out[f"{base}.timer"] = sd.render_timer(f"schedule of {name} ({project.name}, exported by herder)", when,
                                                   base, persistent=spec.missed == "run",
                                                   part_of=target_name(project), header=head)
        else:
            out[f"{base}-restart.service"] = sd.render_restarter(
                f"restart_schedule of {name} ({project.name}, exported by herder)", instances(project, name),
                header=head)
            out[f"{base}-restart.timer"] = sd.render_timer(
                f"restart_schedule of {name} ({project.name}, exported by herder)", when, f"{base}-restart",
                persistent=False, part_of=target_name(project), header=head)
    return out


def build(project: Project, report: Report) -> dict[str, str]:
    files: dict[str, str] = {}
    wants: list[str] = []
    for name, spec in project.services.items():
        rec = Recorder(MAPPING, report, name, spec)
        fname, text = unit(project, name, rec)
        files[fname] = text
        timers = calendar_units(project, name, rec)
        files.update(timers)
        wants += [t for t in timers if t.endswith(".timer")]
        if spec.autostart and spec.schedule is None:
            wants += instances(project, name)
        elif not spec.autostart:
            rec.note("autostart")
        rec.note("target")
        rec.finish()
    tname = target_name(project)
    files[tname] = sd.render_target(tname, f"{project.name} (exported by herder)", wants,
                                    header=(f"# Generated by `herder export systemd` from {project.config}.",))
    return files
