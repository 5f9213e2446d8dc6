"""Generate docs/export.md from the targets' mappings (`python -m herder.export.docs`).

The tables are the same Rule rows the exporter records its report from, so the page
cannot claim a mapping the code does not make.
"""

from __future__ import annotations

from herder.export import MAPPINGS, compose, kubernetes, swarm, systemd
from herder.export.report import Mapping

INTRO = """\
# Exporting to Compose, Swarm, Kubernetes and systemd: `herder export`

Generated from the mappings in `herder/export/` by `python -m herder.export.docs`; do not edit.

When an application outgrows one machine, `herder.toml` stays the one source: `herder export`
writes the same services for the engine that takes over, and a report of everything it could
not carry exactly.

```sh
herder export compose    -c herder.toml -o deploy/ --image shop:latest   # docker-compose.yml
herder export swarm      -c herder.toml -o deploy/ --image shop:latest   # stack.yml
herder export kubernetes -c herder.toml -o deploy/ --image registry.example/shop:1.4
herder export systemd    -c herder.toml -o deploy/                        # PROJECT-*.service, PROJECT.target
herder export compose web                                                 # only web and what it depends on, to stdout
```

@OPTIONS@

Exit codes: 0 written; 2 for bad input, and nothing is written: an invalid config (every error,
as `herder check` prints them), an unknown service, an `-o` that is not a directory, a file in
`-o` that `herder export` did not write (it never overwrites someone else's file), two services
whose names would collide in Kubernetes. Accounts (`user`, `group`) are not looked up: they
belong to the image or the host that runs the export, not to this machine.

## The report

Every export writes `export-report.txt`: per service, one line per key with its fate.

- **carried**: the target does the same thing (`stop_timeout` → `stop_grace_period`);
- **approximated**: close, and the line says how it differs (`ready.timeout` → a healthcheck's
  `start_period`);
- **not carried**: the target has no equivalent, and the line says why (`health.action` under
  plain Compose: Docker never restarts an unhealthy container).

Every key whose value differs from herder's default is listed, and so are the defaults that
behave differently on the target (a restart delay, a start limit). Nothing is dropped silently:
a key no rule handles would still be listed as not carried (the tests make sure none is).

## The image (Compose, Swarm, Kubernetes)

The exported services run the image named by `--image`. It must hold the **project directory
(the folder of herder.toml) at `/app`**: a service's `cwd` inside that folder becomes the same
path under `/app` (an unset `cwd` becomes `/app`; a path outside it is kept and must exist in
the image). Its `command` is the whole argv, so the image should have no `ENTRYPOINT` (one that
has one gets the command as arguments). The checks the export writes (an http or tcp probe as
a healthcheck, Kubernetes' dependency waits) are short Python programs: the image needs
`python3`, and `/bin/sh` for the shell commands. From the project directory:

```dockerfile
# Dockerfile, next to herder.toml
ARG BASE=python:3.12-slim
FROM ${BASE}
COPY . /app
WORKDIR /app
# RUN pip install -r requirements.txt   (what the programs need)
```

```sh
docker build -t shop:latest .
herder export compose -o deploy/ --image shop:latest && docker compose -f deploy/docker-compose.yml up -d
```

`examples/shop/` is a complete example (four services: a db with an http probe, a one-shot
migration gated on the db being healthy, a web tier with two replicas gated on the migration,
and a worker stopped with SIGINT), used by the tests and by this page.

## Proven on the real engines

`make test` exports `examples/shop` with the CLI and runs the files unchanged:

- **Compose v1 (Debian's docker-compose 1.29) and v2 (2.40)** on Docker Engine 20.10, started by
  the test in its own network namespace: start order through the healthy / completed gates,
  replicas, memory / CPU / nofile limits and log rotation on the containers, a container
  killed with `kill -9` restarted, SIGINT for the worker, web killed at its 3 s
  `stop_grace_period`, and a failing one-shot keeping web from starting (tests/engines).
- **Swarm** (single node): replicas resolved by name, the one-shot run once, an unhealthy task
  replaced, a new version rolled out one task at a time, a never-healthy version rolled back
  (tests/engines/test_swarm.py).
- **systemd 252** booted in systemd-nspawn: start order through the readiness checks, the
  one-shot gating, replicas as template instances, restart after kill -9, the stop signal and
  `TimeoutStopSec=`, a failing one-shot keeping its dependant down. Limits are checked with
  `systemctl show`: MemoryMax= and CPUQuota= are accepted but not enforced inside nspawn on the
  test machine (no controllers delegated); LimitNOFILE= is (tests/platform/test_export_nspawn.py).
- **Kubernetes**: no cluster can run there. Every export is validated with
  `kubernetes-validate --strict` against Kubernetes 1.30 and 1.37, plus the checks a schema
  cannot make: DNS-1123 names, selectors matching template labels, Job and Deployment restart
  policies, probe ports, every init-container wait naming an object of the export that its
  service account may read (tests/export/test_export_kubernetes.py). The wait program itself runs
  against a stand-in API server in the tests.
"""

OPTIONS = (
    ("`TARGET`", "`compose`, `swarm`, `kubernetes` or `systemd`"),
    ("`SERVICE…`", "only these services and what they depend on (default: all)"),
    ("`-c FILE`", "the config (default `./herder.toml`, else `$HERDER_CONFIG`)"),
    ("`-o DIR`", "write the files and `export-report.txt` into DIR (created if missing). Without it the file "
                 "goes to stdout (several files, as systemd makes, each after a `# file: NAME` line) and the "
                 "report to stderr."),
    ("`--image NAME`", "the image that holds the programs (Compose, Swarm, Kubernetes; default `PROJECT:latest`)"),
    ("`--project NAME`", "the project's name: systemd unit prefix and target, Kubernetes `part-of` label "
                         "(default: the config folder's name)"),
)

NOTES = {
    "compose": compose.__doc__ or "",
    "swarm": swarm.__doc__ or "",
    "kubernetes": kubernetes.__doc__ or "",
    "systemd": systemd.__doc__ or "",
}
TITLES = {"compose": "Compose (`docker-compose.yml`)", "swarm": "Swarm (`stack.yml`)",
          "kubernetes": "Kubernetes (`kubernetes.yaml`)", "systemd": "systemd (units and a target)"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(mapping: Mapping) -> list[str]:
    out = ["| herder key | becomes | status | notes |", "|---|---|---|---|"]
    for r in mapping.rules:
        key = f"`{r.key}`" + (f" ({r.when})" if r.when else "")
        target = "—" if r.target == "—" else f"`{_cell(r.target)}`"
        out.append(f"| {key} | {target} | {r.status} | {_cell(r.note)} |")
    return out


def _why(doc: str) -> list[str]:
    """A module docstring without its first line (the title), as paragraphs."""
    body = doc.strip().split("\n", 1)[1] if "\n" in doc.strip() else ""
    return [body.strip(), ""] if body.strip() else []


def render() -> str:
    options = "\n".join(["| option | meaning |", "|---|---|", *(f"| {o} | {m} |" for o, m in OPTIONS)])
    lines = [INTRO.replace("@OPTIONS@", options)]
    for target, mapping in MAPPINGS.items():
        lines += [f"## {TITLES[target]}", "", *_why(NOTES[target]), *table(mapping), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
