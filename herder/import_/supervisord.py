"""`herder import supervisord`: supervisord.conf (and its includes) → herder.toml.

The reading is supervisord's own (supervisord_ini, supervisord_expand); this module maps
what supervisord would run onto herder's keys, section by section, and records every
setting in the report. Where supervisord's default differs from herder's (it signals only
the main process, keeps stderr in its own file, retries a failed start 3 times), the
supervisord default is written into [defaults], so the imported services behave as they
did, and the file says so.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

from herder.import_.draft import Draft, Scope, Table, rules
from herder.import_.source import fail
from herder.import_.supervisord_expand import Typed, expand, key_value_pairs
from herder.import_.supervisord_ini import Ini, Value, here, read
from herder.import_.values import Places

FORMAT = "supervisord"

RULES = rules(
    ("[program:x]", "[services.x]", "one service per program; a name with other characters than letters, digits, "
     "`-` and `_` is made valid"),
    ("command", "command", "split like a shell (shlex), as supervisord splits it"),
    ("numprocs", "replicas", ""),
    ("process_name", "—", "herder names instances NAME.0 … NAME.N-1 (NAME alone for one); approximated when "
     "supervisord's names differ"),
    ("numprocs_start", "{replica}", "herder counts replicas from 0; values using %(process_num) are approximated "
     "unless numprocs_start = 0"),
    ("%(process_num)", "{replica}", "exact for %(process_num)d and %(process_num)s; zero-padded forms such as "
     "%(process_num)02d are approximated (herder writes 0, not 00)"),
    ("priority", "depends_on", "start order: a program depends (started) on the autostarted programs of the "
     "previous priority; herder stops them in reverse, as supervisord does. Unlike supervisord, herder does "
     "not start a program while one it depends on cannot start"),
    ("autostart", "autostart", ""),
    ("autorestart", "restart", "true → always, false → never, unexpected → on-failure"),
    ("exitcodes", "success_exit_codes", ""),
    ("startsecs", "min_uptime", ""),
    ("startretries", "start_limit.burst", "supervisord gives up after this many retries in a row; herder after "
     "this many failed starts within start_limit.interval (60s). 0 becomes 1"),
    ("stopsignal", "stop_signal", ""),
    ("stopwaitsecs", "stop_timeout", ""),
    ("stopasgroup", "kill", "false (default) → main; true → group"),
    ("killasgroup", "kill", "true → group (herder then sends the stop signal to the group too)"),
    ("user", "user", "supervisord only switches the uid; herder also sets HOME, USER and LOGNAME"),
    ("directory", "cwd", "unset: the program runs where supervisord runs, and under herder where herder runs"),
    ("environment", "env", "supervisord's quoting: KEY=\"a,b\",KEY2=value"),
    ("umask", "—", "herder has no umask yet; issue 18 adds security.umask"),
    ("redirect_stderr", "logs.stderr", "true → merge"),
    ("stdout_logfile", "logs.stdout", "AUTO → auto ({log_dir}/NAME.log), NONE → null, a path → the path"),
    ("stdout_logfile_maxbytes", "logs.max_size", ""),
    ("stdout_logfile_backups", "logs.max_files", ""),
    ("stdout_syslog", "logs.forward", "[\"syslog\"]; herder forwards both streams"),
    ("stderr_logfile", "logs.stderr", "AUTO → auto ({log_dir}/NAME.err.log), NONE → null, a path → the path"),
    ("stderr_logfile_maxbytes", "logs.max_size", "herder has one size for both streams"),
    ("stderr_logfile_backups", "logs.max_files", "herder has one count for both streams"),
    ("stderr_syslog", "logs.forward", "[\"syslog\"]; herder forwards both streams"),
    ("stdout_capture_maxbytes", "—", "capture mode feeds supervisord's event listeners; herder has none"),
    ("stderr_capture_maxbytes", "—", "capture mode feeds supervisord's event listeners; herder has none"),
    ("stdout_events_enabled", "—", "herder has no event listeners; issue 18 adds alerts"),
    ("stderr_events_enabled", "—", "herder has no event listeners; issue 18 adds alerts"),
    ("serverurl", "—", "herder has no XML-RPC server"),
    ("[supervisord] environment", "[defaults] env", "merged under every program's environment, as supervisord does"),
    ("[supervisord] directory", "[defaults] cwd", "supervisord changes into it when it daemonizes"),
    ("[supervisord] childlogdir", "[herder] log_dir", "where AUTO log files go"),
    ("[supervisord] umask", "—", "herder has no umask yet; issue 18 adds security.umask"),
    ("[supervisord] minfds", "—", "herder raises its own open-file limit; set limits.nofile where "
     "a program needs more"),
    ("[supervisord] minprocs", "—", "set limits.nproc where a program needs it"),
    ("[supervisord] user", "—", "herder runs as the user that starts it"),
    ("[supervisord] *", "—", "supervisord's own logging, pid file and daemon settings: herder has its own "
     "([herder] state_dir, herder.log)"),
    ("[group:x] programs", "—", "herder has no groups: the members are services of their own (`herder start a b`)"),
    ("[group:x] priority", "depends_on", "orders the members among the other programs, as priority does"),
    ("[include]", "—", "its files are read, as supervisord reads them"),
    ("[eventlistener:x]", "—", "herder has no event listener protocol; issue 18 adds alerts"),
    ("[fcgi-program:x]", "—", "herder does not create sockets for programs"),
    ("[unix_http_server]", "—", "herder's API is its socket {state_dir}/herder.sock"),
    ("[inet_http_server]", "—", "herder's TCP API is [herder] api_tcp with api_token_file"),
    ("[supervisorctl]", "—", "herder's CLI finds the supervisor through the config"),
    ("[rpcinterface:x]", "—", "herder's API is HTTP+JSON"),
    ("[ctlplugin:x]", "—", "herder has no CLI plugins"),
    ("(default)", "[defaults]", "supervisord's defaults where they differ from herder's: kill = \"main\" "
     "(stopasgroup/killasgroup false), start_limit.burst = 3 (startretries), logs.stderr = \"auto\" "
     "(redirect_stderr false)"),
)

PROGRAM_KEYS = frozenset(k for k in RULES if not k.startswith(("[", "(", "%")))
SUPERVISORD_KEYS = frozenset(("logfile", "logfile_maxbytes", "logfile_backups", "loglevel", "pidfile", "nodaemon",
                              "silent", "identifier", "nocleanup", "strip_ansi", "umask", "minfds", "minprocs",
                              "user", "directory", "childlogdir", "environment"))


@dataclass
class Context:
    ini: Ini
    draft: Draft
    places: Places
    env_names: dict[str, str]                       # ENV_X expansions (environment + [supervisord] environment)
    taken: set[str] = field(default_factory=set)
    order: list[tuple[tuple[int, int], str, bool]] = field(default_factory=list)  # ((group prio, prio), svc, autostart)

    def where(self, v: Value | None, section: str) -> tuple[str, int | None]:
        if v is not None:
            return str(v.file), v.line
        f, line = self.ini.where(section)
        return str(f), line

    def scope(self, table: Table, prefix: str, section: str, kind: str = "") -> Scope:
        f, _ = self.ini.where(section)
        return Scope(self.draft, table, prefix, str(f), f"[{section}]", RULES, kind)


def translate(files: list[Path], places: Places, options: object = None) -> Draft:
    """Read `files[0]` as supervisord's main config (others as if included) and translate it."""
    ini = read(files[0], files[1:])
    draft = Draft(FORMAT)
    draft.header = ["Imported from supervisord by `herder import supervisord`: " +
                    ", ".join(places.place(f) for f in ini.files)]
    for f, line, msg in ini.warnings:
        draft.warnings.append(f"{f}:{line}: {msg}" if line else f"{f}: {msg}")
    ctx = Context(ini, draft, places, {f"ENV_{k}": v for k, v in os.environ.items()})
    _supervisord_section(ctx)
    groups = _groups(ctx)
    from herder.import_.supervisord_program import program

    for section in ini.sections():
        kind, _, name = section.partition(":")
        if kind == "program":
            group, group_prio = groups.get(name, (name, None))
            program(ctx, section, name, group, group_prio)
    for section in ini.sections():
        _other_section(ctx, section)
    if not draft.services:
        raise fail(str(ini.main.path), "no [program:NAME] section; expected at least one program to import")
    _defaults(ctx)
    _start_order(ctx)
    return draft


