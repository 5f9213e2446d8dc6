"""`herder check`: every config error at once, exit 2 if any."""

from __future__ import annotations

import sys

from herder.config import find_config, load
from herder.errors import EXIT_OK, ConfigError


def run_check(config_path: str | None) -> int:
    path = find_config(config_path)
    try:
        cfg = load(path)
    except ConfigError as e:
        for line in e.problems:
            print(line, file=sys.stderr)
        n = len(e.problems)
        print(f"{path}: {n} error{'s' if n != 1 else ''}", file=sys.stderr)
        return e.exit_code
    n = sum(s.replicas for s in cfg.services.values())
    print(f"{path}: ok ({len(cfg.services)} services, {n} instances)")
    return EXIT_OK
