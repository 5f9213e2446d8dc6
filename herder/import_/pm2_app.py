"""One PM2 app's keys → its herder service: command, folder, environment, instances,
restart policy and logs (the table is pm2_keys.RULES)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from herder.import_.pm2_keys import RULES, Val, js_key, js_string
from herder.import_.source import fail
from herder.import_.values import duration, size

if TYPE_CHECKING:
    from herder.import_ import Options
    from herder.import_.pm2 import App


def run_keys(a: App, options: Options) -> None:
    cwd = _cwd(a)
    _command(a, cwd)
    n = _instances(a)
    _env(a, options, n)
    _control(a)
    _logs(a, n, cwd)
    _not_carried(a)


def _show(v: Val) -> str:
    try:
        return js_string(v.value) or ""
    except ValueError as e:
        return f"({e})"


def _cwd(a: App) -> Path:
    v = a.vals.get("cwd")
    base = a.src.dir
    if v is None:
        a.sc.approx("cwd", a.loaded.line(*a.path), "", "cwd", a.places.place(base), RULES["cwd"].note)
        return base
    d = Path(os.path.expanduser(v.string()))
    full = d if d.is_absolute() else base / d
    if d.is_absolute():
        a.sc.carry(v.written, v.line, _show(v), "cwd", a.places.place(full))
    else:
        a.sc.approx(v.written, v.line, _show(v), "cwd", a.places.place(full), "relative: PM2 resolves it from the "
                    "folder `pm2 start` runs in; taken from the ecosystem file's folder")
    return full


def _command(a: App, cwd: Path) -> None:
    from herder.import_.pm2 import interpreter_for

    s = a.vals["script"]
    script = s.string()
    args = a.vals.get("args")
    if " " in script:  # PM2: a script with a space runs as `bash -c SCRIPT`, its args replaced
        shell = "bash" if shutil.which("bash") or not shutil.which("sh") else "sh"
        a.sc.carry(s.written, s.line, script, "command", [shell, "-c", script], f"PM2 runs it as `{shell} -c`")
        if args is not None:
            a.sc.drop(args.written, args.line, _show(args), "PM2 drops args when the script has a space")
        return
    interp_v = a.vals.get("exec_interpreter")
    node_args = a.vals.get("node_args")
    if interp_v is not None:
        interp, how = interp_v.string(), ""
    else:
        interp, how = interpreter_for(a, script, cwd)
    words = args.words() if args is not None else []
    nargs = node_args.words() if node_args is not None and interp != "none" else []
    bare = "/" not in script and not (cwd / script).exists() and shutil.which(script) is not None
    if interp == "none":
        argv = [script, *words]
    elif bare:  # found on PATH (npm, yarn …): PM2 runs that file with the interpreter; herder runs it by name
        argv = [script, *words]
        how = f"found on PATH; PM2 runs it with {interp}, herder runs it directly (its #! line)"
    else:
        argv = [interp, *nargs, script, *words]
    if how and interp_v is None and ("directly" in how or "text file" in how or "not found" in how):
        a.sc.approx(s.written, s.line, script, "command", argv, f"interpreter: {interp}, {how}")
    else:
        a.sc.carry(s.written, s.line, script, "command", argv, f"interpreter: {interp}" + (f", {how}" if how else ""))
    for v in (interp_v, args, node_args):
        if v is not None:
            if v is node_args and interp == "none":
                a.sc.drop(v.written, v.line, _show(v), "no interpreter runs")
            else:
                a.sc.carry(v.written, v.line, _show(v), "command")
    if "python" in interp:
        a.table.values.setdefault("env", {})["PYTHONUNBUFFERED"] = "1"


def _instances(a: App) -> int:
    v = a.vals.get("instances")
    mode_v = a.vals.get("exec_mode")
    mode = mode_v.string().removesuffix("_mode") if mode_v is not None else None
    if mode is not None and mode not in ("fork", "cluster"):
        raise mode_v.bad('"fork" or "cluster"') if mode_v else AssertionError
    if v is None:
        n = 1
    else:
        raw = v.value
        if raw == "max":
            raw = 0
        elif isinstance(raw, str):
            digits = raw.strip().lstrip("+-")
            raw = int(raw) if digits.isdigit() and raw.strip()[:1] in "+-0123456789" else 0
        n = int(Val(v.key, v.written, raw, v.where, v.line).number())
        cpus = os.cpu_count() or 1
        if n <= 0:
            real = max(1, cpus + n)
            a.sc.approx(v.written, v.line, _show(v), "replicas", real, f"{_show(v)} means this machine's CPU count "
                        f"{'minus ' + str(-n) if n else ''} now ({cpus} CPUs); herder keeps the number fixed".replace(
                            "  ", " "))
            n = real
        else:
            a.sc.carry(v.written, v.line, _show(v), "replicas", n)
    node_like = a.table.values.get("command", [""])[0] in ("node", "bun") or str(
        a.table.values.get("command", [""])[0]).endswith(("/node", "/bun"))
    cluster = mode == "cluster" or (mode is None and v is not None and node_like)
    if cluster:
        line = mode_v.line if mode_v else (v.line if v else None)
        a.sc.approx("exec_mode", line, mode_v.value if mode_v else "cluster (PM2's default for node with instances)",
                    "replicas", None, "herder runs separate processes; node's cluster module no longer shares one "
                    "listening port among them (give each its own port, or use SO_REUSEPORT)")
    elif mode_v is not None:
        a.sc.carry(mode_v.written, mode_v.line, _show(mode_v), "replicas")
    return n


def _env(a: App, options: Options, n: int) -> None:
    env: dict[str, str] = dict(a.table.values.get("env", {}))
    base = a.vals.get("env")
    chosen = a.vals.get(f"env_{options.env}") if options.env else None
    for v in (base, chosen):
        if v is None:
            continue
        if not isinstance(v.value, dict):
            raise v.bad("an object of NAME: value")
        for k, x in v.value.items():
            if not str(k) or "=" in str(k) or "\0" in str(k):   # execve cannot pass it: never a usable name
                raise fail(v.where, f"{v.written}: {str(k)!r} is not a variable name; expected a NAME without "
                           "\"=\" (herder refuses it too)")
            try:
                s = js_string(x)
            except ValueError as e:
                raise fail(v.where, f"{v.written}.{k}: {e}; expected a string, number or small object") from None
            if s is None:
                a.sc.drop(f"{v.written}.{k}", a.loaded.line(*a.path, v.written, k), "null", "node passes no null")
                continue
            env[js_key(k)] = s
        a.sc.carry(v.written, v.line, f"{len(v.value)} variables", "env", None,
                   "merged over env, as `pm2 start --env` does" if v is chosen else "")
    for key, v in a.vals.items():
        if key.startswith("env_") and v is not chosen:
            a.sc.drop(v.written, v.line, "", f"used with `herder import pm2 --env {key[4:]}`")
    if options.env and chosen is None:
        a.sc.draft.warnings.append(f"{a.src.where(a.loaded.line(*a.path))}: {a.sc.scope} has no env_{options.env}; "
                                   "its env is used alone (PM2 warns the same)")
    port = a.vals.get("port")
    if port is not None:
        env["PORT"] = js_string(int(port.number(0))) or ""
        a.sc.carry(port.written, port.line, _show(port), "env.PORT", None)
    var_v = a.vals.get("instance_var")
    var = var_v.string() if var_v is not None else "NODE_APP_INSTANCE"
    env[var] = "{replica}"
    if var_v is not None:
        a.sc.carry(var_v.written, var_v.line, var, f"env.{var}", None, "= \"{replica}\"")
    inc = a.vals.get("increment_var")
    if inc is not None:
        name = inc.string()
        try:
            start = int(float(env.get(name, "0") or 0))
        except ValueError:
            start = 0
        if n == 1:
            env[name] = str(start)
            a.sc.carry(inc.written, inc.line, name, f"env.{name}", None)
        elif n <= 10 and start % 10 == 0 and start > 0:
            env[name] = f"{start // 10}{{replica}}"
            a.sc.carry(inc.written, inc.line, name, f"env.{name}", None, f"\"{start // 10}{{replica}}\"")
        else:
            env[name] = f"{start}{{replica}}"
            a.sc.approx(inc.written, inc.line, name, f"env.{name}", None, f"herder cannot add numbers: instance i gets "
                        f"{start} followed by i (PM2: {start} + i)")
    a.table.set("env", env)


def _control(a: App) -> None:
    sc, vals = a.sc, a.vals
    if (v := vals.get("autostart")) is not None:
        sc.carry(v.written, v.line, _show(v), "autostart", v.boolean())
    codes_v = vals.get("stop_exit_codes")
    restart = vals.get("autorestart")
    if restart is not None:
        on = restart.boolean()
        sc.carry(restart.written, restart.line, _show(restart), "restart",
                 ("on-failure" if codes_v is not None else "always") if on else "never")
    if codes_v is not None:
        raw = codes_v.value if isinstance(codes_v.value, list) else [codes_v.value]
        codes = [int(Val(codes_v.key, codes_v.written, c, codes_v.where, codes_v.line).number(0)) for c in raw]
        if any(c > 255 for c in codes):
            raise codes_v.bad("exit codes from 0 to 255")
        sc.carry(codes_v.written, codes_v.line, _show(codes_v), "success_exit_codes", codes,
                 "" if restart is not None else "restart = \"on-failure\" so these exits stop the app")
        if restart is None:
            sc.table.set("restart", "on-failure")
    if (v := vals.get("max_restarts")) is not None:
        n = int(v.number(0))
        sc.approx(v.written, v.line, _show(v), "start_limit.burst", max(1, n), RULES["max_restarts"].note)
    if (v := vals.get("min_uptime")) is not None:
        sc.carry(v.written, v.line, _show(v), "min_uptime", duration(v.millis(0) / 1000))
    if (v := vals.get("restart_delay")) is not None:
        ms = v.number(0)
        sc.carry(v.written, v.line, _show(v), "backoff", None, RULES["restart_delay"].note)
        sc.table.set("backoff.initial", duration(ms / 1000))
        sc.table.set("backoff.factor", 1.0)
        sc.table.set("backoff.jitter", 0.0)
    if (v := vals.get("exp_backoff_restart_delay")) is not None:
        ms = v.number(0)
        sc.carry(v.written, v.line, _show(v), "backoff", None, RULES["exp_backoff_restart_delay"].note)
        for k, x in (("initial", duration(ms / 1000)), ("factor", 1.5), ("max", "15s"), ("jitter", 0.0),
                     ("reset_after", "30s")):
            sc.table.set(f"backoff.{k}", x)
    if (v := vals.get("kill_timeout")) is not None:
        sc.carry(v.written, v.line, _show(v), "stop_timeout", duration(v.number(0) / 1000))
    if (v := vals.get("treekill")) is not None:
        sc.carry(v.written, v.line, _show(v), "kill", "tree" if v.boolean() else "main")
    if (v := vals.get("max_memory_restart")) is not None:
        n = v.bytes_()
        if n <= 0:
            raise v.bad("a size above zero")
        sc.approx(v.written, v.line, _show(v), "limits.max_memory_restart", size(n), RULES["max_memory_restart"].note)
    if (v := vals.get("uid")) is not None:
        sc.carry(v.written, v.line, _show(v), "user", js_string(v.value))
    if (v := vals.get("gid")) is not None:
        sc.carry(v.written, v.line, _show(v), "group", js_string(v.value))


def _logs(a: App, n: int, cwd: Path) -> None:
    sc, vals = a.sc, a.vals
    merge = vals.get("merge_logs")
    for key, target in (("out_file", "logs.stdout"), ("error_file", "logs.stderr")):
        v = vals.get(key)
        if v is None:
            continue
        if v.value is False or v.value == "/dev/null":
            sc.carry(v.written, v.line, _show(v), target, "null")
            continue
        path = a.places.place(os.path.expanduser(v.string()), cwd)
        if n > 1:
            sc.approx(v.written, v.line, _show(v), target, path, RULES[key].note.split("; ", 1)[1])
        else:
            sc.carry(v.written, v.line, _show(v), target, path)
    if merge is not None:
        if n > 1 and merge.boolean():
            sc.approx(merge.written, merge.line, _show(merge), "logs", None, RULES["merge_logs"].note)
        else:
            sc.carry(merge.written, merge.line, _show(merge))
    if (v := vals.get("disable_logs")) is not None:
        if v.boolean():
            sc.carry(v.written, v.line, _show(v), "logs.stdout", "null")
            sc.table.set("logs.stderr", "null")
        else:
            sc.carry(v.written, v.line, _show(v))
    if (v := vals.get("log_file")) is not None:
        sc.drop(v.written, v.line, _show(v), RULES["log_file"].note)
    for key in ("log_date_format", "time"):
        if (v := vals.get(key)) is not None:
            sc.approx(v.written, v.line, _show(v), "logs.timestamps", True, RULES[key].note)
    if (v := vals.get("log_type")) is not None:
        if v.string() == "json":
            sc.approx(v.written, v.line, _show(v), "logs.format", "json", RULES["log_type"].note)
        else:
            raise v.bad('"json"')


def _not_carried(a: App) -> None:
    for key in ("cron_restart", "watch", "ignore_watch", "watch_options", "watch_delay", "wait_ready",
                "listen_timeout", "shutdown_with_message", "namespace", "pid_file", "filter_env"):
        v = a.vals.get(key)
        if v is None:
            continue
        if key in ("watch", "wait_ready", "shutdown_with_message") and v.value is False:
            a.sc.carry(v.written, v.line, _show(v))
        else:
            a.sc.drop(v.written, v.line, _show(v), RULES[key].note)
    if (v := a.vals.get("append_env_to_name")) is not None:
        a.sc.carry(v.written, v.line, _show(v))
    if (v := a.vals.get("name")) is not None:
        a.sc.carry(v.written, v.line, _show(v))