def _supervisord_section(ctx: Context) -> None:
    ini = ctx.ini
    if not ini.parser.has_section("supervisord"):
        ctx.draft.warnings.append(f"{ini.main.path}: no [supervisord] section (supervisord refuses such a file as "
                                  "its main config); read as an included file")
        return
    sc = ctx.scope(ctx.draft.defaults, "defaults", "supervisord", "[supervisord]")
    names = {**ctx.env_names, "here": str(ini.main.dir), "host_node_name": _node()}
    env_v = ini.get("supervisord", "environment")
    if env_v is not None:
        env = key_value_pairs(expand(env_v.raw.replace("%(here)s", here(env_v)), names, env_v, "environment"),
                              env_v, "environment")
        ctx.env_names.update({f"ENV_{k}": v for k, v in env.items()})
        sc.carry("environment", env_v.line, env_v.raw, "env", env or None)
    nodaemon = False
    nd = ini.get("supervisord", "nodaemon")
    if nd is not None:
        nodaemon = Typed(nd, expand(nd.raw, names, nd, "nodaemon")).boolean("nodaemon")
    first = len(ctx.draft.entries)
    for key in ini.keys("supervisord"):
        v = ini.get("supervisord", key)
        assert v is not None
        if key == "environment":
            continue
        if key == "directory":
            d = expand(v.raw.replace("%(here)s", here(v)), names, v, key)
            sc.approx(key, v.line, v.raw, "cwd", ctx.places.place(d, ini.main.dir),
                      "supervisord runs programs without a directory here only when it daemonizes"
                      + (" (nodaemon = true: it does not)" if nodaemon else ""))
        elif key == "childlogdir":
            d = expand(v.raw.replace("%(here)s", here(v)), names, v, key)
            Scope(ctx.draft, ctx.draft.herder, "herder", sc.file, sc.scope, RULES, "[supervisord]").carry(
                key, v.line, v.raw, "log_dir", ctx.places.place(d, ini.main.dir))
        elif key in ("umask", "minfds", "minprocs", "user"):
            sc.drop(key, v.line, v.raw, RULES[f"[supervisord] {key}"].note)
        elif key in SUPERVISORD_KEYS:
            sc.drop(key, v.line, v.raw, "supervisord's own setting; herder has its own ([herder], herder.log)")
        else:
            sc.unknown(key, v.line, v.raw, "supervisord does not know it either")
    ctx.draft.entries[first - (env_v is not None):] = sorted(ctx.draft.entries[first - (env_v is not None):],
                                                             key=lambda e: e.line or 0)


