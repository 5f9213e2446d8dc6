"""One supervisord [program:x] section → one herder service.

supervisord computes each of a program's `numprocs` processes separately: the
environment, directory, log files, command and name are expanded per `process_num`.
They are computed here the same way, for every process, and also once as a herder
template with `{replica}`; a template that does not give supervisord's value for every
process is reported as approximated (supervisord_expand explains the marker).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from herder.import_.draft import Scope
from herder.import_.source import fail
from herder.import_.supervisord_expand import MARK, Typed, expand, key_value_pairs
from herder.import_.supervisord_ini import Value, here
from herder.import_.values import duration, service_name

if TYPE_CHECKING:
    from herder.import_.supervisord import Context

MAX_REPLICAS = 10000
PER_PROCESS = ("environment", "directory", "stdout_logfile", "stderr_logfile", "command", "process_name")
_DROPPED = ("stdout_capture_maxbytes", "stderr_capture_maxbytes", "stdout_events_enabled", "stderr_events_enabled",
            "serverurl", "umask")


class _Program:
    def __init__(self, ctx: Context, section: str, name: str, group: str) -> None:
        from herder.import_.supervisord import _node

        self.ctx, self.section, self.name = ctx, section, name
        self.base: dict[str, Any] = {**ctx.env_names, "program_name": name, "group_name": group,
                                     "host_node_name": _node()}

    def val(self, key: str) -> Value | None:
        return self.ctx.ini.get(self.section, key)

    def typed(self, key: str) -> Typed | None:
        v = self.val(key)
        if v is None:
            return None
        return Typed(v, expand(v.raw.replace("%(here)s", here(v)), {**self.base, "here": here(v)}, v, key))

    def process(self, num: int | None, numprocs: int) -> dict[str, Any]:
        """The per-process values for process_num `num`, or (None) the {replica} template."""
        names = {**self.base, "process_num": num if num is not None else 0, "numprocs": numprocs}

        def ex(key: str, default: str | None = None, twice: bool = False) -> str | None:
            v = self.val(key)
            if v is None and default is None:
                return None
            v = v or Value(default or "", self.ctx.ini.where(self.section)[0], self.ctx.ini.where(self.section)[1])
            raw = v.raw.replace("%(here)s", here(v))
            if num is None:
                from herder.import_.supervisord_expand import _PROCESS_NUM

                raw = _PROCESS_NUM.sub(MARK, raw)
            out = expand(raw, {**names, "here": here(v)}, v, key)
            # log files: supervisord expands them twice
            return expand(out, {**names, "here": here(v)}, v, key) if twice else out

        env: dict[str, str] = {}
        env_text = ex("environment")
        if env_text is not None:
            v = self.val("environment")
            assert v is not None
            env = key_value_pairs(env_text, v, "environment")
            names.update({f"ENV_{k}": x for k, x in env.items()})
        out: dict[str, Any] = {"environment": env}
        for key in ("directory", "command"):
            out[key] = ex(key)
        for key in ("stdout_logfile", "stderr_logfile"):
            out[key] = ex(key, twice=True)
        out["process_name"] = ex("process_name", "%(program_name)s")
        return out


def _sub(x: Any, i: int) -> Any:
    if isinstance(x, str):
        return x.replace("{replica}", str(i))
    if isinstance(x, dict):
        return {k: _sub(v, i) for k, v in x.items()}
    if isinstance(x, list):
        return [_sub(v, i) for v in x]
    return x


def _unmark(x: Any) -> Any:
    if isinstance(x, str):
        return x.replace(MARK, "{replica}")
    if isinstance(x, dict):
        return {_unmark(k): _unmark(v) for k, v in x.items()}
    return x


def _difference(a: Any, b: Any) -> tuple[str, str]:
    """The first part where supervisord's value `a` and herder's `b` differ, shown both ways."""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        x, y = next((x, y) for x, y in zip(a, b, strict=True) if x != y)
        return repr(x), repr(y)
    if isinstance(a, dict) and isinstance(b, dict):
        k = next(k for k in [*a, *b] if a.get(k) != b.get(k))
        return f"{k}={a.get(k)!r}", f"{k}={b.get(k)!r}"
    return repr(a), repr(b)


def _from_environment(ctx: Context, v: Value) -> dict[str, str]:
    """The variables of `herder import`'s own environment that `v` expands (%(ENV_X)s)."""
    import os
    import re

    return {m: os.environ[m] for m in re.findall(r"%\(ENV_(\w+)\)", v.raw)
            if m in os.environ and ctx.env_names.get(f"ENV_{m}") == os.environ[m]}


