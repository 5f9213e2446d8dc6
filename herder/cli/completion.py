"""Shell completion and the man page, both generated from the one argparse parser.

Completion scripts come from shtab: they are static shell code, so pressing Tab never
starts Python except to list service names, which the script gets from the running
supervisor with `herder status --names` (the same discovery as every command: ./herder.toml,
$HERDER_CONFIG or $HERDER_SOCKET). The CLI's own start-up is untouched: shtab is imported
only by `herder completion`.

The man page (docs/herder.1, `make man`) is rendered by argparse-manpage, a test/dev
dependency; a test compares the checked-in page with a fresh rendering.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

NAMES = "herder status --names 2>/dev/null; echo all"


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _parsers(sub)


def annotate(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Mark what to complete how: service arguments from the supervisor, paths as files."""
    import shtab

    services = shtab.cmd(NAMES)
    for p in _parsers(parser):
        for action in p._actions:
            a: Any = action
            if action.dest == "services" or (action.dest == "name" and p.prog.endswith(("service start",
                                                                                        "service stop"))):
                a.complete = services
            elif action.dest in ("config", "socket", "log_dir"):
                a.complete = shtab.FILE
            elif action.dest == "cwd":
                a.complete = shtab.DIRECTORY
    return parser


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for bash, zsh or fish."""
    import shtab

    text: str = shtab.complete(annotate(parser), shell=shell)
    return text if text.endswith("\n") else text + "\n"


def manpage(parser: argparse.ArgumentParser) -> str:
    """herder(1) in roff, from the parser (argparse-manpage)."""
    from argparse_manpage.manpage import Manpage

    from herder import __version__

    parser.description = (
        "herder turns programs into reliable services: `herder up` supervises the services of "
        "a herder.toml (dependencies, restarts with backoff, health checks, whole-tree stops); "
        "the other commands talk to the running supervisor over its local API, install herder "
        "or one program as a native service, and check configs. Exit codes: 0 ok, 1 the operation "
        "failed, 2 usage or config error, 3 no supervisor is running.")
    page = Manpage(parser, _data={"project_name": "herder", "version": __version__,
                                  "manual_title": "herder manual", "date": "2026"})
    return str(page)


if __name__ == "__main__":  # `python -m herder.cli.completion man` (make man)
    import sys

    from herder.cli import _parser

    sys.stdout.write(manpage(_parser()) if sys.argv[1:] == ["man"] else script(_parser(), sys.argv[1]))
