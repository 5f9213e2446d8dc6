"""One systemd unit's settings → its herder service (the table is systemd.RULES).

Every assignment of the unit is reported once: the ones translated here, the earlier
values of a setting that a later line overrides (as systemd keeps the last), and every
other key as not carried.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from herder.import_ import systemd_values as sv
from herder.import_.draft import Scope
from herder.import_.source import fail
from herder.import_.systemd import HOOKS, RULES, SECURITY, deps_of, user_scope
from herder.import_.systemd_unit import (
    Assignment,
    Unit,
    expand_specifiers,
    shell_line,
    specifiers,
    split_words,
    substitute,
    variables,
)
from herder.import_.values import duration

if TYPE_CHECKING:
    from herder.import_.systemd import Ctx

_KILL_MODES = {"control-group": ("tree", ""), "process": ("main", ""),
               "mixed": ("tree", "systemd sends the stop signal to the main process only, SIGKILL to all; herder "
                                 "sends both to the whole tree"),
               "none": ("main", "systemd kills nothing; herder still stops the main process")}
_RESTART = {"no": ("never", ""), "always": ("always", ""), "on-failure": ("on-failure", ""),
            "on-abnormal": ("on-failure", "herder also restarts after an unclean exit code"),
            "on-abort": ("on-failure", "herder also restarts after an unclean exit code"),
            "on-watchdog": ("on-failure", "herder restarts after any failure, not only the watchdog's")}


class _Svc:
    def __init__(self, ctx: Ctx, unit: Unit, svc: str) -> None:
        self.ctx, self.unit, self.svc = ctx, unit, svc
        self.table = ctx.draft.service(svc)
        self.sc = Scope(ctx.draft, self.table, f"services.{svc}", str(unit.path), unit.name, RULES, "")
        self.user_scope = user_scope(unit.path)
        self.exact, self.now = specifiers(unit, self.user_scope)
        self.handled: set[int] = set()

    def spec(self, text: str) -> tuple[str, str]:
        """Specifiers expanded; the note says which took this machine's value or were left."""
        out, used_now, unknown = expand_specifiers(text, self.exact, self.now)
        notes = []
        if used_now:
            notes.append(f"{', '.join('%' + c for c in sorted(used_now))}: this machine's value now")
        if unknown:
            notes.append(f"{', '.join('%' + c for c in sorted(unknown))}: not known outside systemd, left as written")
        return out, "; ".join(notes)

    def last(self, section: str, key: str) -> Assignment | None:
        """The value in force; earlier ones are reported as overridden."""
        found = [a for a in self.unit.sections.get(section, []) if a.key == key]
        for a in found[:-1]:
            self.drop(a, a.key, key if key in RULES else "*",
                      f"overridden by {found[-1].file.name}:{found[-1].line}, as systemd keeps the last")
        if found:
            self.done(found[-1])
        return found[-1] if found else None

    def done(self, a: Assignment) -> None:
        self.handled.add(id(a))

    def put(self, a: Assignment, target: str, to: object, note: str = "", approx: bool = False,
            rule: str | None = None) -> None:
        self.done(a)
        self.sc.kind = rule or (a.key if a.key in RULES else ("Limit*" if a.key.startswith("Limit") else "*"))
        self.sc.file = str(a.file)
        if approx:
            self.sc.approx(a.key, a.line, a.value, target, to, note)
        else:
            self.sc.carry(a.key, a.line, a.value, target, to, note)
        self.sc.kind, self.sc.file = "", str(self.unit.path)

    def drop(self, a: Assignment, key: str, rule: str, note: str) -> None:
        self.done(a)
        self.sc.kind, self.sc.file = rule, str(a.file)
        self.sc.drop(key, a.line, a.value, note)
        self.sc.kind, self.sc.file = "", str(self.unit.path)

    def bad(self, a: Assignment, problem: str) -> Exception:
        return fail(f"{a.file}:{a.line}", f"{a.key}: {problem}")