def _node() -> str:
    import platform

    return platform.node()


def _groups(ctx: Context) -> dict[str, tuple[str, int]]:
    """program name → (group name, group priority) for [group:x] members."""
    out: dict[str, tuple[str, int]] = {}
    for section in ctx.ini.sections():
        kind, _, gname = section.partition(":")
        if kind != "group":
            continue
        f, line = ctx.ini.where(section)
        _check_name(gname, f"{f}:{line}", "group")
        names = {**ctx.env_names, "here": str(f.resolve().parent), "host_node_name": _node()}
        progs_v, prio_v = ctx.ini.get(section, "programs"), ctx.ini.get(section, "priority")
        progs = [p.strip() for p in expand(progs_v.raw, names, progs_v, "programs").split(",")] if progs_v else []
        prio = Typed(prio_v, expand(prio_v.raw, names, prio_v, "priority")).integer("priority") if prio_v else 999
        sc = ctx.scope(Table(), "", section, "[group:x]")
        for p in progs:
            if p and not ctx.ini.parser.has_section(f"program:{p}"):
                where = f"{progs_v.file}:{progs_v.line}" if progs_v else f"{f}:{line}"
                raise fail(where, f"[{section}] names unknown program {p}; expected one of its [program:NAME] sections")
            out[p] = (gname, prio)
        if progs_v is not None:
            sc.drop("programs", progs_v.line, progs_v.raw, RULES["[group:x] programs"].note)
        if prio_v is not None:
            sc.carry("priority", prio_v.line, prio_v.raw, "depends_on", None, RULES["[group:x] priority"].note)
        for key in ctx.ini.keys(section):
            if key not in ("programs", "priority"):
                v = ctx.ini.get(section, key)
                assert v is not None
                sc.unknown(key, v.line, v.raw, "supervisord does not know it either")
    return out


def _check_name(name: str, where: str, what: str) -> None:
    bad = next((c for c in " :/" if c in name.strip()), None)
    if bad or not name.strip():
        raise fail(where, f'invalid {what} name "{name}"' + (f" (it has {bad!r})" if bad else "")
                   + "; expected a name without spaces, colons or slashes")


_NOT_CARRIED = ("eventlistener", "fcgi-program", "unix_http_server", "inet_http_server", "supervisorctl",
                "rpcinterface", "ctlplugin", "include")


def _other_section(ctx: Context, section: str) -> None:
    kind = section.partition(":")[0]
    if kind in ("program", "group", "supervisord"):
        return
    f, line = ctx.ini.where(section)
    rule = next((k for k in RULES if k.startswith(f"[{kind}")), None) if kind in _NOT_CARRIED else None
    sc = Scope(ctx.draft, ctx.draft.herder, "", str(f), f"[{section}]", RULES, rule or "")
    if rule is None:
        sc.unknown("", line, "", "supervisord ignores this section too")
    elif kind != "include":
        sc.drop("", line, "", RULES[rule].note)


def _defaults(ctx: Context) -> None:
    sc = Scope(ctx.draft, ctx.draft.defaults, "defaults", str(ctx.ini.main.path), "(supervisord default)", RULES,
               "(default)")
    sc.carry("stopasgroup", None, "false", "kill", "main", "supervisord signals only the main process")
    sc.carry("startretries", None, "3", "start_limit.burst", 3)
    sc.carry("redirect_stderr", None, "false", "logs.stderr", "auto", "stderr in its own file")


def _start_order(ctx: Context) -> None:
    """priority → depends_on: each autostarted program depends on the previous level."""
    levels = sorted({prio for prio, _, auto in ctx.order if auto})
    if len(levels) < 2:
        return
    by_level = {lv: [svc for prio, svc, auto in ctx.order if auto and prio == lv] for lv in levels}
    for before, after in itertools.pairwise(levels):
        for svc in by_level[after]:
            deps = ctx.draft.services[svc].values.setdefault("depends_on", {})
            deps.update({d: "started" for d in by_level[before]})