def program(ctx: Context, section: str, name: str, group: str, group_prio: int | None) -> None:
    from herder.import_.supervisord import RULES, _check_name

    f, line = ctx.ini.where(section)
    _check_name(name, f"{f}:{line}", "program")
    svc = service_name(name.strip(), ctx.taken)
    table = ctx.draft.service(svc)
    first = len(ctx.draft.entries)
    head = Scope(ctx.draft, table, "services", str(f), f"[{section}]", RULES, "[program:x]")
    if svc == name:
        head.carry("", line, "", svc)
    else:
        head.renamed(line, name, svc)
    sc = ctx.scope(table, f"services.{svc}", section)
    p = _Program(ctx, section, name, group)

    def t(key: str) -> Typed | None:
        return p.typed(key)

    numprocs = t("numprocs").integer("numprocs", 0) if t("numprocs") else 1  # type: ignore[union-attr]
    start = t("numprocs_start").integer("numprocs_start") if t("numprocs_start") else 0  # type: ignore[union-attr]
    if numprocs > MAX_REPLICAS:
        v = p.val("numprocs")
        raise fail(f"{v.file}:{v.line}" if v else str(f), f"numprocs: {numprocs} is too many; expected at most "
                   f"{MAX_REPLICAS} (herder's replicas limit)")
    pn = p.val("process_name")
    if numprocs > 1 and (pn is None or "%(process_num)" not in pn.raw):
        where = f"{pn.file}:{pn.line}" if pn else f"{f}:{line}"
        raise fail(where, "process_name: %(process_num) must be in process_name when numprocs > 1 (supervisord "
                   "requires it); expected process_name = %(program_name)s_%(process_num)02d")
    exact = [p.process(start + i, numprocs) for i in range(max(numprocs, 1))]
    tmpl = {k: _unmark(x) for k, x in p.process(None, numprocs).items()}
    n = max(numprocs, 1)

    def same(key: str, value: Any) -> bool:
        return all(_sub(value, i) == exact[i][key] for i in range(n))

    def per_process_note(key: str, _: str) -> str:
        for i in range(n):
            ours = _sub(tmpl[key] if key != "command" else shlex.split(tmpl[key]), i)
            if ours != exact[i][key]:
                theirs, mine = _difference(exact[i][key], ours)
                return f"supervisord gives process {start + i} {theirs}, herder gives replica {i} {mine}"
        return ""

    _command(sc, p, exact, tmpl, n, same, per_process_note)
    if t("numprocs"):
        v = p.val("numprocs")
        assert v is not None
        if numprocs == 0:
            sc.approx("numprocs", v.line, v.raw, "autostart", False, "supervisord runs no process; herder needs at "
                      "least one replica, so the service is not started")
        else:
            sc.carry("numprocs", v.line, v.raw, "replicas", numprocs)
    if pn is not None:
        names = [exact[i]["process_name"] for i in range(n)]
        ours = [svc] if n == 1 else [f"{svc}.{i}" for i in range(n)]
        if names == ours:
            sc.carry("process_name", pn.line, pn.raw)
        else:
            sc.approx("process_name", pn.line, pn.raw, "replicas", None,
                      f"herder names the instances {', '.join(ours[:3])}{' …' if n > 3 else ''} "
                      f"(supervisord: {', '.join(names[:3])}{' …' if n > 3 else ''})")
    if p.val("numprocs_start") is not None:
        v = p.val("numprocs_start")
        assert v is not None
        if start == 0:
            sc.carry("numprocs_start", v.line, v.raw)
        else:
            sc.approx("numprocs_start", v.line, v.raw, "replicas", None, "herder numbers replicas from 0; "
                      "values with %(process_num) differ (see the notes on them)")
    _environment(sc, p, exact, tmpl, same, per_process_note)
    _directory(ctx, sc, p, exact, tmpl, same, per_process_note)
    from herder.import_.supervisord_logs import logs

    logs(ctx, sc, p, exact, tmpl, n, same)
    _process_control(ctx, sc, p, svc, group_prio)
    for key in ctx.ini.keys(section):
        v = p.val(key)
        assert v is not None
        if key in _DROPPED:
            sc.drop(key, v.line, v.raw, RULES[key].note)
        elif key not in RULES:
            sc.unknown(key, v.line, v.raw, "supervisord does not know it either; it ignores it")
    _import_time_values(ctx, sc, p, first)
    ctx.draft.entries[first:] = sorted(ctx.draft.entries[first:], key=lambda e: e.line or 0)