def service(ctx: Ctx, unit: Unit) -> None:
    _, svc = ctx.units[unit.name]
    s = _Svc(ctx, unit, svc)
    if "Service" not in unit.sections:
        raise fail(str(unit.path), "no [Service] section; expected a .service unit with ExecStart=")
    first = len(ctx.draft.entries)
    head = Scope(ctx.draft, s.table, "services", str(unit.path), unit.name, RULES, "NAME.service")
    stem = unit.name.removesuffix(".service")
    if svc != stem:
        head.renamed(None, stem, svc)
    else:
        head.carry("", None, "", svc)
    for key in ("Description", "Documentation"):
        for a in unit.all("Unit", key):
            s.table.intro.append(f"{key}: {a.value}")
            s.put(a, "", None)
    env, file_env = _environment(s)
    kind = s.last("Service", "Type")
    _command(s, env, file_env, kind.value if kind else "simple")
    _type(s, kind)
    _restart(s)
    _stop(s, kind.value if kind else "simple")
    _account_and_folder(s)
    from herder.import_.systemd_more import limits_and_logs

    limits_and_logs(s)
    deps_of(ctx, unit, svc, s.sc)
    for a in unit.all("Unit", "After") + [a for k in ("Before", "Requires", "Wants", "BindsTo", "Requisite",
                                                          "PartOf", "Upholds") for a in unit.all("Unit", k)]:
        s.done(a)
    _rest(s)
    order = {str(f): i for i, f in enumerate(unit.files)}
    ctx.draft.entries[first:] = sorted(ctx.draft.entries[first:], key=lambda e: (order.get(e.file, 0), e.line or 0))


def _environment(s: _Svc) -> tuple[dict[str, str], dict[str, str]]:
    """Environment= (inline) and EnvironmentFile= (read now): (env written, variables from files)."""
    env: dict[str, str] = {}
    for a in s.unit.all("Service", "Environment"):
        text, note = s.spec(a.value)
        for word in split_words(text, f"{a.file}:{a.line}"):
            k, eq, v = word.partition("=")
            if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
                s.ctx.draft.warnings.append(f"{a.file}:{a.line}: Environment: \"{word}\" is not NAME=value; "
                                            "systemd ignores it")
                continue
            env[k] = v
        s.put(a, "env", None, note, approx=bool(note))
    for a in [a for a in s.unit.sections.get("Service", []) if a.key == "Environment"]:
        s.done(a)
    file_env: dict[str, str] = {}
    files = s.unit.all("Service", "EnvironmentFile")
    for i, a in enumerate(files):
        optional = a.value.startswith("-")
        path, note = s.spec(a.value.removeprefix("-"))
        values = _read_env_file(Path(path))
        if values is None:
            s.drop(a, a.key, "EnvironmentFile", f"{path} cannot be read now" + (" (optional for systemd)" if optional
                   else "; systemd would refuse to start the service") + "; herder reads env_file at load")
            continue
        file_env.update(values)
        if i == 0 or "env_file" not in s.table.values:
            s.put(a, "env_file", s.ctx.places.place(path), note, approx=bool(note))
        else:
            env_extra = {k: v for k, v in values.items()}
            env.update(env_extra)
            s.put(a, "env", None, "copied now: herder reads one env_file", approx=True)
    shadowed = sorted(k for k in env if k in file_env)
    for k in shadowed:  # systemd: the file wins over Environment=; herder: env wins over env_file
        del env[k]
    if shadowed:
        s.ctx.draft.warnings.append(f"{s.unit.name}: {', '.join(shadowed)} set by both Environment= and "
                                    "EnvironmentFile=: the file's value is kept, as systemd does")
    if env:
        s.table.set("env", env)
    return env, file_env


def _read_env_file(path: Path) -> dict[str, str] | None:
    if not path.is_file():
        return None
    try:
        from dotenv import dotenv_values

        from herder.import_.source import read_source

        src = read_source(path, "an environment file")
        from io import StringIO

        return {k: v or "" for k, v in dotenv_values(stream=StringIO(src.text), interpolate=False).items()}
    except Exception:  # noqa: BLE001 - an unreadable file is reported as not carried by the caller
        return None


