"""`herder check --container`: what herder will do as a container's init, from the config.

The one number users must carry into their engine's settings is the grace period: the
engine sends SIGTERM, waits that long, then SIGKILLs herder and every service with it.
An ordered stop takes at most the stop budget (herder.core.shutdown.stop_budget: the
heaviest dependency chain of stop_timeouts, with margins), so a grace period of at least
that many whole seconds lets herder finish first. The report also names the critical
services and their exit codes, the HEALTHCHECK line, where the logs go, and warns about
settings that defeat the purpose (no critical service; a shutdown_timeout shorter than
the stop).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from herder.config import Config
from herder.core.shutdown import EXIT_MARGIN, KILL_MARGIN, stop_budget


def report(cfg: Config, path: Path) -> dict[str, Any]:
    budget = stop_budget(cfg)
    critical = {name: spec.critical_exit_code for name, spec in cfg.services.items() if spec.critical}
    warnings = []
    if not critical:
        warnings.append("no service is critical: the container never ends by itself when a service fails for good, "
                        "so the engine's restart policy never acts; mark the services it cannot do without with "
                        "critical = true")
    if budget.capped:
        warnings.append(f"shutdown_timeout ({cfg.herder.shutdown_timeout:g}s) is shorter than the stop_timeouts "
                        "allow: herder kills what is left when it passes")
    return {"config": str(path), "stop_budget": round(budget.seconds, 3), "grace_period": budget.grace,
            "chain": [{"service": s, "stop_timeout": cfg.services[s].stop_timeout} for s in budget.chain],
            "capped": budget.capped, "critical": critical,
            "healthcheck": ["herder", "health", "-c", str(path)],
            "console": cfg.herder.console, "log_files": cfg.herder.log_files, "warnings": warnings}


def render(r: dict[str, Any]) -> str:
    g = r["grace_period"]
    if r["capped"]:
        how = "shutdown_timeout"
    else:
        how = " → ".join(f"{c['service']} {c['stop_timeout']:g}s" for c in r["chain"]) or "no service"
    lines = ["As a container's init (docs/container.md):",
             f"  stop      an ordered stop takes at most {r['stop_budget']:g}s ({how}; +{KILL_MARGIN:g}s a level to "
             f"reap, +{EXIT_MARGIN:g}s for herder's exit)",
             f"            give the engine at least {g}s before its SIGKILL:",
             f"              docker run --stop-timeout {g} …   docker stop -t {g} …",
             f"              compose:    stop_grace_period: {g}s",
             f"              kubernetes: terminationGracePeriodSeconds: {g}"]
    if r["critical"]:
        crit = ", ".join(f"{n} (exit code {c})" for n, c in r["critical"].items())
        lines.append(f"  critical  {crit}: when one fails for good, herder stops everything and exits with its code")
    lines.append(f"  health    HEALTHCHECK CMD {json.dumps(r['healthcheck'])}")
    console = {"auto": "as `instance | line`", "text": "as `instance | line`", "json": "as JSON lines",
               "off": "not (console = \"off\")"}[r["console"]]
    files = {"auto": "none", "off": "none", "on": "written too"}[r["log_files"]]
    lines.append(f"  logs      every service's lines to stdout/stderr {console}; per-service files: {files}")
    lines += [f"warning: {w}" for w in r["warnings"]]
    return "\n".join(lines) + "\n"


def print_report(cfg: Config, path: Path, as_json: bool) -> None:
    r = report(cfg, path)
    sys.stdout.write(json.dumps(r, indent=1) + "\n" if as_json else render(r))
