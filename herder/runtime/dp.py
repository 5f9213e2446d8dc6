"""`python -m herder.runtime.dp`: the decision process, as the keeper starts it.

    python -m herder.runtime.dp --keeper-fd FD --generation N [--fresh] [--ready-fd FD]
                                [-c CONFIG] [--socket-group G] [--[no-]console] [--quiet] [SERVICE …]

The keeper (herder.keeper) runs this process and restarts it when it dies. It first
shakes hands with the keeper (herder.runtime.keeper_link.handshake), which hands over
what a previous decision process left: the config it ran with (a restart never picks up
an edited file by surprise; `herder reload` does that), its state record, the live
children, the exits not yet taken, the fds it stored. A first start reads the config
file. `--fresh`: the keeper saw this process fail repeatedly, so the state record is
ignored and adoption goes by what the system says alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from herder.errors import HerderError

if TYPE_CHECKING:
    from herder.config import Config


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="herder-decision-process")
    p.add_argument("--keeper-fd", type=int, required=True)
    p.add_argument("--generation", type=int, default=1)
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--ready-fd", type=int, default=-1)
    p.add_argument("-c", "--config")
    p.add_argument("--socket-group")
    p.add_argument("--console", action=argparse.BooleanOptionalAction, default=None)   # `herder up`'s flag
    p.add_argument("--quiet", action="store_true")    # detached: events go to herder.log (JSON) only
    p.add_argument("services", nargs="*")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _args(argv)
    from herder.runtime.keeper_link import from_fd, handshake

    link = from_fd(args.keeper_fd)
    ready_fd = args.ready_fd
    if ready_fd >= 0:
        os.set_inheritable(ready_fd, False)
    told = False

    def ready() -> None:
        nonlocal told
        if ready_fd >= 0 and not told:
            os.write(ready_fd, b"ok\n")
            os.close(ready_fd)
        told = True

    try:
        welcome = handshake(link)
        cfg = _config(args, welcome)
        from herder.cli.up import supervise

        return supervise(cfg, args.services, socket_group=args.socket_group, ready=ready, console=args.console,
                         keeper=link, welcome=welcome, fresh=args.fresh, print_events=not args.quiet)
    except HerderError as e:
        msg = str(e).replace("\n", " ") if ready_fd >= 0 else str(e)
        print(f"herder: {msg}", file=sys.stderr, flush=True)
        if ready_fd >= 0 and not told:
            prefix = "config: " if e.exit_code == 2 else ""
            os.write(ready_fd, f"error: {prefix}{msg}\n".encode())
            told = True
        return e.exit_code
    except (ConnectionError, TimeoutError) as e:
        print(f"herder: lost the keeper at start-up: {e}", file=sys.stderr, flush=True)
        return 1


def _config(args: argparse.Namespace, welcome: dict[str, object]) -> Config:
    text = welcome.get("config")
    if isinstance(text, str) and not args.fresh:
        from herder.config import from_record

        return from_record(json.loads(text))
    from herder.cli.up import load_for_up

    cfg = load_for_up(args.config, args.services)
    if isinstance(cfg, int):
        raise SystemExit(cfg)
    return cfg


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