def _command(s: _Svc, env: dict[str, str], file_env: dict[str, str], kind: str) -> None:
    execs = s.unit.all("Service", "ExecStart")
    for a in [a for a in s.unit.sections["Service"] if a.key == "ExecStart"]:
        s.done(a)
    if not execs:
        raise fail(str(s.unit.path), "no ExecStart=; expected ExecStart=/path/to/program ARGS")
    if len(execs) > 1 and kind != "oneshot":
        raise fail(f"{execs[1].file}:{execs[1].line}", "ExecStart: more than one, which systemd allows only for "
                   "Type=oneshot; expected one ExecStart=")
    lines, notes, shell, ignore_fail = [], [], False, False
    for a in execs:
        m = re.match(r"[@\-:+!]*", a.value)
        prefix = m.group() if m else ""
        where = f"{a.file}:{a.line}"
        words = [s.spec(w) for w in split_words(a.value[len(prefix):], where)]
        argv = [w for w, _ in words]
        notes += [n for _, n in words if n]
        if not argv:
            raise fail(where, "ExecStart: no program; expected ExecStart=/path/to/program ARGS")
        if "@" in prefix and len(argv) > 1:
            argv = [argv[0], *argv[2:]]
            notes.append("@: herder cannot set argv[0]; the program sees its path")
        if "-" in prefix:
            ignore_fail = True
        if any(c in prefix for c in "+!"):
            notes.append(f"{prefix}: runs with the service's user and limits under herder")
        used = [] if ":" in prefix else sorted({v for w in argv for v in variables(w)})
        unknown = [v for v in used if v not in env and v not in file_env]
        if used and all(v in env and v not in file_env for v in used):
            argv = substitute(argv, env)
            lines.append(argv)
        elif used:
            shell = True
            lines.append([shell_line(argv)])
            notes.append("$" + ", $".join(used) + " read by /bin/sh at start" + (
                f" ({', '.join(unknown)} not set by the unit: herder's environment gives it)" if unknown else ""))
        else:
            lines.append(argv if ":" not in prefix else [w.replace("$$", "$") for w in argv])
    if len(lines) > 1 or shell:
        import shlex

        parts = [ln[0].removeprefix("set -f; ") if len(ln) == 1 and ln[0].startswith("set -f; ") else
                 "exec " + shlex.join(ln) for ln in lines]
        if len(parts) > 1:
            parts = [p.removeprefix("exec ") for p in parts]
            notes.append("Type=oneshot with several ExecStart=: run one after the other by /bin/sh")
        command: object = ["/bin/sh", "-c", ("set -f; " if shell else "") + " && ".join(parts)]
    else:
        command = lines[0]
    first = execs[0]
    s.done(first)
    s.sc.kind = "ExecStart"
    if notes:
        s.sc.approx("ExecStart", first.line, "; ".join(a.value for a in execs), "command", command, "; ".join(notes))
    else:
        s.sc.carry("ExecStart", first.line, first.value, "command", command)
    s.sc.kind = ""
    if ignore_fail:
        s.table.set("success_exit_codes", list(range(256)), "ExecStart=-: every exit code counts as success")


def _type(s: _Svc, kind: Assignment | None) -> None:
    if kind is None:
        return
    t = kind.value
    if t in ("simple", "exec", "idle"):
        s.put(kind, "", None, "ready when started, as with systemd" if t != "idle" else "idle's delay is not carried")
    elif t in ("notify", "notify-reload"):
        s.put(kind, "ready.notify", True, "READY=1 on $NOTIFY_SOCKET, which herder serves")
    elif t == "oneshot":
        remain = s.last("Service", "RemainAfterExit")
        s.put(kind, "restart", "never", "a job: herder runs it to completion")
        if remain is not None:
            s.put(remain, "", None, "herder shows the finished job as exited (completed)")
    elif t == "forking":
        s.put(kind, "", None, "herder supervises a program that stays in the foreground; run it without "
              "daemonizing (most have a flag such as --nodaemon or -f) and drop PIDFile=", approx=True)
    elif t == "dbus":
        s.put(kind, "", None, "herder does not watch D-Bus names; ready when started", approx=True)
    else:
        raise s.bad(kind, f'unknown Type "{t}"; expected simple, exec, forking, oneshot, dbus, notify, '
                    "notify-reload or idle")


def _restart(s: _Svc) -> None:
    if (a := s.last("Service", "Restart")) is not None:
        if a.value == "on-success":
            s.put(a, "restart", None, "herder has no policy that restarts only after success", approx=True)
        elif a.value in _RESTART:
            to, note = _RESTART[a.value]
            s.put(a, "restart", to, note, approx=bool(note))
        else:
            raise s.bad(a, f'unknown value "{a.value}"; expected no, always, on-success, on-failure, on-abnormal, '
                        "on-abort or on-watchdog")
    if (a := s.last("Service", "RestartSec")) is not None:
        s.put(a, "backoff.initial", duration(_time(s, a)))
    steps, top = s.last("Service", "RestartSteps"), s.last("Service", "RestartMaxDelaySec")
    if top is not None:
        m = _time(s, top)
        s.put(top, "backoff.max", duration(m) if m != sv.INFINITY else "1d", approx=m == sv.INFINITY,
              note="infinity: 1d")
        if steps is not None and steps.value.isdigit() and int(steps.value) > 0:
            start = s.table.values.get("backoff.initial", "100ms")
            from herder.units import parse_duration

            factor = (m / max(parse_duration(start), 1e-3)) ** (1 / int(steps.value)) if m != sv.INFINITY else 2.0
            s.put(steps, "backoff.factor", round(max(1.0, factor), 3), RULES["RestartSteps"].note, approx=True)
    elif steps is not None:
        s.put(steps, "", None, "without RestartMaxDelaySec=, systemd ignores it")


def _time(s: _Svc, a: Assignment) -> float:
    try:
        return sv.timespan(a.value)
    except ValueError as e:
        raise s.bad(a, str(e)) from None


