"""Generate docs/import.md from the translation tables (`python -m herder.import_.docs`).

The tables are the `RULES` each importer reports against, so the page cannot drift from
what `herder import` does; a test compares the file with this output.
"""

from __future__ import annotations

from herder.import_ import pm2_keys, procfile, supervisord, systemd
from herder.import_.draft import Rule

INTRO = """\
# Importing from supervisord, Procfile, PM2 and systemd

Generated from the translation tables in `herder/import_/` by `python -m herder.import_.docs`;
do not edit.

```
herder import supervisord /etc/supervisor/supervisord.conf      # and its [include] files
herder import procfile Procfile [--env .env] [--formation all=1,web=2]
herder import pm2 ecosystem.config.js [--env production]          # .json, .yaml and .js
herder import systemd web.service worker.service                  # drop-ins in NAME.service.d/ too
herder init                                                       # a starter, or an offer to import
herder init --from Procfile
```

Each import writes `herder.toml` (`-o FILE`, `-o -` prints it; an existing file is replaced
only with `--force`) and a **report** with one line per source setting:

```
supervisord.conf:21: [program:web] numprocs = 2: carried → services.web.replicas = 2
supervisord.conf:24: [program:web] killasgroup = true: approximated → services.web.kill = "group": supervisord sends …
supervisord.conf:29: [program:web] umask = 022: not carried: herder has no umask yet; issue 18 adds security.umask
supervisord.conf:41: [program:worker] bogus = 1: unknown: supervisord does not know it either; it ignores it
```

- **carried**: herder does the same; the line names the herder key and value.
- **approximated**: herder does something close; the note says how it differs. The same note
  is a comment above the key in herder.toml.
- **not carried**: herder has no equivalent (yet: the note names the issue that adds it). A
  comment at the end of the service's table keeps it in sight.
- **unknown**: the source tool does not know the key either, and ignores it.

The report is printed (to stderr with `-o -`), or written with `--report FILE` (JSON when
FILE ends in `.json`: `{"title", "counts", "entries": [{file, line, scope, key, value,
status, target, note}]}`).

What is written is checked by herder's own config loader before it replaces anything, so
it passes `herder check`; `user`/`group` are only checked there against this machine and
the import warns when they will not pass. Input the source tool itself would refuse — a
bad boolean, an unbalanced quote, a missing `command` — is an error `FILE:LINE: problem;
expected …` with exit 2, and nothing is written. So are files that are not text: empty,
binary, invalid UTF-8, over 16 MiB, FIFOs and devices, JSON or YAML nested too deeply.

**The source tool's defaults.** Where the source tool's default differs from herder's
(supervisord signals only the main process, PM2 stops with SIGINT after 1.6 s, systemd does
not restart), the import writes the source default into `[defaults]`, so every service
behaves as it did. Delete a line there to get herder's default instead.

**Values known only at run time.** supervisord's `%(ENV_X)s` and `%(host_node_name)s`,
systemd's `%H`, `%m` and a `MemoryMax=` percentage are expanded with this machine's values
at import, and reported as approximated. systemd `$VAR`s that the unit sets itself are
substituted; any other `$VAR` is left to `/bin/sh` at each start (`command = ["/bin/sh", "-c", …]`).

**What herder adds.** Every child also gets `HERDER_SERVICE`, `HERDER_INSTANCE`,
`HERDER_INSTANCE_ID`, `HERDER_STOP_TIMEOUT_USEC`, `NOTIFY_SOCKET` (herder serves the
sd_notify protocol) and, with replicas, `HERDER_REPLICA`; herder does not set
supervisord's `SUPERVISOR_*` variables or PM2's `pm_id`-style ones. Log lines get an RFC
3339 timestamp (`logs.timestamps`), and rotated files are gzipped (`logs.compress`).

**`herder init`.** In a folder with none of the files below, it writes a commented starter
herder.toml (one service; readiness, health and logs shown commented out). With a
`Procfile`, `supervisord.conf`, a PM2 ecosystem file (`ecosystem.config.js`, `.json`,
`.yaml`, `process.json` …) or `*.service` units present, it asks on a terminal whether to
import the first one, and otherwise prints the `herder init --from FILE` line to run
(`--blank` writes the starter anyway). `--from FILE` imports FILE, its format taken from its
name (`--format` when the name does not tell).
"""

SECTIONS = (
    ("supervisord", supervisord.RULES, """\
Read as supervisord reads it: the same INI reader (Python's RawConfigParser with `;`/`#`
inline comments after whitespace, indented continuation lines, lower-cased keys, the last
of a repeated key winning, repeated sections merging, `[DEFAULT]` keys shown in every
section). `[include] files =` globs are relative to the main file and read in sorted order;
an `[include]` inside an included file is ignored, as supervisord ignores it. Extra FILEs
after the first are read as if included. `%(here)s` is the folder of the file the value is
in; `%(program_name)s`, `%(group_name)s`, `%(numprocs)d`, `%(ENV_X)s` and `%(process_num)d`
are expanded per process, exactly as supervisord does, and carried as herder templates with
`{replica}` where supervisord's per-process values can be reproduced.
"""),
    ("procfile", procfile.RULES, """\
Read as foreman reads it (`^([A-Za-z0-9_-]+):\\s*(.+)$`; other lines are reported and
ignored). foreman is the reference for what each process gets: the Procfile's folder as
its working directory, the `.env` beside it (or `--env FILE,…`), `PORT` and `PS`.
"""),
    ("pm2", pm2_keys.RULES, """\
PM2's key aliases are understood (`interpreter`, `out`, `err`, camelCase such as
`maxMemoryRestart` …), numbers may be numeric strings, `min_uptime` accepts "10s"/"5m"/"1h"
and `max_memory_restart` "150M"/"1G"/"500K", as PM2 validates them. `ecosystem.config.js`
is evaluated with node (as `pm2 start` does); without node, the error says to install it
or to use a `.json`/`.yaml` file. Line numbers of an evaluated file are best-effort.
"""),
    ("systemd", systemd.RULES, """\
Unit files are read with systemd's syntax: `#`/`;` comments, `\\` continuation lines, the
last assignment of a setting winning (earlier ones are reported as overridden), an empty
assignment resetting a list, and drop-ins in `NAME.service.d/*.conf`. A unit under a
`systemd/user/` folder is taken as a user unit (its specifiers and default folder differ).
"""),
)


def _table(rules: dict[str, Rule]) -> list[str]:
    out = ["| source | herder | notes |", "|---|---|---|"]
    for r in rules.values():
        out.append(f"| `{r.source}` | {r.herder if r.herder == '—' else '`' + r.herder + '`'} | "
                   f"{r.note.replace('|', '/')} |")
    return out


def render() -> str:
    lines = [INTRO]
    for name, table, text in SECTIONS:
        lines += [f"## {name}", "", text.rstrip(), "", *_table(table), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
