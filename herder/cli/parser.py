"""The argparse parser of the `herder` command: every subcommand, or only the one asked for.

Kept apart from herder.cli so that a plain supervisor command (herder.cli.quick) never
imports argparse; help, errors and every other command come through here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

TYPE_CHECKING = False   # typing costs `herder status` ~3 ms to import; mypy reads this block
if TYPE_CHECKING:
    from typing import Any

_LOCAL = ("up", "check", "install", "uninstall", "service", "top", "completion", "import", "init", "export")


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv (its first word that is not an option), or None."""
    for word in argv:
        if not word.startswith("-"):
            return word
        if word in ("-h", "--help", "--version"):
            return None
    return None


def _columns() -> int:
    """shutil.get_terminal_size().columns, which argparse sizes its help by: $COLUMNS, else
    the terminal's width, else 80."""
    try:
        if (n := int(os.environ.get("COLUMNS", "0"))) > 0:
            return n
    except ValueError:
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80   # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, sized without `import shutil` (bz2, lzma, fnmatch): argparse
    builds a formatter for every add_argument, so the default one cost every command ~3 ms."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser with _Formatter; its sub-parsers are _Parsers too (argparse's default)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kw)


def build(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (`only`) one with just that subcommand: building every
    subcommand costs `herder status` ~25 ms it does not need. Help and unknown commands
    get the full parser, so their messages list everything."""
    from herder import __version__

    p = _Parser(prog="herder", description="Supervise programs as reliable services.")
    p.add_argument("--version", action="version", version=f"herder {__version__}")
    # prog given: else argparse builds a HelpFormatter to work it out, which imports shutil
    # (bz2, lzma, fnmatch): ~3 ms of every `herder status`
    sub = p.add_subparsers(dest="command", metavar="COMMAND", prog="herder")

    if only is not None and only not in _LOCAL:
        if _control_commands(sub, only):
            return p
        only = None  # not a registry command: build everything, argparse says what is wrong

    up = sub.add_parser("up", help="start the supervisor and the services (foreground; Ctrl+C stops)")
    up.add_argument("-c", "--config", metavar="FILE", help="config file (default ./herder.toml, else $HERDER_CONFIG)")
    up.add_argument("-d", "--detach", action="store_true",
                    help="run in the background; return once every autostart service is running or failed")
    up.add_argument("--socket-group", metavar="GROUP", help="open the API socket to this group (mode 0660)")
    up.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                    help="with -d: wait at most this long for the services (default 300)")
    up.add_argument("--console", action=argparse.BooleanOptionalAction, default=None,
                    help="show every service's output here as `name | line` (default: when stdout is a terminal)")
    up.add_argument("services", nargs="*", metavar="SERVICE", help="only these services (and what they depend on)")

    check = sub.add_parser("check", help="validate the config, print every error, exit 2 if any")
    check.add_argument("-c", "--config", metavar="FILE", help="config file")
    check.add_argument("--container", action="store_true",
                       help="also say what herder does as a container's init: the grace period to give the engine, "
                       "critical services, the health check, where logs go")
    check.add_argument("--json", action="store_true", help="with --container: the report as JSON")
    top = sub.add_parser("top", help="live view: every instance's state, health, CPU, memory; logs; keys to act")
    top.add_argument("-c", "--config", metavar="FILE", help="find the supervisor through this config's state_dir")
    top.add_argument("--socket", metavar="PATH", help="the supervisor's socket")
    top.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                     help="how often CPU and memory are refreshed (default 2; states are live)")
    comp = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish)",
                          description="Print a completion script: `herder completion bash > "
                          "~/.local/share/bash-completion/completions/herder`; zsh: into a directory of $fpath "
                          "as _herder; fish: ~/.config/fish/completions/herder.fish")
    comp.add_argument("shell", choices=("bash", "zsh", "fish"))
    if only in (None, "up", "check"):
        _control_commands(sub)
    from herder.cli import import_cmd, install_cmd  # argparse only at import time
    install_cmd.add_parsers(sub)
    import_cmd.add_parsers(sub)
    from herder.cli import export_cmd
    export_cmd.add_parser(sub)
    return p


def _control_commands(sub: argparse._SubParsersAction[_Parser], only: str | None = None) -> bool:
    """Subcommands that talk to the supervisor, built from the command registry (all, or
    just `only`); True when something was added."""
    from herder.cli.quick import COMMON
    from herder.control.registry import COMMANDS

    added = False
    for cmd in COMMANDS:
        if cmd.cli is None:
            continue
        for name in (cmd.cli.name, *cmd.cli.aliases):
            if only is not None and name != only:
                continue
            added = True
            sp = sub.add_parser(name, help=cmd.cli.help, description=f"{cmd.cli.help} ({cmd.method} {cmd.path})")
            sp.set_defaults(run=cmd.cli.run)
            for arg in (*COMMON, *cmd.cli.args):
                sp.add_argument(*arg.flags, **arg.kw)
    return added
