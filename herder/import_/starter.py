"""`herder init`: the starter herder.toml, and what in a folder could be imported instead.

The starter is one working service with the common knobs shown commented out, so a new
user edits a file that already runs (`herder up`) instead of reading a reference first.
"""

from __future__ import annotations

from pathlib import Path

STARTER = '''\
# herder.toml: the services herder runs. Reference: docs/config.md; check it with `herder check`.
# Start everything with `herder up` (Ctrl+C stops it all), or `herder up -d` to run in the
# background; then `herder status`, `herder logs -f`, `herder down`.

[herder]
# state_dir = ".herder"          # socket, journal and logs, next to this file
# shutdown_timeout = "60s"

[defaults]                        # merged under every [services.*] table
# restart = "on-failure"          # always | on-failure | never
# stop_timeout = "10s"            # after the stop signal, SIGKILL to what is left

[services.web]
command = ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"]
# cwd = "."                       # relative to this file
# env = { PYTHONUNBUFFERED = "1" }
# env_file = ".env"
# replicas = 2                    # web.0, web.1; "{replica}" in command, env and cwd is 0, 1
# depends_on = { db = "ready" }   # started | ready | healthy | completed

# [services.web.ready]            # when web counts as ready (gates its dependents)
# http = "http://127.0.0.1:8000/" # or tcp = "127.0.0.1:8000", exec = [...], log = "regex", notify = true
# timeout = "30s"

# [services.web.health]           # liveness while running; failing → restart
# http = "http://127.0.0.1:8000/"
# interval = "10s"
# failure_threshold = 3

# [services.web.logs]             # default: .herder/logs/web.log, rotated at 50MB, 10 kept
# max_size = "50MB"
# max_files = 10
# stderr = "auto"                 # merge (default: into stdout's file) | auto | a path | null
'''

CANDIDATES = (
    ("procfile", ("Procfile",)),
    ("supervisord", ("supervisord.conf", "supervisor/supervisord.conf", "etc/supervisord.conf")),
    ("pm2", ("ecosystem.config.js", "ecosystem.config.cjs", "ecosystem.config.mjs", "ecosystem.config.json",
             "ecosystem.json", "ecosystem.config.yaml", "ecosystem.config.yml", "ecosystem.yaml", "ecosystem.yml",
             "process.json", "process.yml", "process.yaml", "pm2.json")),
)


def found(folder: Path) -> list[tuple[str, Path]]:
    """(format, file) of everything in `folder` that `herder init --from` could import."""
    out = [(fmt, folder / name) for fmt, names in CANDIDATES for name in names if (folder / name).is_file()]
    out += [("systemd", p) for p in sorted(folder.glob("*.service")) if p.is_file()]
    return out


def guess(path: Path) -> str | None:
    """The format of `path` from its name, else from a look at its start."""
    name = path.name
    if name == "Procfile" or name.startswith("Procfile.") or name.endswith(".procfile"):
        return "procfile"
    if name.endswith(".service"):
        return "systemd"
    if "ecosystem" in name or name in ("process.json", "process.yml", "process.yaml", "pm2.json") or \
            name.endswith((".config.js", ".config.cjs", ".config.mjs")):
        return "pm2"
    if name.endswith((".conf", ".ini")):
        return "supervisord"
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
    if "[program:" in head or "[supervisord]" in head:
        return "supervisord"
    if "[Service]" in head:
        return "systemd"
    if "apps" in head:
        return "pm2"
    return None
