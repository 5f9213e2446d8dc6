"""`herder logs`: the last lines of services, merged in time order; `--reopen` after logrotate.

Without -f the files are read directly (no supervisor needed). `-f` streams from the
supervisor's API (GET /v1/logs/{name}?follow=1), which lives with the control API.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from herder.config import find_config, load
from herder.errors import EXIT_OK, ConfigError, NotRunning, UnknownService, UsageError

_COLOURS = (36, 33, 32, 35, 34, 91, 92, 93, 94, 95, 96)


def parse_since(text: str) -> float:
    """--since (herder.units.parse_since); a bad value is a usage error."""
    from herder.units import parse_since as parse

    try:
        return parse(text)
    except ValueError as e:
        raise UsageError(f"--since: {e}") from None


def reopen(state_dir: os.PathLike[str]) -> int:
    """Send SIGUSR1 to the supervisor that holds state_dir's lock."""
    from pathlib import Path

    from herder.store.lock import holder

    pid = holder(Path(state_dir))
    if pid is None:
        raise NotRunning(f"no supervisor holds {Path(state_dir) / 'herder.pid'}")
    if pid <= 0:
        raise NotRunning(f"{Path(state_dir) / 'herder.pid'} is locked but names no pid")
    os.kill(pid, signal.SIGUSR1)
    print(f"herder: asked pid {pid} to reopen its log files", file=sys.stderr)
    return EXIT_OK


def run(args: object) -> int:
    """Entry from the command registry (herder.control.registry, command "logs")."""
    a: Any = args
    return run_logs(a.config, a.services, a.follow, a.lines, a.since, a.json, a.reopen)


def _follow(config: str | None, services: list[str], n: int, as_json: bool) -> int:
    """-f: the last n lines from the supervisor's memory, then every new line (one stream)."""
    from argparse import Namespace

    from herder.cli.ctl import client

    c = client(Namespace(config=config, socket=None), timeout=None)
    out = sys.stdout.buffer
    colour = out.isatty() and not os.environ.get("NO_COLOR")
    colours: dict[str, int] = {}
    try:
        for e in c.stream("logs", path={"name": ",".join(services) or "*"},
                          query={"follow": True, "tail": max(n, 0)}):
            if as_json:
                out.write((json.dumps(e, ensure_ascii=False) + "\n").encode())
            else:
                label = e["instance"] + " | "
                if colour:
                    c_ = colours.setdefault(e["instance"], _COLOURS[len(colours) % len(_COLOURS)])
                    label = f"\x1b[{c_}m{label}\x1b[0m"
                out.write(f"{label}{e['ts']} {e['line']}\n".encode())
            out.flush()
    except BrokenPipeError:
        pass
    return EXIT_OK


def run_logs(config: str | None, services: list[str], follow: bool, n: int, since: str | None, as_json: bool,
             do_reopen: bool) -> int:
    from herder.logs._framing import rfc3339
    from herder.logs._read import read_tail

    try:
        cfg = load(find_config(config), check_accounts=False)
    except ConfigError as e:
        for line in e.problems:
            print(line, file=sys.stderr)
        return e.exit_code
    if do_reopen:
        return reopen(cfg.state_dir)
    if follow:
        return _follow(config, services, n, as_json)
    known = set(cfg.services)
    bad = [s for s in services if s.split(".")[0] not in known]
    if bad:
        raise UnknownService(bad, sorted(known))
    lines = read_tail(cfg, services or None, n, parse_since(since) if since else None)
    out = sys.stdout.buffer
    colour = out.isatty() and not os.environ.get("NO_COLOR")
    names = sorted({x.instance for x in lines})
    width = max((len(x) for x in names), default=0)
    colours = {name: _COLOURS[i % len(_COLOURS)] for i, name in enumerate(names)}
    for x in lines:
        if as_json:
            rec = {"ts": rfc3339(x.ts) if x.ts is not None else None, "instance": x.instance,
                   "service": x.instance.split(".")[0], "stream": x.stream,
                   "line": x.text.decode("utf-8", "replace")}
            out.write((json.dumps(rec, ensure_ascii=False) + "\n").encode())
            continue
        label = x.instance.ljust(width) + " | "
        if colour:
            label = f"\x1b[{colours[x.instance]}m{label}\x1b[0m"
        stamp = (rfc3339(x.ts) + " ") if x.ts is not None else ""
        out.write(label.encode() + stamp.encode() + x.text + b"\n")
    out.flush()
    return EXIT_OK