def _import_time_values(ctx: Context, sc: Scope, p: _Program, first: int) -> None:
    """A carried value that used %(ENV_X)s (or %(host_node_name)s) holds this machine's value
    now; supervisord expands it each time it starts: approximated."""
    import dataclasses

    for i in range(first, len(ctx.draft.entries)):
        e = ctx.draft.entries[i]
        v = p.val(e.key) if e.key and e.scope == f"[{p.section}]" else None
        if v is None or e.status != "carried":
            continue
        used = [f"${k} = {x!r}" for k, x in _from_environment(ctx, v).items()]
        if "%(host_node_name)" in v.raw:
            used.append(f"host name {p.base['host_node_name']!r}")
        if not used:
            continue
        note = (f"expanded now with {', '.join(used)} (from this shell); supervisord expands it each time it "
                "starts")
        ctx.draft.entries[i] = dataclasses.replace(e, status="approximated", note=note)
        key = e.target.split(" = ")[0].removeprefix(f"{sc.prefix}.")
        sc.table.comments.setdefault(key, []).append(f"{e.key}: {note}")


def _command(sc: Scope, p: _Program, exact: list[dict[str, Any]], tmpl: dict[str, Any], n: int,
             same: Any, note: Any) -> None:
    v = p.val("command")
    f, line = p.ctx.ini.where(p.section)
    if v is None:
        raise fail(f"{f}:{line}", f"[{p.section}] has no command; expected command = /path/to/program ARGS")
    where = f"{v.file}:{v.line}"
    try:
        argv = shlex.split(tmpl["command"])
        for e in exact:
            e["command"] = shlex.split(e["command"])
    except ValueError as e:
        raise fail(where, f"command: cannot split it ({e}); expected shell-like quoting") from None
    if not argv or not argv[0]:
        raise fail(where, "command: it is empty; expected a program and its arguments")
    literal = "{replica}" in v.raw
    if same("command", argv) and not literal:
        sc.carry("command", v.line, v.raw, "command", argv)
    else:
        sc.approx("command", v.line, v.raw, "command", argv,
                  note("command", "x") if not literal else "it contains {replica}, which herder replaces with the "
                  "replica number")


def _environment(sc: Scope, p: _Program, exact: list[dict[str, Any]], tmpl: dict[str, Any], same: Any,
                 note: Any) -> None:
    v = p.val("environment")
    if v is None:
        return
    env = tmpl["environment"]
    if same("environment", env):
        sc.carry("environment", v.line, v.raw, "env", env or None)
    else:
        sc.approx("environment", v.line, v.raw, "env", env or None, note("environment", "x"))


def _directory(ctx: Context, sc: Scope, p: _Program, exact: list[dict[str, Any]], tmpl: dict[str, Any], same: Any,
               note: Any) -> None:
    v = p.val("directory")
    if v is None:
        return
    d = tmpl["directory"]
    placed = ctx.places.place(d, ctx.ini.main.dir)
    if not d.startswith(("/", "~")):
        sc.approx("directory", v.line, v.raw, "cwd", placed, "relative: supervisord resolves it from where it runs; "
                  "taken relative to the config's folder")
    elif same("directory", d):
        sc.carry("directory", v.line, v.raw, "cwd", placed)
    else:
        sc.approx("directory", v.line, v.raw, "cwd", placed, note("directory", "x"))


