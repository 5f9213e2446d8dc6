"""`herder check`: every config error at once, exit 2 if any; warnings (what only run time can
settle) are printed too and do not change the exit code. `--container`: what herder will do
as a container's init (herder.cli.check_container)."""

from __future__ import annotations

import sys
from pathlib import Path

from herder.config import Config, find_config, load
from herder.errors import EXIT_OK, EXIT_USAGE, ConfigError


def load_or_report(config_path: str | None) -> tuple[Path, Config | int]:
    """The loaded config, or the exit code after printing every error (for any command)."""
    path = find_config(config_path)
    try:
        cfg = load(path)
    except ConfigError as e:
        for line in e.problems:
            print(line, file=sys.stderr)
        n = len(e.problems)
        print(f"{path}: {n} error{'s' if n != 1 else ''}; nothing was changed", file=sys.stderr)
        return path, e.exit_code
    for line in cfg.warnings:
        print(line, file=sys.stderr)
    return path, cfg


def run_check(config_path: str | None, container: bool = False, as_json: bool = False) -> int:
    if as_json and not container:
        print("herder check: --json goes with --container (the container report as JSON)", file=sys.stderr)
        return EXIT_USAGE
    path, cfg = load_or_report(config_path)
    if isinstance(cfg, int):
        return cfg
    n = sum(s.replicas for s in cfg.services.values())
    if not as_json:
        print(f"{path}: ok ({len(cfg.services)} services, {n} instances)")
    if container:
        from herder.cli.check_container import print_report

        print_report(cfg, path, as_json)
    return EXIT_OK
