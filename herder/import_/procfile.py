"""`herder import procfile`: a Procfile (Heroku, foreman, honcho, overmind) and its .env.

Read as foreman reads it: every line matching `^([A-Za-z0-9_-]+):\\s*(.+)$` is a process
type; other lines are ignored (and reported). Each process runs in the Procfile's folder
with the .env file's variables, `PORT` = base + 100 × (its position in the Procfile) +
(instance − 1) with base 5000 (or PORT from .env), and `PS` = NAME.N. foreman's `-m`
formation (`all=1,web=2`) becomes replicas. A command with shell syntax runs through
/bin/sh, as Ruby's spawn runs it; a plain one is split on spaces and run directly.

The .env is carried as `env_file`, read by herder at each load as foreman reads it at
each start. herder's dotenv reader (python-dotenv) and foreman's differ at the edges
(`export`, `${VAR}`, inline `#`): a variable they read differently is also written into
`env` with foreman's value, which wins over env_file.
"""

from __future__ import annotations

import re
from pathlib import Path

from herder.import_ import Options
from herder.import_.draft import Draft, Scope, rules
from herder.import_.source import Source, display, fail, read_source
from herder.import_.values import Places, duration, service_name

FORMAT = "procfile"
LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(\S.*)$")   # a blank command is not a process line
ENV_LINE = re.compile(r"\A([A-Za-z_0-9]+)=(.*)\Z")
SHELL_META = set("*?{}[]<>()~&|\\$;'`\"\n#=%")
BASE_PORT = 5000
STOP_TIMEOUT = 5.0

RULES = rules(
    ("NAME: command", "[services.NAME] command", "shell syntax → [\"/bin/sh\", \"-c\", COMMAND], as Ruby runs it; "
     "else split on spaces and run directly"),
    ("(process folder)", "cwd", "the Procfile's folder, where foreman runs every process"),
    ("(PORT)", "env.PORT", "foreman's port: 5000 (or .env's PORT) + 100 × position + instance − 1; with "
     "replicas, exact up to 10 instances (\"510{replica}\")"),
    ("(PS)", "env.PS", "NAME.N; foreman counts instances from 1, herder's {replica} from 0"),
    ("--formation NAME=N", "replicas", "foreman's -m; all=N for every process; 0 → autostart = false"),
    (".env VAR", "env_file", "the file is read at each load; a variable herder's dotenv reader reads differently "
     "is also set in env with foreman's value"),
    ("(not NAME: command)", "—", "foreman ignores the line"),
    ("(foreman default) exit", "restart", "foreman stops every process when one exits; herder restarts the one "
     "that failed (restart = \"on-failure\")"),
    ("(foreman default) timeout", "[defaults] stop_timeout", "foreman's -t: 5 s from SIGTERM to SIGKILL"),
)


def parse_formation(text: str | None) -> tuple[int, dict[str, int]]:
    """foreman's formation: (count for `all`, counts by name)."""
    default, counts = 1, dict[str, int]()
    if not text:
        return default, counts
    for pair in re.sub(r"\s", "", text).split(","):
        name, eq, amount = pair.partition("=")
        if not eq or not name or not amount.isdigit():
            raise fail("--formation", f'"{pair}" is not NAME=N; expected such as all=1,web=2')
        if name == "all":
            default = int(amount)
        else:
            counts[name] = int(amount)
    return default, counts


def read_foreman_env(src: Source) -> list[tuple[int, str, str]]:
    """(line, name, value) as foreman's Env reads a .env: KEY=value, quotes stripped."""
    out = []
    for n, line in enumerate(src.text.replace("\r\n", "\n").split("\n"), start=1):
        m = ENV_LINE.match(line)
        if not m:
            continue
        key, val = m.groups()
        if len(val) >= 2 and val[0] == val[-1] == "'":
            val = val[1:-1]
        elif len(val) >= 2 and val[0] == val[-1] == '"':
            val = re.sub(r"\\(.)", r"\1", val[1:-1].replace("\\n", "\n"))
        out.append((n, key, val))
    return out