def _process_control(ctx: Context, sc: Scope, p: _Program, svc: str, group_prio: int | None) -> None:
    def t(key: str) -> Typed | None:
        return p.typed(key)

    prio = t("priority").integer("priority") if t("priority") else 999  # type: ignore[union-attr]
    auto = t("autostart").boolean("autostart") if t("autostart") else True  # type: ignore[union-attr]
    ctx.order.append(((group_prio if group_prio is not None else prio, prio), svc, auto))
    if (x := t("priority")) is not None:
        sc.carry("priority", x.v.line, x.v.raw, "depends_on", None, "the start order among the programs")
    if (x := t("autostart")) is not None:
        sc.carry("autostart", x.v.line, x.v.raw, "autostart", auto)
    if (x := t("autorestart")) is not None:
        word = x.text.lower()
        if word == "unexpected":
            sc.carry("autorestart", x.v.line, x.v.raw, "restart", "on-failure")
        elif word in ("yes", "true", "on", "1"):
            sc.carry("autorestart", x.v.line, x.v.raw, "restart", "always")
        elif word in ("no", "false", "off", "0"):
            sc.approx("autorestart", x.v.line, x.v.raw, "restart", "never", "supervisord still retries a start that "
                      "fails within startsecs (startretries times); herder does not")
        else:
            raise fail(x.where, f'autorestart: "{x.text}" is not valid; expected true, false or unexpected')
    if (x := t("exitcodes")) is not None:
        sc.carry("exitcodes", x.v.line, x.v.raw, "success_exit_codes", x.exit_codes("exitcodes"))
    if (x := t("startsecs")) is not None:
        sc.carry("startsecs", x.v.line, x.v.raw, "min_uptime", duration(x.integer("startsecs", 0)))
    if (x := t("startretries")) is not None:
        n = x.integer("startretries", 0)
        if n == 0:
            sc.approx("startretries", x.v.line, x.v.raw, "start_limit.burst", 1, "supervisord gives up at the first "
                      "failed start; herder allows at least one retry")
        else:
            sc.approx("startretries", x.v.line, x.v.raw, "start_limit.burst", n, "supervisord counts failed starts "
                      "in a row; herder counts those within start_limit.interval (60s)")
    if (x := t("stopsignal")) is not None:
        sc.carry("stopsignal", x.v.line, x.v.raw, "stop_signal", x.signal("stopsignal").removeprefix("SIG"))
    if (x := t("stopwaitsecs")) is not None:
        sc.carry("stopwaitsecs", x.v.line, x.v.raw, "stop_timeout", duration(x.integer("stopwaitsecs", 0)))
    _kill(sc, t("stopasgroup"), t("killasgroup"))
    if (x := t("user")) is not None:
        sc.approx("user", x.v.line, x.v.raw, "user", x.text.strip(), "herder also sets HOME, USER and LOGNAME to the "
                  "user's; supervisord keeps its own")


def _kill(sc: Scope, stop: Typed | None, kill: Typed | None) -> None:
    s = stop.boolean("stopasgroup") if stop else False
    k = kill.boolean("killasgroup") if kill else s
    if s and not k:
        raise fail(kill.where if kill else "", "killasgroup: stopasgroup = true needs killasgroup = true (supervisord "
                   "refuses this pair); expected killasgroup = true")
    mode = "group" if k else "main"
    if stop is not None:
        sc.carry("stopasgroup", stop.v.line, stop.v.raw, "kill", mode if kill is None or s else None)
    if kill is not None:
        if k and not s:
            sc.approx("killasgroup", kill.v.line, kill.v.raw, "kill", "group", "supervisord sends the stop signal "
                      "to the main process and SIGKILL to the group; herder sends both to the group")
        else:
            sc.carry("killasgroup", kill.v.line, kill.v.raw, "kill", mode)