def _stop(s: _Svc, kind: str) -> None:
    both = s.last("Service", "TimeoutSec")
    stop = s.last("Service", "TimeoutStopSec") or both
    if stop is not None:
        t = _time(s, stop)
        s.put(stop, "stop_timeout", duration(t) if t != sv.INFINITY else "1d", "infinity: herder waits 1d, then "
              "SIGKILL" if t == sv.INFINITY else "", approx=t == sv.INFINITY)
    start = s.last("Service", "TimeoutStartSec") or (both if both is not stop else None)
    if start is not None:
        t = _time(s, start)
        if kind in ("notify", "notify-reload"):
            s.put(start, "ready.timeout", duration(t) if t != sv.INFINITY else "1d", "infinity: 1d",
                  approx=t == sv.INFINITY)
        elif start is not both:
            s.put(start, "", None, "herder times a start only with a readiness check", approx=True)
    elif kind in ("notify", "notify-reload"):
        s.table.set("ready.timeout", "90s", "systemd's default TimeoutStartSec=90s")
    if (a := s.last("Service", "KillSignal")) is not None:
        from herder.units import parse_signal

        try:
            s.put(a, "stop_signal", parse_signal(int(a.value) if a.value.isdigit() else a.value).name.removeprefix(
                "SIG"))
        except ValueError:
            raise s.bad(a, f'"{a.value}" is not a signal; expected a name such as SIGTERM or SIGINT') from None
    if (a := s.last("Service", "KillMode")) is not None:
        if a.value not in _KILL_MODES:
            raise s.bad(a, f'unknown value "{a.value}"; expected control-group, mixed, process or none')
        to, note = _KILL_MODES[a.value]
        s.put(a, "kill", to, note, approx=bool(note))


def _account_and_folder(s: _Svc) -> None:
    if (a := s.last("Service", "User")) is not None:
        user, note = s.spec(a.value)
        if user.isdigit():
            import pwd

            with contextlib.suppress(KeyError):
                user, note = pwd.getpwuid(int(user)).pw_name, f"uid {user} is {pwd.getpwuid(int(user)).pw_name} here"
        s.put(a, "user", user, note, approx=bool(note))
    if (a := s.last("Service", "Group")) is not None:
        group, note = s.spec(a.value)
        s.put(a, "group", group, note, approx=bool(note))
    if (a := s.last("Service", "WorkingDirectory")) is not None:
        d, note = s.spec(a.value.removeprefix("-"))
        if d == "~" or d.startswith("~/"):
            owner = s.table.values.get("user")
            if owner:
                import pwd

                try:
                    d = pwd.getpwnam(str(owner)).pw_dir + d[1:]
                    note = (note + "; " if note else "") + f"~ is {owner}'s home now"
                except KeyError:
                    pass
            s.put(a, "cwd", d, note, approx=bool(note))
        else:
            s.put(a, "cwd", s.ctx.places.place(d), note, approx=bool(note))
    elif s.user_scope != user_scope(next(iter(s.ctx.units.values()))[0].path):
        s.table.set("cwd", "~" if s.user_scope else "/")


def _rest(s: _Svc) -> None:
    """Every assignment not translated above: reported as not carried."""
    for section, assignments in s.unit.sections.items():
        for a in assignments:
            if id(a) in s.handled:
                continue
            if section == "Install":
                s.put(a, "autostart", None, RULES["[Install]"].note, rule="[Install]")
            elif section.startswith("X-"):
                s.drop(a, f"[{section}] {a.key}", "*", "an extension section, which systemd ignores")
            elif section == "Service" and a.key in ("StartLimitIntervalSec", "StartLimitAction", "OnFailure"):
                s.done(a)
                s.sc.file = str(a.file)
                s.sc.unknown(a.key, a.line, a.value, "it belongs in [Unit]; systemd ignores it in [Service]")
                s.sc.file = str(s.unit.path)
            elif section not in ("Unit", "Service"):
                s.done(a)
                s.sc.file = str(a.file)
                s.sc.unknown(f"[{section}] {a.key}", a.line, a.value, "not a section of a .service unit; systemd "
                             "ignores it")
                s.sc.file = str(s.unit.path)
            else:
                rule = "ExecStartPre" if a.key in HOOKS else ("(security)" if a.key in SECURITY else (
                    a.key if a.key in RULES else ("Limit*" if a.key.startswith("Limit") else "*")))
                s.drop(a, a.key, rule, RULES[rule].note if rule != "*" else "no herder equivalent")
    for f, line, text, why in s.unit.ignored:
        Scope(s.ctx.draft, s.table, s.sc.prefix, str(f), "", RULES).unknown("", line, text, why)