def translate(files: list[Path], places: Places, options: Options) -> Draft:
    if len(files) != 1:
        raise fail(" ".join(map(str, files)), "procfile takes one Procfile; expected one FILE")
    src = read_source(files[0], "a Procfile")
    draft = Draft(FORMAT)
    entries = [(n, m.group(1), m.group(2)) for n, line in enumerate(src.text.replace("\r\n", "\n").split("\n"), 1)
               if (m := LINE.match(line))]
    if not entries:
        raise fail(str(src.path), "no process line; expected lines such as `web: bundle exec puma -C config/puma.rb`")
    env_files = [Path(e) for e in options.env.split(",")] if options.env else \
        ([display(src.dir / ".env")] if (src.dir / ".env").is_file() else [])
    env = [(f, read_source(f, "a .env file")) for f in env_files]
    foreman_env = {k: v for _, s in env for _, k, v in read_foreman_env(s)}
    base = int(foreman_env["PORT"]) if foreman_env.get("PORT", "").isdigit() else BASE_PORT
    draft.header = [f"Imported from {places.place(src.path)} by `herder import procfile`"
                    + (f" with {', '.join(places.place(f) for f, _ in env)}" if env else "")]
    everyone, counts = parse_formation(options.formation)
    taken: set[str] = set()
    names = [name for _, name, _ in entries]
    for name in counts:
        if name not in names:
            draft.warnings.append(f"--formation: no process {name} in {src.path}; ignored, as foreman does")
    shared = _env_file(draft, places, env)
    for index, (n, name, command) in enumerate(entries):
        svc = service_name(name, taken)
        table = draft.service(svc)
        sc = Scope(draft, table, f"services.{svc}", str(src.path), name, RULES, "NAME: command")
        if svc != name:
            sc.renamed(n, name, svc)
        if SHELL_META & set(command):
            sc.carry("command", n, command, "command", ["/bin/sh", "-c", command], "through /bin/sh, as Ruby runs it")
        else:
            sc.carry("command", n, command, "command", command.split())
        sc.kind = "(process folder)"
        sc.carry("", n, "", "cwd", places.place(src.dir))
        count = counts.get(name, everyone)
        _formation(sc, n, count, options.formation is not None)
        _port_and_ps(sc, n, name, base + index * 100, max(count, 1))
    if shared is not None:
        draft.defaults.set("env_file", shared)
    for line in _ignored(src.text):
        Scope(draft, draft.defaults, "", str(src.path), "", RULES, "(not NAME: command)").unknown(
            "", line[0], line[1], "not a `name: command` line; foreman ignores it")
    _defaults(draft, str(src.path))
    _env_entries(draft, places, env, base)
    return draft


def _formation(sc: Scope, line: int, count: int, given: bool) -> None:
    if not given:
        return
    sc.kind = "--formation NAME=N"
    if count == 0:
        sc.approx("--formation", line, "0", "autostart", False, "foreman runs no instance; herder keeps the "
                  "service with one replica, not started by `herder up`")
    elif count > 1:
        sc.carry("--formation", line, str(count), "replicas", count)
    else:
        sc.carry("--formation", line, str(count))


def _port_and_ps(sc: Scope, line: int, name: str, port: int, count: int) -> None:
    sc.kind = "(PORT)"
    if count == 1:
        sc.carry("PORT", line, str(port), "env.PORT", str(port))
    elif count <= 10 and port % 10 == 0:
        sc.carry("PORT", line, f"{port}…{port + count - 1}", "env.PORT", f"{port // 10}{{replica}}")
    else:
        sc.approx("PORT", line, f"{port}…{port + count - 1}", "env.PORT", f"{port}{{replica}}",
                  "herder cannot add the replica number to a port; each instance gets PORT followed by its number")
    sc.kind = "(PS)"
    if count == 1:
        sc.carry("PS", line, f"{name}.1", "env.PS", f"{name}.1")
    else:
        sc.approx("PS", line, f"{name}.1…{name}.{count}", "env.PS", f"{name}.{{replica}}",
                  "foreman counts instances from 1, herder's {replica} from 0")


def _ignored(text: str) -> list[tuple[int, str]]:
    out = []
    for n, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if line.strip() and not line.lstrip().startswith("#") and not LINE.match(line):
            out.append((n, line))
    return out


def _defaults(draft: Draft, file: str) -> None:
    sc = Scope(draft, draft.defaults, "defaults", file, "(foreman default)", RULES, "(foreman default)")
    sc.kind = "(foreman default) timeout"
    sc.carry("timeout", None, "5", "stop_timeout", duration(STOP_TIMEOUT))
    sc.kind = "(foreman default) exit"
    sc.approx("exit", None, "", "restart", None, RULES["(foreman default) exit"].note)


def _env_file(draft: Draft, places: Places, env: list[tuple[Path, Source]]) -> str | None:
    return places.place(env[0][1].path.resolve()) if env else None


def _env_entries(draft: Draft, places: Places, env: list[tuple[Path, Source]], base: int) -> None:
    """Report every .env variable; write into [defaults] env those herder would read differently."""
    from io import StringIO

    from dotenv import dotenv_values

    for i, (_, src) in enumerate(env):
        ours = {k: v or "" for k, v in dotenv_values(stream=StringIO(src.text)).items()} if i == 0 else {}
        sc = Scope(draft, draft.defaults, "defaults", str(src.path), ".env", RULES, ".env VAR")
        for line, key, value in read_foreman_env(src):
            if i > 0:
                sc.approx(key, line, value, f"env.{key}", value, "copied now: herder reads one env_file")
            elif ours.get(key) == value and "$" not in value:
                sc.carry(key, line, value, "env_file")
            else:
                sc.approx(key, line, value, f"env.{key}", value, "herder's dotenv reader reads this line "
                          "differently; foreman's value is set in env")
        for key in ours:
            if i == 0 and key not in {k for _, k, _ in read_foreman_env(src)}:
                sc.approx(key, None, ours[key], "env_file", None, "herder's dotenv reader sets it; foreman ignores "
                          "the line")
