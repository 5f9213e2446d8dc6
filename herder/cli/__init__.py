"""The `herder` command: parse arguments, call one command module, return a fixed exit code.

Only argparse is imported up front; each command imports what it needs when it runs, so
`herder status` never pays for the supervisor's imports.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from herder.errors import EXIT_USAGE, HerderError


def _parser() -> argparse.ArgumentParser:
    from herder import __version__

    p = argparse.ArgumentParser(prog="herder", description="Supervise programs as reliable services.")
    p.add_argument("--version", action="version", version=f"herder {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser("up", help="start the supervisor and the services (foreground; Ctrl+C stops)")
    up.add_argument("-c", "--config", metavar="FILE", help="config file (default ./herder.toml, else $HERDER_CONFIG)")
    up.add_argument("services", nargs="*", metavar="SERVICE", help="only these services (and what they depend on)")

    check = sub.add_parser("check", help="validate the config, print every error, exit 2 if any")
    check.add_argument("-c", "--config", metavar="FILE", help="config file")

    from herder.cli import install_cmd  # argparse only at import time
    install_cmd.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    from herder.cli.install_cmd import split_command  # `service install NAME … -- CMD ARGS…`
    argv, tail = split_command(sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(argv)
    args.command_tail = tail
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "up":
            from herder.cli.up import run_up
            return run_up(args.config, args.services)
        if args.command == "check":
            from herder.cli.check import run_check
            return run_check(args.config)
        if args.command in ("install", "uninstall", "service"):
            from herder.cli.install_cmd import run as run_install
            return run_install(args)
    except HerderError as e:
        print(f"herder: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE
