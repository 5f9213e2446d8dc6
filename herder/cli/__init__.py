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

    logs = sub.add_parser("logs", help="show services' output, merged in time order")
    logs.add_argument("-c", "--config", metavar="FILE", help="config file")
    logs.add_argument("services", nargs="*", metavar="SERVICE", help="only these services or instances")
    logs.add_argument("-f", "--follow", action="store_true", help="keep streaming new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, metavar="N", help="last N lines (0 = all; default 50)")
    logs.add_argument("--since", metavar="T", help='only lines after T: "10m" ago or 2024-05-01T12:00:00Z')
    logs.add_argument("--json", action="store_true", help="one JSON object per line")
    logs.add_argument("--reopen", action="store_true", help="make the supervisor reopen its log files (logrotate)")

    check = sub.add_parser("check", help="validate the config, print every error, exit 2 if any")
    check.add_argument("-c", "--config", metavar="FILE", help="config file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "up":
            from herder.cli.up import run_up
            return run_up(args.config, args.services)
        if args.command == "logs":
            from herder.cli.logs import run_logs
            return run_logs(args.config, args.services, args.follow, args.lines, args.since, args.json, args.reopen)
        if args.command == "check":
            from herder.cli.check import run_check
            return run_check(args.config)
    except HerderError as e:
        print(f"herder: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE
