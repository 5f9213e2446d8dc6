"""The `herder` command: parse arguments, call one command module, return a fixed exit code.

Nothing heavy is imported up front: a supervisor command with plain arguments is read by
herder.cli.quick, everything else by argparse (herder.cli.parser); each command imports
what it needs when it runs, so `herder status` never pays for the supervisor's imports.
"""

from __future__ import annotations

import sys

from herder.errors import EXIT_USAGE, HerderError

TYPE_CHECKING = False   # typing costs `herder status` ~3 ms to import; mypy reads this block
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence  # collections: ~2 ms of `herder status`
    from typing import Any


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (`only`) one with just that subcommand (herder.cli.parser)."""
    from herder.cli.parser import build

    return build(only)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `herder … | head`: the reader left. No traceback; stdout goes nowhere from now on so
        # the interpreter's final flush cannot complain either. 141 = 128 + SIGPIPE, as a shell
        # reports a program killed by SIGPIPE.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _did_you_mean(e: HerderError, args: Any) -> str:
    """For an unknown service: the nearest known names."""
    body = getattr(e, "body", None)
    known = body.get("known") if isinstance(body, dict) else getattr(e, "known", None)
    if not known:
        return ""
    import difflib

    hints = []
    for name in getattr(args, "services", None) or []:
        if name.split(".")[0] not in known:
            close = difflib.get_close_matches(name.split(".")[0], known, n=1, cutoff=0.6)
            if close:
                hints.append(f"{name} → {close[0]}")
    return f" (did you mean {', '.join(hints)}?)" if hints else ""


def _main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    from herder.cli import quick

    # a supervisor command with plain arguments (`herder status`, `herder restart web`) is read
    # without argparse (~8 ms); everything else, errors and help included, by argparse
    args: Any = quick.parse(words) if "--" not in words else None
    if args is None:
        from herder.cli.install_cmd import (
            split_command,  # `service install NAME … -- CMD ARGS…`
        )
        from herder.cli.parser import command_of
        words, tail = split_command(words)
        parser = _parser(command_of(words))   # only the subcommand asked for: `herder status` stays fast
        args = parser.parse_args(words)
        args.command_tail = tail
        if not args.command:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
    try:
        if args.command == "up":
            if args.detach:
                from herder.cli.detach import run_detached
                return run_detached(args)
            from herder.cli.up import run_up
            return run_up(args.config, args.services, socket_group=args.socket_group, console=args.console)
        if args.command == "check":
            from herder.cli.check import run_check
            return run_check(args.config, args.container, args.json)
        if args.command == "top":
            from herder.cli.top import run_top
            return run_top(args)
        if args.command == "completion":
            from herder.cli.completion import script
            sys.stdout.write(script(_parser(), args.shell))
            return 0
        if args.command in ("install", "uninstall", "service"):
            from herder.cli.install_cmd import run as run_install
            return run_install(args)
        if args.command == "export":
            from herder.cli.export_cmd import run as run_export
            return run_export(args)
        if getattr(args, "run", None):
            mod, _, fn = args.run.partition(":")
            __import__(mod)   # not importlib.import_module: the importlib package is ~0.5 ms of `herder status`
            return int(getattr(sys.modules[mod], fn)(args))
    except HerderError as e:
        print(f"herder: {e}{_did_you_mean(e, args)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    _parser().error(f"unknown command {args.command}")   # exits 2
