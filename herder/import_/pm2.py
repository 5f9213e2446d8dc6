"""`herder import pm2`: a PM2 ecosystem file (JSON, YAML or ecosystem.config.js) → herder.toml.

Each app becomes a service that runs what PM2 would run: the interpreter PM2 picks, its
arguments, the app's env (with `--env NAME`, env_NAME over it), NODE_APP_INSTANCE per
instance. PM2's defaults that differ from herder's — restart always, SIGINT then SIGKILL
after 1.6 s, restart at once, up to 16 unstable restarts, stderr in its own file — are
written into [defaults] (see pm2_keys.RULES for every key).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from herder.import_ import Options
from herder.import_.draft import Draft, Scope, Table
from herder.import_.pm2_keys import CANONICAL, RULES, Val, canonical, js_key
from herder.import_.pm2_load import Loaded, load
from herder.import_.source import Source, fail
from herder.import_.values import Places, duration, service_name

FORMAT = "pm2"
INTERPRETERS = {".sh": "bash", ".py": "python", ".rb": "ruby", ".php": "php", ".pl": "perl", ".js": "node",
                ".coffee": "coffee", ".ls": "lsc", ".ts": "bun", ".tsx": "bun"}
_OWN = ("name_prefix", "install_url", "source_map_support", "disable_source_map_support", "vizion", "force",
        "post_update", "trace", "disable_trace", "v8", "event_loop_inspector", "deep_monitoring", "pmx",
        "automation", "username", "windowsHide", "kill_retry_time", "write", "io", "execute_command")


@dataclass
class App:
    src: Source
    loaded: Loaded
    path: tuple[Any, ...]
    vals: dict[str, Val]
    sc: Scope
    table: Table
    places: Places


def translate(files: list[Path], places: Places, options: Options) -> Draft:
    draft = Draft(FORMAT)
    taken: set[str] = set()
    sources = []
    for f in files:
        src, loaded = load(f)
        sources.append(places.place(src.path))
        _file(draft, src, loaded, places, options, taken)
    if not draft.services:
        raise fail(str(files[0]), "no app; expected { apps: [ { name, script, … } ] }")
    draft.header = [f"Imported from PM2 by `herder import pm2`: {', '.join(sources)}"
                    + (f" (--env {options.env})" if options.env else "")]
    _defaults(draft, str(files[0]))
    return draft


def _file(draft: Draft, src: Source, loaded: Loaded, places: Places, options: Options, taken: set[str]) -> None:
    data = loaded.data
    prefix: tuple[str, ...]
    top = Scope(draft, draft.herder, "", str(src.path), "", RULES, "")
    if isinstance(data, dict) and isinstance(data.get("apps", data.get("pm2")), list):
        key = "apps" if "apps" in data else "pm2"
        apps, prefix = data[key], (key,)
        for k in data:
            if k in ("deploy", "static"):
                Scope(draft, draft.herder, "", str(src.path), "", RULES, k).drop(k, loaded.line(k), "", RULES[k].note)
            elif k not in (key, "apps", "pm2"):
                top.unknown(k, loaded.line(k), "", "PM2 ignores it too")
    elif isinstance(data, dict):
        apps, prefix = [data], ()
    elif isinstance(data, list):
        apps, prefix = data, ()
    else:
        raise fail(str(src.path), f"holds {type(data).__name__}; expected {{ apps: [...] }} or a list of apps")
    for i, app in enumerate(apps):
        path = (*prefix, i)
        if not isinstance(app, dict):
            raise fail(src.where(loaded.line(*path)), f"apps[{i}] is not an object; expected {{ name, script, … }}")
        _app(draft, src, loaded, path, app, places, options, taken)


def _vals(src: Source, loaded: Loaded, path: tuple[Any, ...],
          app: dict[str, Any]) -> tuple[dict[str, Val], list[tuple[str, Val, str]]]:
    """The app's values by PM2's canonical key, and what PM2 would not use: (status, value, note)."""
    given: dict[str, list[Val]] = {}
    extras: list[tuple[str, Val, str]] = []
    for k, v in app.items():
        line = loaded.line(*path, k)
        name = js_key(k)   # a YAML key may be null, a number or a boolean
        c = canonical(name) or (name if name.startswith("env_") else None)
        val = Val(c or name, name, v, src.where(line), line)
        if c is None:
            extras.append(("unknown", val, "PM2 ignores it too"))
        else:
            given.setdefault(c, []).append(val)
    vals: dict[str, Val] = {}
    for c, vs in given.items():  # PM2: the key's own name if its value is set, else its first alias
        chosen = next((v for v in vs if v.written == c and v.value not in (None, False, 0, "")), vs[0])
        vals[c] = chosen
        extras += [("not carried", v, f"{chosen.written} is given too; PM2 uses that one")
                   for v in vs if v is not chosen]
    return vals, extras


def _app(draft: Draft, src: Source, loaded: Loaded, path: tuple[Any, ...], app: dict[str, Any], places: Places,
         options: Options, taken: set[str]) -> None:
    where = src.where(loaded.line(*path))
    vals, extras = _vals(src, loaded, path, app)
    if "script" not in vals or not isinstance(vals["script"].value, str) or not vals["script"].value:
        raise fail(where, f"apps[{path[-1]}] has no script; expected script: \"app.js\" (PM2 requires it)")
    script = vals["script"].string()
    raw_name = vals["name"].string() if "name" in vals else _default_name(script)
    if options.env and "append_env_to_name" in vals and vals["append_env_to_name"].boolean():
        raw_name += f"-{options.env}"
    svc = service_name(raw_name, taken)
    table = draft.service(svc)
    first = len(draft.entries)
    sc = Scope(draft, table, f"services.{svc}", str(src.path), f"apps[{path[-1]}] ({raw_name})", RULES, "",
               CANONICAL)
    head = Scope(draft, table, "services", str(src.path), sc.scope, RULES, "apps[]")
    if svc != raw_name:
        head.renamed(loaded.line(*path), raw_name, svc)
    else:
        head.carry("", loaded.line(*path), "", svc)
    from herder.import_.pm2_app import run_keys

    run_keys(App(src, loaded, path, vals, sc, table, places), options)
    own = Scope(draft, table, f"services.{svc}", str(src.path), sc.scope, RULES, "*")
    from herder.import_.pm2_app import _show

    for key, v in vals.items():
        if key in _OWN:
            own.drop(v.written, v.line, _show(v), RULES["*"].note)
    for status, v, note in extras:
        if status == "unknown":
            own.unknown(v.written, v.line, _show(v), note)
        else:
            own.drop(v.written, v.line, _show(v), note)
    draft.entries[first:] = sorted(draft.entries[first:], key=lambda e: e.line or 0)


def _default_name(script: str) -> str:
    base = os.path.basename(script)
    dot = base.rfind(".")
    return base[:dot] if dot > 0 else base


def interpreter_for(a: App, script: str, cwd: Path) -> tuple[str, str]:
    """(interpreter or "none", how it was chosen) as PM2's resolveInterpreter picks it."""
    ext = os.path.splitext(script)[1]
    if ext in INTERPRETERS:
        interp = INTERPRETERS[ext]
        if interp == "python" and shutil.which("python") is None and shutil.which("python3") is not None:
            return "python3", "by the .py extension; python3, as PM2 falls back when python is missing"
        return interp, f"by the {ext} extension"
    target = cwd / script if (cwd / script).exists() else (Path(w) if (w := shutil.which(script)) else None)
    if target is None or not target.is_file():
        return "none", "not found now: run directly"
    try:
        with open(target, "rb") as f:
            head = f.read(512)
    except OSError:
        return "none", "unreadable now: run directly"
    if b"\0" in head:
        return "none", "a binary: run directly"
    return "node", "a text file without a known extension: PM2 runs it with node"


def _defaults(draft: Draft, file: str) -> None:
    sc = Scope(draft, draft.defaults, "defaults", file, "(PM2 default)", RULES, "(PM2 default)")
    sc.carry("autorestart", None, "true", "restart", "always")
    sc.carry("kill signal", None, "SIGINT", "stop_signal", "INT")
    sc.carry("kill_timeout", None, "1600", "stop_timeout", duration(1.6))
    sc.approx("max_restarts", None, "16", "start_limit.burst", 16, RULES["max_restarts"].note)
    sc.carry("restart_delay", None, "0", "backoff.initial", "0s", "PM2 restarts at once; delete this key for "
             "herder's exponential backoff")
    sc.carry("error_file", None, "~/.pm2/logs/NAME-error.log", "logs.stderr", "auto", "stderr in its own file, "
             "{log_dir}/NAME.err.log")

