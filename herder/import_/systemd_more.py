"""A systemd unit's resource limits, output, exit statuses, start limit, watchdog and reload
→ herder keys (the rest of systemd_service, kept apart to stay small)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from herder.import_ import systemd_values as sv
from herder.import_.values import duration, size

if TYPE_CHECKING:
    from herder.import_.systemd_service import _Svc
    from herder.import_.systemd_unit import Assignment

_LIMITS = {"LimitNOFILE": "limits.nofile", "LimitNPROC": "limits.nproc", "LimitCORE": "limits.core"}
_RELOAD = re.compile(r"^(?:/usr)?(?:/bin/)?kill\s+(?:-s\s*|--signal\s+|-)(?:SIG)?([A-Z0-9]+)\s+\$\{?MAINPID\}?$")


def _time(s: _Svc, a: Assignment) -> float:
    from herder.import_.systemd_service import _time as time_of

    return time_of(s, a)


def limits_and_logs(s: _Svc) -> None:
    _limits(s)
    _output(s)
    _exits_and_limits(s)


def _limits(s: _Svc) -> None:
    for key, target in _LIMITS.items():
        if (a := s.last("Service", key)) is None:
            continue
        try:
            soft, hard = sv.rlimit(a.value)
        except ValueError as e:
            raise s.bad(a, str(e)) from None
        value: object = "unlimited" if hard == sv.INFINITY else int(hard)
        s.put(a, target, value, "herder sets soft = hard" if soft != hard else "", approx=soft != hard)
    mem = s.last("Service", "MemoryMax") or s.last("Service", "MemoryLimit")
    for a in (s.last("Service", "MemoryMax"), s.last("Service", "MemoryLimit")):
        if a is not None and a is not mem:
            s.put(a, "", None, "MemoryMax= is given too; systemd uses that one")
    if mem is not None:
        try:
            n = sv.size(mem.value)
        except ValueError as e:
            raise s.bad(mem, str(e)) from None
        if n == sv.INFINITY:
            s.put(mem, "limits.memory", None, "no limit: herder's default")
        elif isinstance(n, str):
            total = _mem_total()
            if total:
                s.put(mem, "limits.memory", size(int(total * float(n[:-1]) / 100) // 4096 * 4096),
                      f"{n} of this machine's memory now ({size(total)})", approx=True)
            else:
                s.put(mem, "", None, "a percentage of a memory size herder cannot read here", approx=True)
        elif n > 0:
            s.put(mem, "limits.memory", size(int(n)))
    if (a := s.last("Service", "CPUQuota")) is not None:
        if a.value == "":
            s.put(a, "", None, "empty: no quota")
        else:
            try:
                s.put(a, "limits.cpu", sv.cpu_quota(a.value))
            except ValueError as e:
                raise s.bad(a, str(e)) from None


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _stream(s: _Svc, value: str, stream: str) -> tuple[object, str, bool, str]:
    """(logs value, forward target or "", approximated, note) for StandardOutput=/StandardError=."""
    text, note = s.spec(value)
    for prefix in ("file:", "append:", "truncate:"):
        if text.startswith(prefix):
            path = s.ctx.places.place(text[len(prefix):])
            if prefix == "append:":
                return path, "", bool(note), note
            return path, "", True, (note + "; " if note else "") + ("herder appends to the file" if prefix == "file:"
                                                                     else "herder appends; it does not truncate")
    if text == "null":
        return "null", "", False, ""
    if text == "inherit":
        return ("merge" if stream == "stderr" else "inherit"), "", False, ""
    if text in ("journal", "journal+console"):
        return None, "journald", True, "herder also keeps its log file, and forwards every line to the journal"
    if text in ("syslog", "syslog+console", "kmsg", "kmsg+console"):
        return None, "syslog", True, "herder also keeps its log file, and forwards every line to syslog"
    if text == "tty":
        return "inherit", "", True, "herder's own output"
    return None, "", True, f'"{text}" has no herder equivalent; herder writes its log file'


def _output(s: _Svc) -> None:
    forward: list[str] = []
    for key, stream, target in (("StandardOutput", "stdout", "logs.stdout"), ("StandardError", "stderr",
                                                                              "logs.stderr")):
        if (a := s.last("Service", key)) is None:
            continue
        value, fwd, approx, note = _stream(s, a.value, stream)
        if fwd and fwd not in forward:
            forward.append(fwd)
        s.put(a, target if value is not None or fwd else "", value, note, approx=approx)
    if forward:
        s.table.set("logs.forward", forward)
    if (a := s.last("Service", "StandardInput")) is not None:
        s.put(a, "", None, "herder's services read /dev/null", approx=a.value != "null")


def _exits_and_limits(s: _Svc) -> None:
    codes: list[int] = [0]
    for each in s.unit.all("Service", "SuccessExitStatus"):
        try:
            more, signals = sv.exit_statuses(s.spec(each.value)[0])
        except ValueError as e:
            raise s.bad(each, str(e)) from None
        codes += [c for c in more if c not in codes]
        s.put(each, "success_exit_codes", None, f"signals {' '.join(signals)} not carried" if signals else "",
              approx=bool(signals))
    for each in [x for x in s.unit.sections.get("Service", []) if x.key == "SuccessExitStatus"]:
        s.done(each)
    if len(codes) > 1 and "success_exit_codes" not in s.table.values:
        s.table.set("success_exit_codes", codes)
    for section, key, target in (("Unit", "StartLimitBurst", "start_limit.burst"),
                                 ("Service", "StartLimitBurst", "start_limit.burst"),
                                 ("Unit", "StartLimitIntervalSec", "start_limit.interval"),
                                 ("Service", "StartLimitInterval", "start_limit.interval"),
                                 ("Unit", "StartLimitInterval", "start_limit.interval")):
        if (a := s.last(section, key)) is None:
            continue
        rule = "StartLimitBurst" if "Burst" in key else "StartLimitIntervalSec"
        if "Burst" in key:
            if not a.value.isdigit():
                raise s.bad(a, f'"{a.value}" is not a number; expected a count such as 5')
            n = int(a.value)
            s.put(a, target, max(1, n), "0: herder allows one failed start" if n == 0 else
                  "systemd counts every start; herder counts failed starts", approx=True, rule=rule)
        else:
            t = _time(s, a) if a.value else 0.0
            if t == 0:
                s.put(a, "start_limit.burst", 10000, "0 turns systemd's limit off; herder keeps one: 10000 failed "
                      "starts", approx=True, rule=rule)
            else:
                s.put(a, target, duration(t) if t != sv.INFINITY else "1d", "infinity: 1d" if t == sv.INFINITY else "",
                      approx=t == sv.INFINITY, rule=rule)
    if (a := s.last("Service", "WatchdogSec")) is not None:
        t = _time(s, a) if a.value else 0.0
        if t == 0 or t == sv.INFINITY:
            s.put(a, "", None, "no watchdog")
        else:
            s.put(a, "health.watchdog", duration(t))
            if s.table.values.get("restart", "never") == "never":
                s.table.set("health.action", "none", "Restart=no: herder reports the missed watchdog, restarts nothing")
    if (a := s.last("Service", "ExecReload")) is not None:
        m = _RELOAD.match(s.spec(a.value.lstrip("@-:+!"))[0].strip())
        if m:
            from herder.units import parse_signal

            try:
                s.put(a, "reload_signal", parse_signal(m.group(1)).name.removeprefix("SIG"))
            except ValueError:
                s.put(a, "", None, "not a signal herder knows")
        else:
            s.put(a, "", None, "a reload command: herder's reload sends reload_signal; commands come with issue 18's "
                  "hooks", rule="ExecStartPre")
